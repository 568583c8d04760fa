"""The analyst's dialog: inputs, area, model, output; runs `nightlightfusion:fuse` as a background QgsTask."""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsProcessing,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsReferencedRectangle,
)
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..core.models import available_models, default_model
from .style import apply_night_lights_style

AREA_INTERSECTION, AREA_CANVAS = 0, 1


class ErrorCollectingFeedback(QgsProcessingFeedback):
    """Keeps the algorithm's error messages so the dialog can show them."""

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []

    def reportError(self, error, fatalError=False):  # noqa: N802,N803
        self.errors.append(error)
        super().reportError(error, fatalError)


class FuseDialog(QDialog):
    """Non-modal: the run is a QgsTask, so QGIS stays responsive and the dialog may be closed meanwhile."""

    finished_run = pyqtSignal(bool, str)  # success, output path or error message

    def __init__(self, iface=None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.task = None
        self.feedback = None
        self.context = None
        self.result_layer: QgsRasterLayer | None = None
        self.setWindowTitle(self.tr("Nightlight Fusion"))
        self._build()
        self._update_state()

    # --- widgets -------------------------------------------------------------------------------------
    def _build(self) -> None:
        form = QFormLayout()
        self.dmsp_combo = QgsMapLayerComboBox(self)
        self.dmsp_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.dmsp_combo.setToolTip(self.tr("DMSP-OLS stable lights of the target year (single band, DN 0–63)"))
        self.viirs_combo = QgsMapLayerComboBox(self)
        self.viirs_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.viirs_combo.setAllowEmptyLayer(True)
        self.viirs_combo.setLayer(None)
        self.viirs_combo.setToolTip(
            self.tr(
                "Optional VIIRS DNB composite of a reference year (nW/cm²/sr); "
                "the output uses its grid and the calibration is fitted to it"
            )
        )
        self.area_combo = QComboBox(self)
        self.area_combo.addItems([self.tr("Intersection of the input layers"), self.tr("Current map canvas extent")])
        self.area_combo.setToolTip(self.tr("Area to fuse"))
        self.model_combo = QComboBox(self)
        for model in available_models():
            self.model_combo.addItem(f"{model.id} — {model.family}", model.id)
            self.model_combo.setItemData(self.model_combo.count() - 1, model.summary, 3)  # Qt.ToolTipRole
        self.model_combo.setCurrentIndex(self.model_combo.findData(default_model().id))
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip(self.tr("Random seed (the same seed gives the same result)"))
        self.output_widget = QgsFileWidget(self)
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter(self.tr("GeoTIFF (*.tif *.tiff)"))
        self.output_widget.lineEdit().setPlaceholderText(self.tr("[Save to temporary file]"))
        self.output_widget.setToolTip(self.tr("Output GeoTIFF; empty: a temporary file"))
        form.addRow(self.tr("DMSP layer"), self.dmsp_combo)
        form.addRow(self.tr("VIIRS reference"), self.viirs_combo)
        form.addRow(self.tr("Area"), self.area_combo)
        form.addRow(self.tr("Model"), self.model_combo)
        form.addRow(self.tr("Seed"), self.seed_spin)
        form.addRow(self.tr("Output"), self.output_widget)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.run_button = QPushButton(self.tr("Run"), self)
        self.cancel_button = QPushButton(self.tr("Cancel"), self)
        self.buttons.addButton(self.run_button, QDialogButtonBox.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        self.buttons.addButton(QDialogButtonBox.Close)
        self.buttons.rejected.connect(self.close)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.dmsp_combo.layerChanged.connect(self._update_state)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

    def _update_state(self) -> None:
        running = self.task is not None
        has_dmsp = self.dmsp_combo.currentLayer() is not None
        self.run_button.setEnabled(has_dmsp and not running)
        self.cancel_button.setEnabled(running)
        if not has_dmsp and not running:
            self.status.setText(
                self.tr("Load a DMSP-OLS stable-lights raster (and optionally a VIIRS DNB raster) into the project to start.")
            )

    # --- running -------------------------------------------------------------------------------------
    def parameters(self) -> dict:
        """The `nightlightfusion:fuse` parameters this dialog stands for."""
        params = {
            "DMSP": self.dmsp_combo.currentLayer(),
            "VIIRS": self.viirs_combo.currentLayer(),
            "MODEL": self.model_combo.currentData(),
            "SEED": self.seed_spin.value(),
            "OUTPUT": self.output_widget.filePath() or QgsProcessing.TEMPORARY_OUTPUT,
        }
        if self.area_combo.currentIndex() == AREA_CANVAS and self.iface is not None:
            canvas = self.iface.mapCanvas()
            params["EXTENT"] = QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        return params

    def run(self) -> None:
        algorithm = QgsApplication.processingRegistry().createAlgorithmById("nightlightfusion:fuse")
        if algorithm is None:
            self.status.setText(self.tr("The Nightlight Fusion Processing provider is not loaded; re-enable the plugin."))
            return
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = ErrorCollectingFeedback()
        self.feedback.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.task = QgsProcessingAlgRunnerTask(algorithm, self.parameters(), self.context, self.feedback)
        self.task.executed.connect(self._on_executed)
        self.progress.setValue(0)
        self.status.setText(self.tr("Running…"))
        QgsApplication.taskManager().addTask(self.task)
        self._update_state()

    def cancel(self) -> None:
        if self.feedback is not None:
            self.feedback.cancel()
            self.status.setText(self.tr("Cancelling…"))

    def _on_executed(self, successful: bool, results: dict) -> None:
        cancelled = self.feedback.isCanceled()
        self.task = None
        if successful:
            output = results["OUTPUT"]
            layer = QgsRasterLayer(output, self.tr("Fused radiance ({})").format(self.model_combo.currentData()))
            apply_night_lights_style(layer)
            QgsProject.instance().addMapLayer(layer)
            self.result_layer = layer
            self.status.setText(self.tr("Done: {}").format(output))
            self._notify(self.tr("Fused raster added: {}").format(output), success=True)
            self.finished_run.emit(True, output)
        else:
            message = (
                self.tr("Cancelled; no output was written.")
                if cancelled
                else ("\n".join(self.feedback.errors) or self.tr("The run failed; see the Processing log."))
            )
            self.status.setText(message)
            if not cancelled:
                self._notify(message, success=False)
            self.finished_run.emit(False, message)
        self._update_state()

    def _notify(self, message: str, success: bool) -> None:
        if self.iface is not None and self.iface.messageBar() is not None:
            from qgis.core import Qgis

            level = Qgis.Success if success else Qgis.Critical
            self.iface.messageBar().pushMessage("Nightlight Fusion", message, level=level, duration=8 if success else 0)
