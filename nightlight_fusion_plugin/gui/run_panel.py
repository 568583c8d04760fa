"""Run and results: the output file, Run/Cancel, progress, the QgsTask and the styled result layers."""

from __future__ import annotations

import math
import os
import time
from typing import Callable

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsLayerMetadata,
    QgsProcessing,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsFileWidget, QgsMessageBar
from qgis.PyQt.QtCore import QTimer, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..processing.common import help_url
from ..processing.style import apply_night_lights_style, apply_uncertainty_style
from .common import format_seconds
from .inputs_panel import layer_file

FUSE = "nightlightfusion:fuse"


class DialogFeedback(QgsProcessingFeedback):
    """Keeps the algorithm's errors and the latest core message ("Tile 3/40") for the progress label."""

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []
        self.detail = ""

    def reportError(self, error, fatalError=False):  # noqa: N802,N803
        self.errors.append(error)
        super().reportError(error, fatalError)


class RunPanel(QWidget):
    """Runs `nightlightfusion:fuse` in the background and adds its results; `run_requested` when Run is pressed."""

    run_requested = pyqtSignal()
    close_requested = pyqtSignal()
    state_changed = pyqtSignal()  # a run started or ended
    finished_run = pyqtSignal(bool, str)  # success, output path or error message

    def __init__(self, iface, message_bar: QgsMessageBar, parent: QWidget | None = None):
        super().__init__(parent)
        tr = self.tr
        self.iface = iface
        self.message_bar = message_bar
        self.task = None
        self.feedback: DialogFeedback | None = None
        self.context = None
        self.params: dict = {}
        self.device = ""
        self.started = 0.0
        self.result_layer: QgsRasterLayer | None = None
        self.uncertainty_layer: QgsRasterLayer | None = None
        self.report_path: str | None = None
        self.add_results: Callable[[dict], str] = self._add_results
        self.algorithm_id = FUSE  # what Run starts by default; the dialog's Series mode sets nightlightfusion:series
        self.help_anchor = "dialog"
        # Injectable for tests: asks before an existing output is replaced.
        self.confirm_overwrite: Callable[[list[str]], bool] = self._ask_overwrite
        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self._show_progress)
        self.output_widget = QgsFileWidget(self)
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter(tr("GeoTIFF (*.tif *.tiff)"))
        self.output_widget.lineEdit().setPlaceholderText(tr("[Save to temporary file]"))
        self.output_widget.setToolTip(tr("Output GeoTIFF; empty: a temporary file"))
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setToolTip(tr("Progress of the run"))
        self.progress_label = QLabel(self)
        self.progress_label.setToolTip(tr("Tiles done/total, time left and the device"))
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextFormat(1)  # Qt.RichText: links to the report
        self.status.setOpenExternalLinks(True)
        self.buttons = QDialogButtonBox(self)
        self.help_button = QPushButton(tr("Help"), self)
        self.help_button.setToolTip(tr("Open the help page"))
        self.run_button = QPushButton(tr("Run"), self)
        self.run_button.setToolTip(tr("Run nightlightfusion:fuse in the background"))
        self.cancel_button = QPushButton(tr("Cancel"), self)
        self.cancel_button.setToolTip(tr("Stop the run after the current batch; nothing is written"))
        self.buttons.addButton(self.help_button, QDialogButtonBox.HelpRole)
        self.buttons.addButton(self.run_button, QDialogButtonBox.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        close = self.buttons.addButton(QDialogButtonBox.Close)
        close.setToolTip(tr("Close the dialog; a running task goes on and reports in the message bar"))
        output = QFormLayout()
        output.addRow(tr("Output"), self.output_widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(output)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self.buttons.rejected.connect(self.close_requested)
        self.help_button.clicked.connect(self.show_help)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.task is not None

    def output_path(self) -> str:
        return self.output_widget.filePath()

    def show_ready(self, reason: str) -> None:
        """Run enabled unless `reason` (shown in the status line and Run's tooltip) or a run is going on."""
        running = self.running
        self.run_button.setEnabled(not reason and not running)
        self.run_button.setToolTip(reason or self.tr("Run {} in the background").format(self.algorithm_id))
        self.cancel_button.setEnabled(running)
        if running:
            return
        if reason:
            self.status.setText(reason)
        elif self.status.text() == "" or self.status.property("reason"):
            self.status.setText("")  # a reason that no longer holds goes; "Done…" and "Not run…" stay
        self.status.setProperty("reason", bool(reason))

    def _ask_overwrite(self, paths: list[str]) -> bool:
        answer = QMessageBox.question(
            self,
            self.tr("Overwrite?"),
            self.tr("These files exist and will be replaced:\n{}\n\nReplace them?").format("\n".join(paths)),
            QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No,
        )
        return answer == QMessageBox.Yes

    def start(
        self,
        params: dict,
        device: str,
        before: Callable[[], None] = lambda: None,
        algorithm_id: str | None = None,
        outputs: list[str] | None = None,
        add_results: Callable[[dict], str] | None = None,
    ) -> bool:
        """Start the task with `params` on `device` (for the labels); `before` runs once the run is sure to start.
        A series passes its algorithm, the files it may replace (`outputs`; default: fuse's) and `add_results`
        (adds its layers, returns the message); with an OVERWRITE parameter, it is set to the user's answer."""
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id or self.algorithm_id)
        if algorithm is None:
            self.status.setText(self.tr("The Nightlight Fusion Processing provider is not loaded; re-enable the plugin."))
            return False
        if outputs is None:
            outputs = [params["OUTPUT"], params.get("UNCERTAINTY"), params.get("REPORT")]
        existing = [p for p in outputs if p and p != QgsProcessing.TEMPORARY_OUTPUT and os.path.exists(p)]
        if existing and not self.confirm_overwrite(existing):
            self.status.setText(self.tr("Not run: choose another output file."))
            return False
        if "OVERWRITE" in params:
            params = {**params, "OVERWRITE": bool(existing)}  # only what the user agreed to replace
        self.add_results = add_results or self._add_results
        before()  # the task prepares the algorithm in its constructor: remembered settings must be saved by then
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = DialogFeedback()
        self.params, self.device = params, device
        self.task = QgsProcessingAlgRunnerTask(algorithm, params, self.context, self.feedback)
        self.task.executed.connect(self._on_executed)
        self.progress.setValue(0)
        self.progress_label.setText("")
        self.status.setProperty("reason", False)
        self.status.setText(self.tr("Running on {}…").format(device))
        self.started = time.monotonic()
        QgsApplication.taskManager().addTask(self.task)
        self.timer.start()
        self.state_changed.emit()
        return True

    def _show_progress(self) -> None:
        if self.feedback is None:
            return
        percent = self.feedback.progress()
        self.progress.setValue(int(percent))
        elapsed = time.monotonic() - self.started
        parts = [f"{percent:.0f}%"]
        if self.feedback.detail:
            parts.append(self.feedback.detail)
        if 2 < percent < 100:
            parts.append(self.tr("about {} left").format(format_seconds(elapsed * (100 - percent) / percent)))
        parts.append(self.tr("device: {}").format(self.device))
        self.progress_label.setText(" · ".join(parts))

    def cancel(self) -> None:
        if self.feedback is not None and self.task is not None:
            self.feedback.cancel()
            self.status.setText(self.tr("Cancelling (stops after the current batch)…"))

    def _on_executed(self, successful: bool, results: dict) -> None:
        self.timer.stop()
        cancelled = self.feedback.isCanceled()
        self.task = None
        if successful:
            self._show_progress()
            message = self.add_results(results)
            output = results["OUTPUT"]
            report = results.get("REPORT")
            self.report_path = report or None
            link = f' · <a href="{QUrl.fromLocalFile(report).toString()}">{self.tr("run report")}</a>' if report else ""
            where = results.get("DEVICE") or self.device
            if results.get("PRECISION"):
                where += f", {results['PRECISION'].split(' (')[0]}"  # e.g. "cpu, int8"; the tooltip says why
                self.status.setToolTip(self.tr("Precision: {}").format(results["PRECISION"]))
            self.status.setText(self.tr("Done on {}: {}").format(where, output) + link)
            if report:
                message += self.tr(" · report: {}").format(report)
            self._notify(message, success=True)
            self.finished_run.emit(True, output)
        else:
            message = (
                self.tr("Cancelled; no output was written.")
                if cancelled
                else ("\n".join(self.feedback.errors) or self.tr("The run failed; see the Processing log."))
            )
            self.status.setText(message)
            self._notify(message, success=False, warning=cancelled)
            self.finished_run.emit(False, message)
        self.state_changed.emit()

    def _add_results(self, results: dict) -> str:
        model = self.params.get("MODEL")
        layer = QgsRasterLayer(results["OUTPUT"], self.tr("Fused radiance ({})").format(model))
        apply_night_lights_style(layer)
        layer.setMetadata(self._metadata(layer, results, self.tr("VIIRS-like radiance (nW/cm²/sr)")))
        self.uncertainty_layer = None
        if results.get("UNCERTAINTY"):
            spread = QgsRasterLayer(results["UNCERTAINTY"], self.tr("Uncertainty ({})").format(model))
            apply_uncertainty_style(spread)
            spread.setMetadata(self._metadata(spread, results, self.tr("Ensemble standard deviation (nW/cm²/sr)")))
            self.uncertainty_layer = spread
        QgsProject.instance().addMapLayers([m for m in (self.uncertainty_layer, layer) if m is not None])
        self.result_layer = layer
        return self.tr("Fused raster added: {}").format(results["OUTPUT"])

    def _metadata(self, layer: QgsRasterLayer, results: dict, what: str) -> QgsLayerMetadata:
        tags = {}
        try:
            import rasterio

            with rasterio.open(results["OUTPUT"]) as src:
                tags = src.tags()
        except Exception:  # the abstract is informative; a missing tag must not lose the layer
            pass
        dmsp, viirs = self.params.get("DMSP"), self.params.get("VIIRS")
        lines = [
            what,
            f"Model: {tags.get('NLF_METHOD', self.params.get('MODEL'))} ({tags.get('NLF_MODEL_FAMILY', '')})",
            f"Sampler: {results.get('SAMPLER', '')}",
            f"NFE: {tags.get('NLF_NFE', '—')}",
            f"Ensemble: {tags.get('NLF_ENSEMBLE', '1')}",
            f"Seed: {tags.get('NLF_SEED', self.params.get('SEED'))}",
            f"DMSP input: {layer_file(dmsp) if dmsp else ''}",
            f"VIIRS reference: {layer_file(viirs) if viirs else 'none'}",
            f"Intercalibration: {tags.get('NLF_INTERCALIBRATION', '')}",
            f"Mask: {tags.get('NLF_MASK', 'none')}",
            f"Device: {results.get('DEVICE', '')}",
            f"Run time: {results.get('SECONDS') or 0:.1f} s",
            f"Created: {tags.get('NLF_CREATED', '')}",
            f"Software: {tags.get('NLF_SOFTWARE', '')}",
        ]
        if results.get("QA_PEARSON_R") is not None and math.isfinite(results["QA_PEARSON_R"]):
            lines.append(f"QA: re-simulated DMSP vs input DMSP, Pearson r = {results['QA_PEARSON_R']:.3f}")
        if results.get("REPORT"):
            lines.append(f"Report: {results['REPORT']}")
        metadata = layer.metadata()
        metadata.setTitle(layer.name())
        metadata.setAbstract("\n".join(lines))
        metadata.setKeywords({"Nightlight Fusion": ["night lights", "DMSP-OLS", "VIIRS DNB", "fusion"]})
        return metadata

    def _notify(self, message: str, success: bool, warning: bool = False) -> None:
        """In QGIS's message bar (it outlives the dialog), else the dialog's own."""
        bar = self.iface.messageBar() if self.iface is not None and self.iface.messageBar() is not None else self.message_bar
        level = Qgis.Success if success else (Qgis.Warning if warning else Qgis.Critical)
        bar.pushMessage("Nightlight Fusion", message, level=level, duration=10 if success or warning else 0)

    def show_help(self) -> bool:
        return QDesktopServices.openUrl(QUrl(help_url(self.help_anchor)))
