"""The model and its speed: the zoo's models (greyed out without onnxruntime), precision, the speed slider."""

from __future__ import annotations

import time

from qgis.core import Qgis, QgsApplication, QgsTask
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.engine.models import BASELINE_SUMMARY, ModelEntry, available_models, default_model
from ..core.errors import FusionError
from . import common
from .common import format_seconds

TOOLTIP_ROLE = 3  # Qt.ToolTipRole


class ModelPanel(QGroupBox):
    """Owns the model choice and what the speed slider selects; the device and threads come from `set_machine`."""

    changed = pyqtSignal()
    variant_changed = pyqtSignal(object)  # the ModelEntry the run would use (or None)
    measured = pyqtSignal(str)  # the speed label after a timing on this machine

    def __init__(self, message_bar: QgsMessageBar, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTitle(self.tr("Model"))
        tr = self.tr
        self.message_bar = message_bar
        self.device = "auto"
        self.threads: int | None = None
        self.models: dict[str, ModelEntry] = {}
        self.model_problems: dict[str, str] = {}
        self.measurements: dict[tuple[str, str], float] = {}  # (model, device) -> seconds per Mpx per NFE
        self.measure_task = None
        self.details_dialog = None
        self.onnx_available = True
        self.user_picked_model = False  # once the user picks a model, the inputs no longer change it
        self.recommended_with_reference = False
        self.model_combo = QComboBox(self)
        self.model_combo.setToolTip(tr("Fusion model: a traditional method or a model of the bundled zoo"))
        self.details_button = QPushButton(tr("Details…"), self)
        self.details_button.setToolTip(tr("Open the model card: training data, metrics, limitations"))
        self.verify_button = QPushButton(tr("Verify"), self)
        self.verify_button.setToolTip(tr("Check the model file against its sha256 in the zoo manifest"))
        self.model_summary = QLabel(self)
        self.model_summary.setWordWrap(True)
        self.model_summary.setToolTip(tr("One-line summary of the chosen model"))
        self.runtime_label = QLabel(self)
        self.runtime_label.setWordWrap(True)
        self.runtime_label.setStyleSheet("QLabel { color: #8a5300; }")
        self.runtime_label.setToolTip(tr("Why the ONNX models of the zoo are greyed out"))
        self.precision_combo = QComboBox(self)
        self.precision_combo.setToolTip(
            tr(
                "Numeric precision: Automatic runs the faster variant that passed the real-imagery check, timed once on "
                "this machine and remembered (int8 where it pays on this CPU, fp16 on a GPU); choose one to override"
            )
        )
        self.speed_slider = QSlider(self)
        self.speed_slider.setOrientation(1)  # Qt.Horizontal
        self.speed_slider.setTickPosition(QSlider.TicksBelow)
        self.speed_slider.setToolTip(tr("Left: fastest; right: best quality (the model's measured speed levels)"))
        self.speed_label = QLabel(self)
        self.speed_label.setWordWrap(True)
        self.speed_label.setToolTip(tr("Sampler and NFE of the level, predicted time for this area and expected quality"))
        self.measure_button = QPushButton(tr("Measure here"), self)
        self.measure_button.setToolTip(tr("Time one tile on this machine to refine the predicted time (a few seconds)"))
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.details_button)
        model_row.addWidget(self.verify_button)
        speed_row = QHBoxLayout()
        speed_row.addWidget(QLabel(tr("Fastest"), self))
        speed_row.addWidget(self.speed_slider, 1)
        speed_row.addWidget(QLabel(tr("Best quality"), self))
        speed_row.addWidget(self.measure_button)
        form = QFormLayout(self)
        form.addRow(tr("Model"), model_row)
        form.addRow("", self.model_summary)
        form.addRow("", self.runtime_label)
        form.addRow(tr("Precision"), self.precision_combo)
        form.addRow(tr("Speed"), speed_row)
        form.addRow("", self.speed_label)

        self._fill_models()
        self.details_button.clicked.connect(self.show_details)
        self.verify_button.clicked.connect(self.verify_model)
        self.measure_button.clicked.connect(self.measure_speed)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.precision_combo.currentIndexChanged.connect(self._on_variant_changed)
        self.speed_slider.valueChanged.connect(self.changed)
        self.model_combo.activated.connect(self._on_user_picked)  # activated: by the user only, not by code

    # --- the models ----------------------------------------------------------------------------------
    def _fill_models(self) -> None:
        try:
            entries = available_models()
            default = default_model()
        except FusionError as exc:  # a broken manifest: baseline stays usable, the reason is shown
            self.message_bar.pushMessage(self.tr("Model zoo"), str(exc), level=Qgis.Warning)
            entries = [ModelEntry("baseline", "traditional", "fp32", BASELINE_SUMMARY, default=True)]
            default = entries[0]
        self.onnx_available = common.onnxruntime_available()
        self.models = {m.id: m for m in entries}
        bases = [m for m in entries if not m.variant_of or m.variant_of not in self.models]
        for base in bases:
            label, tooltip, runnable = f"{base.id} — {base.family}", base.summary, True
            if base.zoo is not None and not self.onnx_available:
                label, tooltip, runnable = label + self.tr(" (needs onnxruntime)"), self._runtime_problem(), False
            elif problem := self._file_problem(base):
                label, tooltip = "⚠ " + label + self.tr(" (unusable)"), problem
            self.model_combo.addItem(label, base.id)
            index = self.model_combo.count() - 1
            self.model_combo.setItemData(index, tooltip, TOOLTIP_ROLE)
            # a disabled item is greyed out and cannot be picked, yet stays listed: the user sees what installing adds
            self.model_combo.model().item(index).setEnabled(runnable)
        self.runtime_label.setText("" if self.onnx_available else self._runtime_problem())
        self.runtime_label.setVisible(not self.onnx_available)
        wanted = default.variant_of or default.id if default else "baseline"
        if self.models.get(wanted) is not None and self.models[wanted].zoo is not None and not self.onnx_available:
            wanted = next((m.id for m in bases if m.zoo is None), "baseline")
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(wanted)))
        self._on_model_changed()

    def _on_user_picked(self, *args) -> None:
        self.user_picked_model = True

    def recommend_for(self, with_reference: bool) -> None:
        """Pre-select the recommended model for the inputs (with a VIIRS reference: the manifest's
        default_with_reference, decided on real imagery) until the user picks a model themselves."""
        if self.user_picked_model or with_reference == self.recommended_with_reference:
            return
        self.recommended_with_reference = with_reference
        try:
            wanted = default_model(with_reference)
        except FusionError:
            return
        if wanted.zoo is not None and not self.onnx_available:
            return
        index = self.model_combo.findData(wanted.variant_of or wanted.id)
        if index >= 0 and index != self.model_combo.currentIndex():
            self.model_combo.setCurrentIndex(index)

    def _runtime_problem(self) -> str:
        return self.tr(
            "The ONNX models need onnxruntime, which is not installed in QGIS's Python: "
            "Plugins › Nightlight Fusion › Install dependencies…"
        )

    def _file_problem(self, entry: ModelEntry) -> str:
        """Why the model cannot run ('' if its file is there); cheap: existence and size, sha256 on demand."""
        if entry.id in self.model_problems:
            return self.model_problems[entry.id]
        for variant in self.variants(entry.id) if entry.zoo else []:
            path = variant.zoo.path
            if not path.is_file():
                return self.tr("Model file {} is missing; reinstall the plugin (or re-run training.export).").format(path)
            if variant.zoo.size_bytes and path.stat().st_size != variant.zoo.size_bytes:
                return self.tr("Model file {} has the wrong size (corrupt or replaced); reinstall the plugin.").format(path)
        return ""

    def problem(self) -> str:
        """Why the chosen model cannot run here ('' when it can)."""
        entry = self.selected_model()
        if entry is None:
            return ""
        if entry.zoo is not None and not self.onnx_available:
            return self._runtime_problem()
        return self.model_problems.get(self.model_combo.currentData()) or self._file_problem(entry)

    def variants(self, base_id: str) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.id == base_id or m.variant_of == base_id]

    def set_machine(self, device: str, threads: int | None) -> None:
        """The device choice ('auto', 'cpu', …) and CPU threads, from the advanced options."""
        self.threads = threads
        if device != self.device:
            self.device = device
            self._on_variant_changed()  # automatic precision follows the device

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        gpus = [d for d in common.onnx_devices() if d != "cpu"]
        return gpus[0] if gpus else "cpu"

    def selected_model(self) -> ModelEntry | None:
        """The model variant the run will use: the precision chosen, else (Automatic) the engine's measured choice
        on this machine when it has made one (core/engine/precision.py), else the model itself."""
        base_id = self.model_combo.currentData()
        variants = self.variants(base_id)
        if not variants:
            return None
        by_precision = {m.precision: m for m in variants}
        chosen = self.precision_combo.currentData()
        if chosen and chosen in by_precision:
            return by_precision[chosen]
        base = self.models.get(base_id) or variants[0]
        if base.zoo is not None and len(variants) > 1:
            from ..core.engine.precision import ChoiceCache, cached_choice
            from ..processing.common import precision_cache_dir

            known = cached_choice(base.zoo, self.resolved_device(), ChoiceCache(precision_cache_dir()))
            if known is not None:
                return next((m for m in variants if m.id == known.model.id), base)
        return base

    def precision(self) -> str:
        """The PRECISION parameter: the variant chosen, or auto (the engine measures once and remembers)."""
        return self.precision_combo.currentData() or "auto"

    def _on_model_changed(self, *args) -> None:
        self.precision_combo.blockSignals(True)
        self.precision_combo.clear()
        self.precision_combo.addItem(self.tr("Automatic"), None)
        for variant in sorted(self.variants(self.model_combo.currentData()), key=lambda m: m.precision):
            self.precision_combo.addItem(variant.precision, variant.precision)
        self.precision_combo.setEnabled(self.precision_combo.count() > 2)
        self.precision_combo.blockSignals(False)
        self._on_variant_changed()

    def _on_variant_changed(self, *args) -> None:
        entry = self.selected_model()
        zoo = entry.zoo if entry else None
        levels = sorted(zoo.speed_levels, key=lambda s: s.level) if zoo else []
        self.speed_slider.blockSignals(True)
        self.speed_slider.setEnabled(bool(levels))
        self.speed_slider.setRange(0, max(len(levels) - 1, 0))
        if levels:
            self.speed_slider.setValue(next((i for i, s in enumerate(levels) if s.level == zoo.default_speed), 0))
        self.speed_slider.blockSignals(False)
        # timing a tile is for what has a sampler or samples; a deterministic pass is timed by the zoo
        self.measure_button.setEnabled(zoo is not None and zoo.family != "unet" and self.onnx_available)
        self.variant_changed.emit(entry)
        self.changed.emit()

    def speed_level(self):
        entry = self.selected_model()
        if entry is None or entry.zoo is None or not entry.zoo.speed_levels:
            return None
        levels = sorted(entry.zoo.speed_levels, key=lambda s: s.level)
        return levels[min(self.speed_slider.value(), len(levels) - 1)]

    def show_state(self, problem: str) -> None:
        entry = self.selected_model()
        self.model_summary.setText((problem or entry.summary) if entry else "")

    # --- speed ---------------------------------------------------------------------------------------
    def _what(self, zoo, sampler: str | None, steps: int):
        """(description, NFE, expected PSNR, s/Mpx) of what runs, or a str explaining why the slider says nothing."""
        tr = self.tr
        level = self.speed_level()
        if zoo.family in ("unet", "normalizing_flow"):
            if zoo.speed_levels:
                return tr("one pass (NFE 1)"), 1, level.psnr, level.seconds_per_megapixel
            if zoo.throughput.get("cpu_megapixels_per_minute"):  # measured by make report
                psnr = (zoo.metrics.get("synthetic_ref") or {}).get("psnr_log")
                return tr("one pass (NFE 1)"), 1, psnr, 60.0 / zoo.throughput["cpu_megapixels_per_minute"]
            return tr("one pass (NFE 1)"), 1, None, None
        if sampler or steps:
            from ..core.methods.generative import sampling_plan

            try:
                plan = sampling_plan(zoo, sampler, steps or None, None)
            except FusionError as exc:
                return str(exc)
            spm = None
            if level is not None and level.seconds_per_megapixel is not None and level.nfe:
                spm = level.seconds_per_megapixel / level.nfe * plan.nfe
            return tr("{} (advanced override)").format(plan.describe()), plan.nfe, None, spm
        if level is None:
            return tr(
                "Speed slider disabled: the zoo manifest has no measured speed levels for {}; it runs with its "
                "default sampler (choose sampler and steps under Advanced)."
            ).format(zoo.id)
        from ..core.engine.samplers import sampler_spec

        what = tr("level {}/{}: {}, {} steps, NFE {}").format(
            self.speed_slider.value() + 1, len(zoo.speed_levels), sampler_spec(level.sampler).label, level.steps, level.nfe
        )
        return what, level.nfe, level.psnr, level.seconds_per_megapixel

    def speed_text(self, pixels: int | None, sampler: str | None, steps: int, ensemble: int) -> str:
        """What the speed slider selects: sampler and NFE, predicted time for `pixels`, expected quality."""
        tr = self.tr
        entry = self.selected_model()
        if entry is None:
            return ""
        if entry.zoo is None:
            return tr("The traditional method has no sampler: one deterministic pass, no speed/quality trade-off.")
        what = self._what(entry.zoo, sampler, steps)
        if isinstance(what, str):
            return what
        what, nfe, psnr, spm = what
        device = self.resolved_device()
        measured = self.measurements.get((entry.zoo.id, device))
        if pixels is None:
            time_text = tr("choose an area to predict the time")
        elif measured is not None:
            seconds = measured * nfe * ensemble * pixels / 1e6
            time_text = tr("predicted {} on {} (measured on this machine)").format(format_seconds(seconds), device)
        elif spm is not None:
            time_text = tr("predicted {} (zoo's measured throughput; Measure here to refine for {})").format(
                format_seconds(spm * ensemble * pixels / 1e6), device
            )
        else:
            time_text = tr("time not measured (Measure here to time one tile on this machine)")
        quality = tr("expected PSNR {:.2f} dB").format(psnr) if psnr is not None else tr("quality not measured")
        return f"{what} · {time_text} · {quality}"

    def measure_speed(self) -> None:
        """Time one tile of the chosen model on this machine, in a background task (a few seconds)."""
        entry = self.selected_model()
        if entry is None or entry.zoo is None or self.measure_task is not None:
            return
        zoo, device, threads, level = entry.zoo, self.resolved_device(), self.threads, self.speed_level()

        def work(task):
            import numpy as np

            from ..core.engine.tiling import TileJob
            from ..core.engine.transforms import CONDITION_CHANNELS
            from ..core.methods.generative import GenerativeFusion, sampling_plan

            plan = sampling_plan(zoo, None, None, level.level if level else None)
            method = GenerativeFusion(zoo, plan, device, threads, 1, 1)
            channels = len(CONDITION_CHANNELS[method.condition_version])  # 3, 4 (reference-aware) or 7 (v3)
            condition = np.zeros((1, channels, method.tile, method.tile), np.float32)
            method.predict(condition, [TileJob(0, 0, 0, 0)], 0, 0)  # warm-up: first call allocates
            started = time.perf_counter()
            method.predict(condition, [TileJob(0, 0, 0, 0)], 0, 0)
            seconds = time.perf_counter() - started
            return seconds / max(plan.nfe, 1) / (method.tile * method.tile / 1e6), method.device

        def done(exception, result=None):
            self.measure_task = None
            self.measure_button.setEnabled(True)
            if exception is not None or result is None:
                self.speed_label.setText(self.tr("Measuring failed: {}").format(exception))
            else:
                self.measurements[(zoo.id, device)] = result[0]
                self.changed.emit()  # the dialog re-predicts the time with the measurement
            self.measured.emit(self.speed_label.text())

        self.measure_button.setEnabled(False)
        self.speed_label.setText(self.tr("Measuring one tile on {}…").format(device))
        self.measure_task = QgsTask.fromFunction(self.tr("Nightlight Fusion: timing one tile"), work, on_finished=done)
        QgsApplication.taskManager().addTask(self.measure_task)

    # --- model card, sha256 --------------------------------------------------------------------------
    def show_details(self) -> None:
        entry = self.selected_model()
        if entry is None:
            return
        text = f"# {entry.id}\n\n{entry.summary}\n"
        if entry.zoo is not None and entry.zoo.card_path is not None and entry.zoo.card_path.is_file():
            text = entry.zoo.card_path.read_text(encoding="utf-8")
        elif entry.zoo is not None:
            text += "\n" + self.tr("No model card in the zoo for this model.")
        dialog = QDialog(self)
        dialog.setWindowTitle(self.tr("Model card: {}").format(entry.id))
        browser = QTextBrowser(dialog)
        browser.setOpenExternalLinks(True)
        browser.setMarkdown(text)
        QVBoxLayout(dialog).addWidget(browser)
        dialog.resize(640, 480)
        dialog.show()
        self.details_dialog = dialog

    def verify_model(self) -> None:
        """sha256 of the chosen model's files against the manifest (on demand: it reads the whole file)."""
        from ..core.engine.runtime import sha256_of

        base = self.model_combo.currentData()
        for variant in self.variants(base):
            if variant.zoo is None:
                continue
            path = variant.zoo.path
            if not path.is_file() or sha256_of(path) != variant.zoo.sha256:
                problem = self.tr("Model file {} does not match its sha256 (missing, corrupt or replaced); reinstall.").format(
                    path
                )
                self.model_problems[base] = problem
                index = self.model_combo.currentIndex()
                if not self.model_combo.itemText(index).startswith("⚠"):
                    self.model_combo.setItemText(index, "⚠ " + self.model_combo.itemText(index) + self.tr(" (unusable)"))
                self.model_combo.setItemData(index, problem, TOOLTIP_ROLE)
                self.changed.emit()
                return
        self.message_bar.pushMessage(self.tr("Model files match their sha256."), level=Qgis.Success, duration=5)
