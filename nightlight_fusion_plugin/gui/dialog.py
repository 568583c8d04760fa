"""The analyst's dialog: composes the inputs, area, model, advanced and run panels; runs `nightlightfusion:fuse`,
or in Series mode (the series panel instead of the inputs panel) `nightlightfusion:series`.

Everything the dialog does is a parameter of one of those algorithms (see `parameters()`): the dialog is a
convenience over Processing, not a second code path. Each panel owns one concern and says what the others need
by signals; the dialog wires them and decides whether Run is possible (`_update_state`).
"""

from __future__ import annotations

from qgis.core import Qgis, QgsProcessing
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QButtonGroup, QDialog, QHBoxLayout, QLabel, QRadioButton, QSizePolicy, QVBoxLayout, QWidget

from ..processing.series_layers import add_year_layers, set_up_playback, year_layers
from .advanced_panel import AdvancedPanel
from .area_panel import AREA_CANVAS, AREA_DRAWN, AREA_INTERSECTION, AREA_POLYGONS, AreaPanel  # noqa: F401 (re-exported)
from .common import format_seconds, onnx_devices  # noqa: F401 (re-exported: earlier code imported them from here)
from .inputs_panel import InputsPanel, layer_file, layer_kind, raster_layers  # noqa: F401
from .model_panel import ModelPanel
from .run_panel import FUSE, DialogFeedback, RunPanel
from .series_panel import SeriesPanel

SERIES = "nightlightfusion:series"

ErrorCollectingFeedback = DialogFeedback  # the name earlier code used


def _forward(panel: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self, panel), name), doc=f"{panel}.{name}")


class FuseDialog(QDialog):
    """Non-modal: the run is a QgsTask, so QGIS stays responsive and the dialog may be closed meanwhile."""

    finished_run = pyqtSignal(bool, str)  # success, output path or error message
    measured = pyqtSignal(str)  # the speed label after a timing on this machine

    # what plugin.py and tests/test_plugin.py reach on the dialog itself
    dmsp_combo = _forward("inputs_panel", "dmsp_combo")
    viirs_combo = _forward("inputs_panel", "viirs_combo")
    output_widget = _forward("run_panel", "output_widget")
    run_button = _forward("run_panel", "run_button")
    cancel_button = _forward("run_panel", "cancel_button")
    status = _forward("run_panel", "status")
    result_layer = _forward("run_panel", "result_layer")

    def __init__(self, iface=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.iface = iface
        self.run_disabled_reason = ""
        self.setWindowTitle(self.tr("Nightlight Fusion"))
        self.message_bar = QgsMessageBar(self)
        self.message_bar.setSizePolicy(QSizePolicy.Minimum, QSizePolicy.Fixed)
        self.no_layers_label = QLabel(
            self.tr(
                "No raster layers are loaded. Load a DMSP-OLS stable-lights raster (NOAA F1x…_stable_lights, DN 0–63) "
                "and optionally a VIIRS DNB radiance composite (avg_rade9h, nW/cm²/sr) into the project to start: "
                "Layer › Add Layer › Add Raster Layer…"
            ),
            self,
        )
        self.no_layers_label.setWordWrap(True)
        self.no_layers_label.setStyleSheet("QLabel { background: #fff3cd; padding: 6px; }")
        self.single_radio = QRadioButton(self.tr("Single year"), self)
        self.single_radio.setToolTip(self.tr("Fuse one DMSP layer into one VIIRS-like map (nightlightfusion:fuse)"))
        self.series_radio = QRadioButton(self.tr("Series (several years)"), self)
        self.series_radio.setToolTip(
            self.tr("One VIIRS-like map per DMSP year on one grid, for the Temporal Controller (nightlightfusion:series)")
        )
        self.single_radio.setChecked(True)
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.single_radio)
        self.mode_group.addButton(self.series_radio)
        mode_row = QWidget(self)
        mode_layout = QHBoxLayout(mode_row)
        mode_layout.setContentsMargins(0, 0, 0, 0)
        mode_layout.addWidget(QLabel(self.tr("Mode"), mode_row))
        mode_layout.addWidget(self.single_radio)
        mode_layout.addWidget(self.series_radio)
        mode_layout.addStretch(1)
        self.series_layers: list = []  # the last series run's per-year layers
        self.inputs_panel = InputsPanel(self)
        self.series_panel = SeriesPanel(self)
        self.series_panel.setVisible(False)
        self.area_panel = AreaPanel(iface, self)
        self.model_panel = ModelPanel(self.message_bar, self)
        self.advanced_panel = AdvancedPanel(self)
        self.run_panel = RunPanel(iface, self.message_bar, self)
        layout = QVBoxLayout(self)
        for widget in (self.message_bar, mode_row, self.no_layers_label, self.inputs_panel, self.series_panel):
            layout.addWidget(widget)
        for widget in (self.area_panel, self.model_panel):
            layout.addWidget(widget)
        layout.addWidget(self.advanced_panel)
        layout.addStretch(1)  # with Advanced collapsed the spare height goes here, not into the group boxes
        layout.addWidget(self.run_panel)

        self.inputs_panel.changed.connect(self._update_state)
        self.series_panel.changed.connect(self._update_state)
        self.series_panel.message.connect(lambda text: self.message_bar.pushMessage(text, level=Qgis.Warning))
        self.series_radio.toggled.connect(self._on_mode_changed)
        self.inputs_panel.satellite_year_guessed.connect(self.advanced_panel.set_satellite_year)
        self.inputs_panel.reference_year_guessed.connect(self.advanced_panel.set_reference_year)
        self.area_panel.changed.connect(self._update_state)
        self.area_panel.message.connect(self.run_panel.status.setText)
        self.model_panel.changed.connect(self._update_state)
        self.model_panel.variant_changed.connect(self.advanced_panel.set_model)
        self.model_panel.measured.connect(self.measured)
        self.advanced_panel.changed.connect(self._on_advanced_changed)
        self.run_panel.run_requested.connect(self.run)
        self.run_panel.close_requested.connect(self.close)
        self.run_panel.state_changed.connect(self._update_state)
        self.run_panel.finished_run.connect(self.finished_run)
        # the panels filled themselves before these connections: hand each the others' initial state once
        self.advanced_panel.set_satellite_year(*self.inputs_panel.guess_satellite_year())
        self.advanced_panel.set_reference_year(self.inputs_panel.guess_reference_year())
        self.advanced_panel.set_model(self.model_panel.selected_model())
        self._on_advanced_changed()

    def series_mode(self) -> bool:
        return self.series_radio.isChecked()

    def set_series_mode(self, series: bool) -> None:
        (self.series_radio if series else self.single_radio).setChecked(True)

    def _on_mode_changed(self, *args) -> None:
        series = self.series_mode()
        self.inputs_panel.setVisible(not series)
        self.series_panel.setVisible(series)
        self.advanced_panel.set_series_mode(series)
        self.run_panel.algorithm_id = SERIES if series else FUSE
        self.run_panel.help_anchor = "dialog-series" if series else "dialog"
        self.output_widget.setToolTip(
            self.tr("The series: a GeoTIFF with one band per year (band names = years); empty: a temporary file")
            if series
            else self.tr("Output GeoTIFF; empty: a temporary file")
        )
        self._update_state()

    def _on_advanced_changed(self, *args) -> None:
        self.model_panel.set_machine(self.advanced_panel.device(), self.advanced_panel.threads())
        self._update_state()

    def _update_state(self, *args) -> None:
        """Enable what applies, label the area and speed, and find the reason (if any) Run cannot start."""
        inputs, area, model, advanced = self.inputs_panel, self.area_panel, self.model_panel, self.advanced_panel
        series = self.series_mode()
        running = self.run_panel.running
        # a series may start from files only (Add DMSP files…): the project needs no rasters then
        has_rasters = bool(raster_layers()) or series
        self.no_layers_label.setVisible(not has_rasters)
        for panel in (inputs, self.series_panel, area, model, advanced):
            panel.setEnabled(has_rasters and not running)
        if series:
            area.set_inputs(self.series_panel.first_dmsp(), self.series_panel.reference())
            model.recommend_for(bool(self.series_panel.viirs_rows()))
        else:
            inputs.show_warning(has_rasters)
            area.set_inputs(inputs.dmsp_layer(), inputs.viirs_layer())
            model.recommend_for(inputs.viirs_layer() is not None)
        reason = ""
        if not has_rasters:
            reason = self.tr(
                "Load a DMSP-OLS stable-lights raster (and optionally a VIIRS DNB raster) into the project to start."
            )
        elif series:
            reason = self.series_panel.problem()
            if not reason and area.mode() == AREA_POLYGONS:
                reason = self.tr("A series has no polygon mask: choose the intersection, the canvas extent or a drawn rectangle.")
            if not reason:
                _, reason = area.area_rectangle()
        elif inputs.dmsp_layer() is None:
            reason = self.tr("Load a DMSP-OLS stable-lights raster (single band, DN 0–63) and choose it as the DMSP layer.")
        else:
            _, reason = area.area_rectangle()
        problem = model.problem()
        reason = reason or problem
        model.show_state(problem)
        size = area.show_size(reason)
        pixels = size[0] if size is not None else None
        if pixels is not None and series:
            pixels *= len(self.series_panel.dmsp_rows())  # every DMSP file is one fusion run
        ensemble = 1 if series else advanced.ensemble()  # a series draws one sample per year
        model.speed_label.setText(model.speed_text(pixels, advanced.sampler(), advanced.steps_spin.value(), ensemble))
        self.run_disabled_reason = reason
        self.run_panel.show_ready(reason)

    def save_settings(self) -> None:
        self.advanced_panel.save_settings()

    def parameters(self) -> dict:
        """The `nightlightfusion:fuse` (Series mode: `nightlightfusion:series`) parameters this dialog stands for."""
        entry = self.model_panel.selected_model()
        output = self.run_panel.output_path()
        if self.series_mode():
            params = {
                **self.series_panel.parameters(),
                "MODEL": entry.id if entry else None,
                "OUTPUT": output or QgsProcessing.TEMPORARY_OUTPUT,
                **self.advanced_panel.series_parameters(),
                **self.area_panel.parameters(),
                "OVERWRITE": False,  # the run panel sets it once the user agreed to replace the files that exist
            }
        else:
            params = {
                **self.inputs_panel.parameters(),
                # the model itself and the precision: the engine resolves auto by its measurement on this machine
                "MODEL": (entry.variant_of or entry.id) if entry else None,
                "PRECISION": self.model_panel.precision(),
                "OUTPUT": output or QgsProcessing.TEMPORARY_OUTPUT,
                **self.advanced_panel.parameters(output),
                **self.area_panel.parameters(),
            }
        level = self.model_panel.speed_level()
        if level is not None:
            params["SPEED"] = level.level
        return params

    def run(self) -> None:
        self._update_state()
        if self.run_disabled_reason or self.run_panel.running:
            return
        device = self.model_panel.resolved_device()
        if not self.series_mode():
            self.run_panel.start(self.parameters(), device, before=self.save_settings)
            return
        self.run_panel.start(
            self.parameters(),
            device,
            before=self.save_settings,
            algorithm_id=SERIES,
            outputs=self.series_panel.outputs(self.run_panel.output_path()),
            add_results=self._add_series,
        )

    def _add_series(self, results: dict) -> str:
        """The per-year layers, styled alike and time-stamped, in one group; the Temporal Controller set to play them."""
        labels = [label for label in (results.get("LABELS") or "").split(",") if label]
        layers = year_layers(results.get("OUTPUT"), list(results.get("PER_YEAR_FILES") or []), labels)
        for layer, label in zip(layers, labels):
            metadata = layer.metadata()
            metadata.setTitle(layer.name())
            metadata.setAbstract(
                "\n".join(
                    [
                        self.tr("VIIRS-like radiance (nW/cm²/sr), {} of the series {}").format(label, results.get("OUTPUT")),
                        f"Model: {self.run_panel.params.get('MODEL')}",
                        f"Seed: {self.run_panel.params.get('SEED')}",
                        f"Series report: {results.get('REPORT')}",
                    ]
                )
            )
            layer.setMetadata(metadata)
        if layers:
            add_year_layers(layers, self.tr("Night lights {}–{}").format(labels[0].split()[0], labels[-1].split()[0]))
            canvas = self.iface.mapCanvas() if self.iface is not None else None
            set_up_playback(labels, canvas)
        self.series_layers = layers
        return self.tr("Series of {} years added ({}); play it with the Temporal Controller: {}").format(
            len(layers), ", ".join(labels), results.get("OUTPUT")
        )

    def closeEvent(self, event):  # noqa: N802
        self.area_panel.release_map_tool()
        super().closeEvent(event)
