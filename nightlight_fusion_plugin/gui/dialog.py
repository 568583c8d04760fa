"""The analyst's dialog: composes the inputs, area, model, advanced and run panels; runs `nightlightfusion:fuse`.

Everything the dialog does is a `nightlightfusion:fuse` parameter (see `parameters()`): the dialog is a
convenience over Processing, not a second code path. Each panel owns one concern and says what the others need
by signals; the dialog wires them and decides whether Run is possible (`_update_state`).
"""

from __future__ import annotations

from qgis.core import QgsProcessing
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QDialog, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .advanced_panel import AdvancedPanel
from .area_panel import AREA_CANVAS, AREA_DRAWN, AREA_INTERSECTION, AREA_POLYGONS, AreaPanel  # noqa: F401 (re-exported)
from .common import format_seconds, onnx_devices  # noqa: F401 (re-exported: earlier code imported them from here)
from .inputs_panel import InputsPanel, layer_file, layer_kind, raster_layers  # noqa: F401
from .model_panel import ModelPanel
from .run_panel import DialogFeedback, RunPanel

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
        self.inputs_panel = InputsPanel(self)
        self.area_panel = AreaPanel(iface, self)
        self.model_panel = ModelPanel(self.message_bar, self)
        self.advanced_panel = AdvancedPanel(self)
        self.run_panel = RunPanel(iface, self.message_bar, self)
        layout = QVBoxLayout(self)
        for widget in (self.message_bar, self.no_layers_label, self.inputs_panel, self.area_panel, self.model_panel):
            layout.addWidget(widget)
        layout.addWidget(self.advanced_panel)
        layout.addStretch(1)  # with Advanced collapsed the spare height goes here, not into the group boxes
        layout.addWidget(self.run_panel)

        self.inputs_panel.changed.connect(self._update_state)
        self.inputs_panel.satellite_year_guessed.connect(self.advanced_panel.set_satellite_year)
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
        self.advanced_panel.set_model(self.model_panel.selected_model())
        self._on_advanced_changed()

    def _on_advanced_changed(self, *args) -> None:
        self.model_panel.set_machine(self.advanced_panel.device(), self.advanced_panel.threads())
        self._update_state()

    def _update_state(self, *args) -> None:
        """Enable what applies, label the area and speed, and find the reason (if any) Run cannot start."""
        inputs, area, model, advanced = self.inputs_panel, self.area_panel, self.model_panel, self.advanced_panel
        running = self.run_panel.running
        has_rasters = bool(raster_layers())
        self.no_layers_label.setVisible(not has_rasters)
        for panel in (inputs, area, model, advanced):
            panel.setEnabled(has_rasters and not running)
        inputs.show_warning(has_rasters)
        area.set_inputs(inputs.dmsp_layer(), inputs.viirs_layer())
        model.recommend_for(inputs.viirs_layer() is not None)
        reason = ""
        if not has_rasters:
            reason = self.tr(
                "Load a DMSP-OLS stable-lights raster (and optionally a VIIRS DNB raster) into the project to start."
            )
        elif inputs.dmsp_layer() is None:
            reason = self.tr("Load a DMSP-OLS stable-lights raster (single band, DN 0–63) and choose it as the DMSP layer.")
        else:
            _, reason = area.area_rectangle()
        problem = model.problem()
        reason = reason or problem
        model.show_state(problem)
        size = area.show_size(reason)
        pixels = size[0] if size is not None else None
        model.speed_label.setText(model.speed_text(pixels, advanced.sampler(), advanced.steps_spin.value(), advanced.ensemble()))
        self.run_disabled_reason = reason
        self.run_panel.show_ready(reason)

    def save_settings(self) -> None:
        self.advanced_panel.save_settings()

    def parameters(self) -> dict:
        """The `nightlightfusion:fuse` parameters this dialog stands for."""
        entry = self.model_panel.selected_model()
        output = self.run_panel.output_path()
        params = {
            **self.inputs_panel.parameters(),
            "MODEL": entry.id if entry else None,
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
        self.run_panel.start(self.parameters(), self.model_panel.resolved_device(), before=self.save_settings)

    def closeEvent(self, event):  # noqa: N802
        self.area_panel.release_map_tool()
        super().closeEvent(event)
