"""The analyst's dialog: inputs, area, model, speed, device, output; runs `nightlightfusion:fuse` as a QgsTask.

Everything the dialog does is a `nightlightfusion:fuse` parameter (see `parameters()`): the dialog is a
convenience over Processing, not a second code path.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsDistanceArea,
    QgsGeometry,
    QgsLayerMetadata,
    QgsMapLayerProxyModel,
    QgsProcessing,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsSettings,
    QgsTask,
)
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget, QgsMapLayerComboBox, QgsMapToolExtent, QgsMessageBar
from qgis.PyQt.QtCore import QTimer, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import FusionError
from ..core.intercalibration import parse_satellite_year
from ..core.models import ModelEntry, available_models, default_model
from ..processing.common import help_url
from .style import apply_night_lights_style, apply_uncertainty_style

AREA_INTERSECTION, AREA_CANVAS, AREA_DRAWN, AREA_POLYGONS = 0, 1, 2, 3
VIIRS_PIXEL_DEG = 1 / 240
SETTINGS = "NightlightFusion/"
DEVICE_NAMES = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "directml",
    "CoreMLExecutionProvider": "coreml",
}
DMSP_NAME = re.compile(r"F\d{2}(19|20)\d{2}|dmsp|\bols\b|stable", re.IGNORECASE)
VIIRS_NAME = re.compile(r"viirs|dnb|vnl|rade|npp", re.IGNORECASE)
INTEGER_TYPES = (Qgis.Byte, Qgis.UInt16, Qgis.Int16, Qgis.UInt32, Qgis.Int32)


class DialogFeedback(QgsProcessingFeedback):
    """Keeps the algorithm's errors and the latest core message ("Tile 3/40") for the progress label."""

    def __init__(self):
        super().__init__()
        self.errors: list[str] = []
        self.detail = ""

    def reportError(self, error, fatalError=False):  # noqa: N802,N803
        self.errors.append(error)
        super().reportError(error, fatalError)


ErrorCollectingFeedback = DialogFeedback  # the name earlier code used


def onnx_devices() -> list[str]:
    """Devices onnxruntime offers here (cpu always)."""
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        providers = []
    devices = [DEVICE_NAMES[p] for p in providers if p in DEVICE_NAMES]
    return list(dict.fromkeys(["cpu"] + devices))


def layer_kind(layer: QgsRasterLayer | None) -> str | None:
    """'dmsp' (integer DN 0–63), 'viirs' (float or beyond 63) or None, from sampled band statistics (cheap)."""
    if layer is None or not layer.isValid() or layer.bandCount() != 1:
        return None
    provider = layer.dataProvider()
    stats = provider.bandStatistics(1, QgsRasterBandStats.Min | QgsRasterBandStats.Max, layer.extent(), 2500)
    integer = provider.dataType(1) in INTEGER_TYPES
    if integer and stats.minimumValue >= 0 and stats.maximumValue <= 63:
        return "dmsp"
    if not integer or stats.maximumValue > 63 or stats.minimumValue < 0:
        return "viirs"
    return None


def layer_file(layer) -> str:
    return layer.source().split("|")[0] if layer is not None else ""


class FuseDialog(QDialog):
    """Non-modal: the run is a QgsTask, so QGIS stays responsive and the dialog may be closed meanwhile."""

    finished_run = pyqtSignal(bool, str)  # success, output path or error message
    measured = pyqtSignal(str)  # the speed label after a timing on this machine

    def __init__(self, iface=None, parent=None):
        super().__init__(parent)
        self.iface = iface
        self.task = None
        self.feedback = None
        self.context = None
        self.started = 0.0
        self.result_layer: QgsRasterLayer | None = None
        self.uncertainty_layer: QgsRasterLayer | None = None
        self.report_path: str | None = None
        self.drawn_extent: QgsReferencedRectangle | None = None
        self.map_tool = None
        self.details_dialog = None
        self.measure_task = None
        self.run_disabled_reason = ""
        self.measurements: dict[tuple[str, str], float] = {}  # (model, device) -> seconds per Mpx per NFE
        self.models: dict[str, ModelEntry] = {}
        self.model_problems: dict[str, str] = {}
        # Injectable for tests: asks before an existing output is replaced.
        self.confirm_overwrite = self._ask_overwrite
        self.settings = QgsSettings()
        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self._show_progress)
        self.setWindowTitle(self.tr("Nightlight Fusion"))
        self._build()
        self._load_settings()
        self._guess_layers()
        project = QgsProject.instance()
        project.layersAdded.connect(self._on_layers_changed)
        project.layersRemoved.connect(self._on_layers_changed)
        self._on_dmsp_changed()
        self._on_model_changed()

    # --- widgets -------------------------------------------------------------------------------------
    def _build(self) -> None:
        tr = self.tr
        self.message_bar = QgsMessageBar(self)
        self.message_bar.setSizePolicy(QSizePolicy.Minimum, QSizePolicy.Fixed)
        self.no_layers_label = QLabel(
            tr(
                "No raster layers are loaded. Load a DMSP-OLS stable-lights raster (NOAA F1x…_stable_lights, DN 0–63) "
                "and optionally a VIIRS DNB radiance composite (avg_rade9h, nW/cm²/sr) into the project to start: "
                "Layer › Add Layer › Add Raster Layer…"
            ),
            self,
        )
        self.no_layers_label.setWordWrap(True)
        self.no_layers_label.setStyleSheet("QLabel { background: #fff3cd; padding: 6px; }")

        # Inputs
        self.inputs_group = QGroupBox(tr("Inputs"), self)
        inputs = QFormLayout(self.inputs_group)
        self.dmsp_combo = QgsMapLayerComboBox(self)
        self.dmsp_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.dmsp_combo.setToolTip(tr("DMSP-OLS stable lights of the target year (single band, DN 0–63)"))
        self.viirs_combo = QgsMapLayerComboBox(self)
        self.viirs_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.viirs_combo.setAllowEmptyLayer(True)
        self.viirs_combo.setLayer(None)
        self.viirs_combo.setToolTip(
            tr(
                "Optional VIIRS DNB composite of a reference year (nW/cm²/sr); "
                "the output uses its grid and the calibration is fitted to it"
            )
        )
        self.swap_label = QLabel(self)
        self.swap_label.setWordWrap(True)
        self.swap_label.setStyleSheet("QLabel { color: #8a5300; }")
        self.swap_button = QPushButton(tr("Swap DMSP and VIIRS"), self)
        self.swap_button.setToolTip(tr("Exchange the two input layers"))
        swap_row = QWidget(self)
        swap_layout = QHBoxLayout(swap_row)
        swap_layout.setContentsMargins(0, 0, 0, 0)
        swap_layout.addWidget(self.swap_label, 1)
        swap_layout.addWidget(self.swap_button)
        self.swap_row = swap_row
        self.satellite_edit = QLineEdit(self)
        self.satellite_edit.setPlaceholderText(tr("from the file name (e.g. F18)"))
        self.satellite_edit.setToolTip(
            tr("DMSP satellite for the Elvidge et al. (2014) intercalibration; pre-filled from NOAA file names (F182013…)")
        )
        self.year_spin = QSpinBox(self)
        self.year_spin.setRange(1991, 2013)
        self.year_spin.setSpecialValueText(tr("from the file name"))
        self.year_spin.setToolTip(tr("DMSP year for the intercalibration; pre-filled from NOAA file names, editable"))
        inputs.addRow(tr("DMSP layer"), self.dmsp_combo)
        inputs.addRow(tr("VIIRS reference"), self.viirs_combo)
        inputs.addRow(swap_row)
        satellite_row = QHBoxLayout()
        satellite_row.addWidget(self.satellite_edit)
        satellite_row.addWidget(self.year_spin)
        inputs.addRow(tr("Satellite / year"), satellite_row)

        # Area
        self.area_group = QGroupBox(tr("Area"), self)
        area = QFormLayout(self.area_group)
        self.area_combo = QComboBox(self)
        self.area_combo.addItems(
            [
                tr("Intersection of the input layers"),
                tr("Current map canvas extent"),
                tr("Rectangle drawn on the map"),
                tr("Extent of, and mask by, polygon features"),
            ]
        )
        self.area_combo.setToolTip(
            tr("Area to fuse. Polygons: the area is their extent and only pixels inside them are written (the others are nodata)")
        )
        self.draw_button = QPushButton(tr("Draw on map…"), self)
        self.draw_button.setToolTip(tr("Drag a rectangle on the map canvas to choose the area"))
        self.mask_combo = QgsMapLayerComboBox(self)
        self.mask_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.mask_combo.setToolTip(tr("Polygon layer whose features mask the output"))
        self.area_label = QLabel(self)
        self.area_label.setWordWrap(True)
        self.area_label.setToolTip(tr("Size of the output grid and its area on the ellipsoid"))
        area_row = QHBoxLayout()
        area_row.addWidget(self.area_combo, 1)
        area_row.addWidget(self.draw_button)
        area.addRow(tr("Area"), area_row)
        area.addRow(tr("Polygons"), self.mask_combo)
        area.addRow(tr("Size"), self.area_label)

        # Model, device, speed
        self.model_group = QGroupBox(tr("Model"), self)
        model = QFormLayout(self.model_group)
        self.model_combo = QComboBox(self)
        self.model_combo.setToolTip(tr("Fusion model: the traditional baseline or a model of the bundled zoo"))
        self.details_button = QPushButton(tr("Details…"), self)
        self.details_button.setToolTip(tr("Open the model card: training data, metrics, limitations"))
        self.verify_button = QPushButton(tr("Verify"), self)
        self.verify_button.setToolTip(tr("Check the model file against its sha256 in the zoo manifest"))
        self.model_summary = QLabel(self)
        self.model_summary.setWordWrap(True)
        self.model_summary.setToolTip(tr("One-line summary of the chosen model"))
        self.precision_combo = QComboBox(self)
        self.precision_combo.setToolTip(
            tr("Numeric precision: automatic picks int8 on the CPU and fp16/fp32 on a GPU; choose one to override")
        )
        self.device_combo = QComboBox(self)
        self.device_combo.addItem(tr("Auto"), "auto")
        for device in onnx_devices():
            self.device_combo.addItem(device.upper() if device in ("cpu", "cuda") else device, device)
        self.device_combo.setToolTip(tr("Where the model runs (onnxruntime providers available here); Auto prefers a GPU"))
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
        model.addRow(tr("Model"), model_row)
        model.addRow("", self.model_summary)
        device_row = QHBoxLayout()
        device_row.addWidget(self.device_combo, 1)
        device_row.addWidget(QLabel(tr("Precision"), self))
        device_row.addWidget(self.precision_combo, 1)
        model.addRow(tr("Device"), device_row)
        speed_row = QHBoxLayout()
        speed_row.addWidget(QLabel(tr("Fastest"), self))
        speed_row.addWidget(self.speed_slider, 1)
        speed_row.addWidget(QLabel(tr("Best quality"), self))
        speed_row.addWidget(self.measure_button)
        model.addRow(tr("Speed"), speed_row)
        model.addRow("", self.speed_label)

        # Advanced
        self.advanced_group = QgsCollapsibleGroupBox(tr("Advanced"), self)
        self.advanced_group.setCollapsed(True)
        self.advanced_group.setSettingGroup("NightlightFusionAdvanced")
        advanced = QFormLayout(self.advanced_group)
        self.sampler_combo = QComboBox(self)
        self.sampler_combo.setToolTip(tr("Explicit sampler; overrides the speed level"))
        self.steps_spin = QSpinBox(self)
        self.steps_spin.setRange(0, 1000)
        self.steps_spin.setSpecialValueText(tr("from the speed level"))
        self.steps_spin.setToolTip(tr("Sampler steps; overrides the speed level"))
        self.ensemble_spin = QSpinBox(self)
        self.ensemble_spin.setRange(1, 64)
        self.ensemble_spin.setToolTip(tr("Ensemble size K: the result is the mean of K samples (K× the time)"))
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip(tr("Random seed (the same seed gives the same result)"))
        self.uncertainty_check = QCheckBox(tr("Write the uncertainty (ensemble standard deviation)"), self)
        self.uncertainty_check.setToolTip(tr("Needs a generative model and K ≥ 2 (K = 2 is used if 1 is set)"))
        self.uncertainty_widget = QgsFileWidget(self)
        self.uncertainty_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.uncertainty_widget.setFilter(tr("GeoTIFF (*.tif *.tiff)"))
        self.uncertainty_widget.lineEdit().setPlaceholderText(tr("[Save to temporary file]"))
        self.uncertainty_widget.setToolTip(tr("Uncertainty GeoTIFF; empty: a temporary file"))
        self.threads_spin = QSpinBox(self)
        self.threads_spin.setRange(0, 256)
        self.threads_spin.setSpecialValueText(tr("all cores"))
        self.threads_spin.setToolTip(tr("CPU threads for the model (remembered)"))
        self.batch_spin = QSpinBox(self)
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setToolTip(tr("Tiles per model call: larger is faster on a GPU, uses more memory (remembered)"))
        self.report_check = QCheckBox(tr("Write an HTML run report next to the output"), self)
        self.report_check.setToolTip(tr("Thumbnails of DMSP, reference and result and the QA numbers"))
        advanced.addRow(tr("Sampler"), self.sampler_combo)
        advanced.addRow(tr("Steps"), self.steps_spin)
        advanced.addRow(tr("Ensemble K"), self.ensemble_spin)
        advanced.addRow(tr("Seed"), self.seed_spin)
        advanced.addRow(self.uncertainty_check)
        advanced.addRow(tr("Uncertainty output"), self.uncertainty_widget)
        advanced.addRow(tr("Threads"), self.threads_spin)
        advanced.addRow(tr("Tile batch"), self.batch_spin)
        advanced.addRow(self.report_check)
        self.cache_check = QCheckBox(tr("Keep models loaded between runs (faster repeated runs, uses memory)"), self)
        self.cache_check.setToolTip(tr("Cache the onnxruntime sessions of the models used in this QGIS session"))
        advanced.addRow(self.cache_check)

        output = QFormLayout()
        self.output_widget = QgsFileWidget(self)
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter(tr("GeoTIFF (*.tif *.tiff)"))
        self.output_widget.lineEdit().setPlaceholderText(tr("[Save to temporary file]"))
        self.output_widget.setToolTip(tr("Output GeoTIFF; empty: a temporary file"))
        output.addRow(tr("Output"), self.output_widget)

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
        self.help_button = QPushButton(self.tr("Help"), self)
        self.help_button.setToolTip(tr("Open the help page"))
        self.run_button = QPushButton(self.tr("Run"), self)
        self.run_button.setToolTip(tr("Run nightlightfusion:fuse in the background"))
        self.cancel_button = QPushButton(self.tr("Cancel"), self)
        self.cancel_button.setToolTip(tr("Stop the run after the current batch; nothing is written"))
        self.buttons.addButton(self.help_button, QDialogButtonBox.HelpRole)
        self.buttons.addButton(self.run_button, QDialogButtonBox.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        close = self.buttons.addButton(QDialogButtonBox.Close)
        close.setToolTip(tr("Close the dialog; a running task goes on and reports in the message bar"))
        self.buttons.rejected.connect(self.close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.no_layers_label)
        layout.addWidget(self.inputs_group)
        layout.addWidget(self.area_group)
        layout.addWidget(self.model_group)
        layout.addWidget(self.advanced_group)
        layout.addLayout(output)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)

        self._fill_models()
        self.help_button.clicked.connect(self.show_help)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.swap_button.clicked.connect(self.swap_inputs)
        self.draw_button.clicked.connect(self.draw_extent)
        self.details_button.clicked.connect(self.show_details)
        self.verify_button.clicked.connect(self.verify_model)
        self.measure_button.clicked.connect(self.measure_speed)
        self.dmsp_combo.layerChanged.connect(self._on_dmsp_changed)
        self.viirs_combo.layerChanged.connect(self._update_state)
        self.area_combo.currentIndexChanged.connect(self._update_state)
        self.mask_combo.layerChanged.connect(self._update_state)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.precision_combo.currentIndexChanged.connect(self._on_variant_changed)
        self.device_combo.currentIndexChanged.connect(self._on_variant_changed)
        for signal in (
            self.speed_slider.valueChanged,
            self.sampler_combo.currentIndexChanged,
            self.steps_spin.valueChanged,
            self.ensemble_spin.valueChanged,
            self.uncertainty_check.toggled,
        ):
            signal.connect(self._update_state)

    # --- settings ------------------------------------------------------------------------------------
    def _load_settings(self) -> None:
        s = self.settings
        index = self.device_combo.findData(s.value(SETTINGS + "device", "auto"))
        self.device_combo.setCurrentIndex(max(index, 0))
        self.threads_spin.setValue(int(s.value(SETTINGS + "threads", 0)))
        self.batch_spin.setValue(int(s.value(SETTINGS + "batch_size", 8)))
        self.report_check.setChecked(s.value(SETTINGS + "report", True, type=bool))
        self.cache_check.setChecked(s.value(SETTINGS + "cache_models", True, type=bool))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue(SETTINGS + "device", self.device_combo.currentData())
        s.setValue(SETTINGS + "threads", self.threads_spin.value())
        s.setValue(SETTINGS + "batch_size", self.batch_spin.value())
        s.setValue(SETTINGS + "report", self.report_check.isChecked())
        s.setValue(SETTINGS + "cache_models", self.cache_check.isChecked())

    # --- inputs --------------------------------------------------------------------------------------
    def _raster_layers(self) -> list[QgsRasterLayer]:
        return [layer for layer in QgsProject.instance().mapLayers().values() if isinstance(layer, QgsRasterLayer)]

    def _on_layers_changed(self, *args) -> None:
        multiband = [layer for layer in self._raster_layers() if layer.bandCount() != 1]
        self.dmsp_combo.setExceptedLayerList(multiband)
        self.viirs_combo.setExceptedLayerList(multiband)
        if self.dmsp_combo.currentLayer() is None:
            self._guess_layers()
        self._update_state()

    def _guess_layers(self) -> None:
        """Pre-select DMSP and VIIRS from layer names and values (integer 0–63 -> DMSP)."""
        layers = [layer for layer in self._raster_layers() if layer.bandCount() == 1]
        multiband = [layer for layer in self._raster_layers() if layer.bandCount() != 1]
        self.dmsp_combo.setExceptedLayerList(multiband)
        self.viirs_combo.setExceptedLayerList(multiband)
        if not layers:
            return
        kinds = {layer.id(): layer_kind(layer) for layer in layers}

        def score(layer, kind, pattern):
            return (kinds[layer.id()] == kind) * 2 + bool(pattern.search(layer.name() + " " + layer_file(layer)))

        dmsp = max(layers, key=lambda layer: score(layer, "dmsp", DMSP_NAME))
        if score(dmsp, "dmsp", DMSP_NAME) > 0:
            self.dmsp_combo.setLayer(dmsp)
        others = [layer for layer in layers if layer is not self.dmsp_combo.currentLayer()]
        if others:
            viirs = max(others, key=lambda layer: score(layer, "viirs", VIIRS_NAME))
            if score(viirs, "viirs", VIIRS_NAME) > 0:
                self.viirs_combo.setLayer(viirs)

    def _on_dmsp_changed(self, *args) -> None:
        layer = self.dmsp_combo.currentLayer()
        satellite, year = parse_satellite_year(os.path.basename(layer_file(layer)) or (layer.name() if layer else ""))
        if layer is not None and not satellite and not year:
            satellite, year = parse_satellite_year(layer.name())
        self.satellite_edit.setText(satellite or "")
        self.year_spin.setValue(year or self.year_spin.minimum())
        self._update_state()

    def swap_inputs(self) -> None:
        dmsp, viirs = self.dmsp_combo.currentLayer(), self.viirs_combo.currentLayer()
        self.viirs_combo.setLayer(dmsp)
        self.dmsp_combo.setLayer(viirs)
        self._update_state()

    def _check_swapped(self) -> str:
        """A warning when the inputs look swapped ('' when they look right)."""
        dmsp, viirs = self.dmsp_combo.currentLayer(), self.viirs_combo.currentLayer()
        dmsp_kind, viirs_kind = layer_kind(dmsp), layer_kind(viirs)
        self.swap_button.setVisible(False)
        if dmsp_kind == "viirs" and viirs_kind == "dmsp":
            self.swap_button.setVisible(True)
            return self.tr(
                "The DMSP and VIIRS layers look swapped: '{}' has radiance values (float or beyond DN 63) and '{}' "
                "integer DN 0–63."
            ).format(dmsp.name(), viirs.name())
        if dmsp_kind == "viirs":
            return self.tr(
                "'{}' does not look like DMSP-OLS stable lights (values are not integer DN 0–63); choose the DMSP layer."
            ).format(dmsp.name())
        if viirs_kind == "dmsp":
            self.swap_button.setVisible(dmsp_kind is None)
            return self.tr("'{}' looks like DMSP (integer DN 0–63), not VIIRS radiance.").format(viirs.name())
        return ""

    # --- area ----------------------------------------------------------------------------------------
    def output_crs_and_pixel(self) -> tuple[QgsCoordinateReferenceSystem, float, float]:
        viirs = self.viirs_combo.currentLayer()
        if viirs is not None:
            return viirs.crs(), viirs.rasterUnitsPerPixelX(), viirs.rasterUnitsPerPixelY()
        return QgsCoordinateReferenceSystem("EPSG:4326"), VIIRS_PIXEL_DEG, VIIRS_PIXEL_DEG

    def _to(self, rect: QgsRectangle, source: QgsCoordinateReferenceSystem, target) -> QgsRectangle:
        if source == target or not source.isValid():
            return QgsRectangle(rect)
        try:
            return QgsCoordinateTransform(source, target, QgsProject.instance()).transformBoundingBox(rect)
        except QgsCsException:
            return QgsRectangle()

    def area_rectangle(self) -> tuple[QgsRectangle | None, str]:
        """The area in the output CRS (None with the reason when it is empty or outside the layers)."""
        dmsp = self.dmsp_combo.currentLayer()
        if dmsp is None:
            return None, self.tr("Choose a DMSP layer.")
        crs, _, _ = self.output_crs_and_pixel()
        rect = self._to(dmsp.extent(), dmsp.crs(), crs)
        viirs = self.viirs_combo.currentLayer()
        if viirs is not None:
            rect = rect.intersect(viirs.extent())
            if rect.isEmpty():
                return None, self.tr("The DMSP and VIIRS layers do not overlap; choose layers of the same region.")
        mode = self.area_combo.currentIndex()
        chosen = None
        if mode == AREA_CANVAS:
            if self.iface is None:
                return None, self.tr("No map canvas here; choose another area.")
            canvas = self.iface.mapCanvas()
            chosen = self._to(canvas.extent(), canvas.mapSettings().destinationCrs(), crs)
        elif mode == AREA_DRAWN:
            if self.drawn_extent is None:
                return None, self.tr("Draw a rectangle on the map (Draw on map…).")
            chosen = self._to(QgsRectangle(self.drawn_extent), self.drawn_extent.crs(), crs)
        elif mode == AREA_POLYGONS:
            mask = self.mask_combo.currentLayer()
            if mask is None:
                return None, self.tr("Choose a polygon layer (load one into the project first).")
            if mask.featureCount() == 0:
                return None, self.tr("The polygon layer '{}' has no features.").format(mask.name())
            chosen = self._to(mask.extent(), mask.crs(), crs)
        if chosen is not None:
            rect = rect.intersect(chosen)
            if rect.isEmpty() or rect.width() <= 0 or rect.height() <= 0:
                return None, self.tr("The chosen area lies outside the input layers; choose an area that overlaps them.")
        return rect, ""

    def area_size(self) -> tuple[int, float] | None:
        """(pixels, km²) of the output for the chosen area."""
        rect, _ = self.area_rectangle()
        if rect is None:
            return None
        crs, px, py = self.output_crs_and_pixel()
        pixels = max(1, round(rect.width() / px)) * max(1, round(rect.height() / py))
        measure = QgsDistanceArea()
        measure.setSourceCrs(crs, QgsProject.instance().transformContext())
        measure.setEllipsoid("WGS84")
        km2 = measure.measureArea(QgsGeometry.fromRect(rect)) / 1e6
        return pixels, km2

    def draw_extent(self) -> None:
        if self.iface is None or self.iface.mapCanvas() is None:
            return
        canvas = self.iface.mapCanvas()
        self.map_tool = QgsMapToolExtent(canvas)
        self.map_tool.extentChanged.connect(self.set_drawn_extent)
        self._previous_tool = canvas.mapTool()
        canvas.setMapTool(self.map_tool)
        self.status.setText(self.tr("Drag a rectangle on the map…"))

    def set_drawn_extent(self, rect: QgsRectangle) -> None:
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        crs = canvas.mapSettings().destinationCrs() if canvas is not None else QgsCoordinateReferenceSystem("EPSG:4326")
        self.drawn_extent = QgsReferencedRectangle(rect, crs)
        if canvas is not None and self.map_tool is not None and canvas.mapTool() is self.map_tool:
            canvas.unsetMapTool(self.map_tool)
            if getattr(self, "_previous_tool", None) is not None:
                canvas.setMapTool(self._previous_tool)
        self.area_combo.setCurrentIndex(AREA_DRAWN)
        self._update_state()
        self.raise_()

    # --- models --------------------------------------------------------------------------------------
    def _fill_models(self) -> None:
        try:
            entries = available_models()
            default = default_model()
        except FusionError as exc:  # a broken manifest: baseline stays usable, the reason is shown
            from ..core.models import BASELINE_SUMMARY

            self.message_bar.pushMessage(self.tr("Model zoo"), str(exc), level=Qgis.Warning)

            entries = [ModelEntry("baseline", "traditional", "fp32", BASELINE_SUMMARY, default=True)]
            default = entries[0]
        self.models = {m.id: m for m in entries}
        bases = [m for m in entries if not m.variant_of or m.variant_of not in self.models]
        for base in bases:
            problem = self._file_problem(base)
            label = f"{base.id} — {base.family}"
            if problem:
                label = "⚠ " + label + self.tr(" (unusable)")
            self.model_combo.addItem(label, base.id)
            self.model_combo.setItemData(self.model_combo.count() - 1, problem or base.summary, 3)  # Qt.ToolTipRole
        wanted = default.variant_of or default.id if default else "baseline"
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(wanted)))

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

    def variants(self, base_id: str) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.id == base_id or m.variant_of == base_id]

    def resolved_device(self) -> str:
        device = self.device_combo.currentData() or "auto"
        if device != "auto":
            return device
        gpus = [d for d in onnx_devices() if d != "cpu"]
        return gpus[0] if gpus else "cpu"

    def selected_model(self) -> ModelEntry | None:
        """The model variant the run will use: the precision override, else int8 on the CPU, fp16/fp32 on a GPU."""
        base = self.model_combo.currentData()
        variants = self.variants(base)
        if not variants:
            return None
        by_precision = {m.precision: m for m in variants}
        chosen = self.precision_combo.currentData()
        if chosen and chosen in by_precision:
            return by_precision[chosen]
        order = ["int8", "fp32", "fp16"] if self.resolved_device() == "cpu" else ["fp16", "fp32", "int8"]
        for precision in order:
            if precision in by_precision:
                return by_precision[precision]
        return variants[0]

    def _on_model_changed(self, *args) -> None:
        base = self.model_combo.currentData()
        self.precision_combo.blockSignals(True)
        self.precision_combo.clear()
        self.precision_combo.addItem(self.tr("Automatic"), None)
        for variant in sorted(self.variants(base), key=lambda m: m.precision):
            self.precision_combo.addItem(variant.precision, variant.precision)
        self.precision_combo.setEnabled(self.precision_combo.count() > 2)
        self.precision_combo.blockSignals(False)
        self._on_variant_changed()

    def _on_variant_changed(self, *args) -> None:
        entry = self.selected_model()
        self.sampler_combo.blockSignals(True)
        self.sampler_combo.clear()
        self.sampler_combo.addItem(self.tr("from the speed level"), None)
        zoo = entry.zoo if entry else None
        if zoo is not None and zoo.family in ("diffusion", "flow_matching"):
            from ..core.samplers import samplers_for

            for name in samplers_for(zoo.family):
                self.sampler_combo.addItem(name, name)
        self.sampler_combo.blockSignals(False)
        sampling = zoo is not None and zoo.family in ("diffusion", "flow_matching")
        self.sampler_combo.setEnabled(sampling)
        self.steps_spin.setEnabled(sampling)
        generative = zoo is not None and zoo.family != "unet"
        self.ensemble_spin.setEnabled(generative)
        self.uncertainty_check.setEnabled(generative)
        if not generative:
            self.uncertainty_check.setChecked(False)
        levels = sorted(zoo.speed_levels, key=lambda s: s.level) if zoo else []
        self.speed_slider.blockSignals(True)
        self.speed_slider.setEnabled(bool(levels))
        self.speed_slider.setRange(0, max(len(levels) - 1, 0))
        if levels:
            default = next((i for i, s in enumerate(levels) if s.level == zoo.default_speed), 0)
            self.speed_slider.setValue(default)
        self.speed_slider.blockSignals(False)
        self.measure_button.setEnabled(sampling or generative)
        self._update_state()

    def speed_level(self):
        entry = self.selected_model()
        if entry is None or entry.zoo is None or not entry.zoo.speed_levels:
            return None
        levels = sorted(entry.zoo.speed_levels, key=lambda s: s.level)
        return levels[min(self.speed_slider.value(), len(levels) - 1)]

    def speed_text(self) -> str:
        """What the speed slider selects: sampler and NFE, predicted time for this area, expected quality."""
        tr = self.tr
        entry = self.selected_model()
        if entry is None:
            return ""
        if entry.zoo is None:
            return tr("The traditional method has no sampler: one deterministic pass, no speed/quality trade-off.")
        zoo = entry.zoo
        override = self.sampler_combo.currentData() or self.steps_spin.value()
        level = self.speed_level()
        if zoo.family in ("unet", "normalizing_flow"):
            what, nfe, psnr, spm = tr("one pass (NFE 1)"), 1, None, None
            if zoo.speed_levels:
                psnr, spm = level.psnr, level.seconds_per_megapixel
            elif zoo.throughput.get("cpu_megapixels_per_minute"):  # measured by make report
                spm = 60.0 / zoo.throughput["cpu_megapixels_per_minute"]
                psnr = (zoo.metrics.get("synthetic_ref") or {}).get("psnr_log")
        elif override:
            from ..core.generative import sampling_plan

            try:
                plan = sampling_plan(zoo, self.sampler_combo.currentData(), self.steps_spin.value() or None, None)
            except FusionError as exc:
                return str(exc)
            what, nfe, psnr, spm = tr("{} (advanced override)").format(plan.describe()), plan.nfe, None, None
            if level is not None and level.seconds_per_megapixel is not None and level.nfe:
                spm = level.seconds_per_megapixel / level.nfe * plan.nfe
        elif level is None:
            return tr(
                "Speed slider disabled: the zoo manifest has no measured speed levels for {}; it runs with its "
                "default sampler (choose sampler and steps under Advanced)."
            ).format(zoo.id)
        else:
            from ..core.samplers import sampler_spec

            what = tr("level {}/{}: {}, {} steps, NFE {}").format(
                self.speed_slider.value() + 1, len(zoo.speed_levels), sampler_spec(level.sampler).label, level.steps, level.nfe
            )
            nfe, psnr, spm = level.nfe, level.psnr, level.seconds_per_megapixel
        size = self.area_size()
        ensemble = max(self.ensemble_spin.value(), 2 if self.uncertainty_check.isChecked() else 1)
        device = self.resolved_device()
        measured = self.measurements.get((zoo.id, device))
        if size is None:
            time_text = tr("choose an area to predict the time")
        elif measured is not None:
            seconds = measured * nfe * ensemble * size[0] / 1e6
            time_text = tr("predicted {} on {} (measured on this machine)").format(format_seconds(seconds), device)
        elif spm is not None:
            seconds = spm * ensemble * size[0] / 1e6
            time_text = tr("predicted {} (zoo's measured throughput; Measure here to refine for {})").format(
                format_seconds(seconds), device
            )
        else:
            time_text = tr("time not measured (Measure here to time one tile on this machine)")
        quality = tr("expected PSNR {:.2f} dB").format(psnr) if psnr is not None else tr("quality not measured")
        return f"{what} · {time_text} · {quality}"

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
        layout = QVBoxLayout(dialog)
        layout.addWidget(browser)
        dialog.resize(640, 480)
        dialog.show()
        self.details_dialog = dialog

    def verify_model(self) -> None:
        """sha256 of the chosen model's files against the manifest (on demand: it reads the whole file)."""
        from ..core.runtime import sha256_of

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
                self.model_combo.setItemData(index, problem, 3)
                self._update_state()
                return
        self.message_bar.pushMessage(self.tr("Model files match their sha256."), level=Qgis.Success, duration=5)

    def measure_speed(self) -> None:
        """Time one tile of the chosen model on this machine, in a background task (a few seconds)."""
        entry = self.selected_model()
        if entry is None or entry.zoo is None or self.measure_task is not None:
            return
        zoo, device, threads = entry.zoo, self.resolved_device(), self.threads_spin.value() or None
        level = self.speed_level()

        def work(task):
            import numpy as np

            from ..core.generative import GenerativeFusion, sampling_plan
            from ..core.tiling import TileJob

            plan = sampling_plan(zoo, None, None, level.level if level else None)
            method = GenerativeFusion(zoo, plan, device, threads, 1, 1)
            condition = np.zeros((1, 3, method.tile, method.tile), np.float32)
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
                spm_per_nfe, ran_on = result
                self.measurements[(zoo.id, device)] = spm_per_nfe
                self._update_state()
            self.measured.emit(self.speed_label.text())

        self.measure_button.setEnabled(False)
        self.speed_label.setText(self.tr("Measuring one tile on {}…").format(device))
        self.measure_task = QgsTask.fromFunction(self.tr("Nightlight Fusion: timing one tile"), work, on_finished=done)
        QgsApplication.taskManager().addTask(self.measure_task)

    # --- state ---------------------------------------------------------------------------------------
    def _update_state(self, *args) -> None:
        running = self.task is not None
        has_rasters = bool(self._raster_layers())
        self.no_layers_label.setVisible(not has_rasters)
        for group in (self.inputs_group, self.area_group, self.model_group, self.advanced_group):
            group.setEnabled(has_rasters and not running)
        mode = self.area_combo.currentIndex()
        self.mask_combo.setEnabled(mode == AREA_POLYGONS)
        self.uncertainty_widget.setEnabled(self.uncertainty_check.isChecked())
        warning = self._check_swapped() if has_rasters else ""
        self.swap_label.setText(warning)
        self.swap_row.setVisible(bool(warning))
        reason = ""
        if not has_rasters:
            reason = self.tr(
                "Load a DMSP-OLS stable-lights raster (and optionally a VIIRS DNB raster) into the project to start."
            )
        elif self.dmsp_combo.currentLayer() is None:
            reason = self.tr("Load a DMSP-OLS stable-lights raster (single band, DN 0–63) and choose it as the DMSP layer.")
        else:
            rect, reason = self.area_rectangle()
        entry = self.selected_model()
        base = self.model_combo.currentData()
        problem = self.model_problems.get(base) or (self._file_problem(entry) if entry else "")
        if not reason and problem:
            reason = problem
        self.model_summary.setText((problem or (entry.summary if entry else "")) if entry else "")
        size = self.area_size() if not reason or not reason.startswith(self.tr("The chosen")) else None
        if size is not None:
            crs, _, _ = self.output_crs_and_pixel()
            text = self.tr("{:,} px · {:,.0f} km² ({})").format(size[0], size[1], crs.authid())
            if mode == AREA_POLYGONS:
                text += self.tr(" · pixels outside the polygons are nodata")
            self.area_label.setText(text)
        else:
            self.area_label.setText(reason or "")
        self.speed_label.setText(self.speed_text())
        self.run_disabled_reason = reason
        self.run_button.setEnabled(not reason and not running)
        self.run_button.setToolTip(reason or self.tr("Run nightlightfusion:fuse in the background"))
        self.cancel_button.setEnabled(running)
        if not running:
            if reason:
                self.status.setText(reason)
            elif self.status.text() == "" or self.status.property("reason"):
                self.status.setText("")
            self.status.setProperty("reason", bool(reason))

    # --- running -------------------------------------------------------------------------------------
    def output_path(self) -> str:
        return self.output_widget.filePath()

    def parameters(self) -> dict:
        """The `nightlightfusion:fuse` parameters this dialog stands for."""
        entry = self.selected_model()
        params = {
            "DMSP": self.dmsp_combo.currentLayer(),
            "VIIRS": self.viirs_combo.currentLayer(),
            "MODEL": entry.id if entry else None,
            "SEED": self.seed_spin.value(),
            "DEVICE": self.device_combo.currentData() or "auto",
            "ENSEMBLE": self.ensemble_spin.value(),
            "BATCH_SIZE": self.batch_spin.value(),
            "OUTPUT": self.output_path() or QgsProcessing.TEMPORARY_OUTPUT,
        }
        if self.threads_spin.value():
            params["THREADS"] = self.threads_spin.value()
        if self.satellite_edit.text().strip():
            params["SATELLITE"] = self.satellite_edit.text().strip()
        if self.year_spin.value() != self.year_spin.minimum():
            params["YEAR"] = self.year_spin.value()
        level = self.speed_level()
        if level is not None:
            params["SPEED"] = level.level
        if self.sampler_combo.currentData():
            params["SAMPLER"] = self.sampler_combo.currentData()
        if self.steps_spin.value():
            params["STEPS"] = self.steps_spin.value()
        if self.uncertainty_check.isChecked():
            params["UNCERTAINTY"] = self.uncertainty_widget.filePath() or QgsProcessing.TEMPORARY_OUTPUT
        if self.report_check.isChecked():
            output = self.output_path()
            params["REPORT"] = str(Path(output).with_suffix(".report.html")) if output else QgsProcessing.TEMPORARY_OUTPUT
        mode = self.area_combo.currentIndex()
        if mode == AREA_CANVAS and self.iface is not None:
            canvas = self.iface.mapCanvas()
            params["EXTENT"] = QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        elif mode == AREA_DRAWN and self.drawn_extent is not None:
            params["EXTENT"] = self.drawn_extent
        elif mode == AREA_POLYGONS and self.mask_combo.currentLayer() is not None:
            params["MASK"] = self.mask_combo.currentLayer()
        return params

    def _ask_overwrite(self, paths: list[str]) -> bool:
        answer = QMessageBox.question(
            self,
            self.tr("Overwrite?"),
            self.tr("These files exist and will be replaced:\n{}\n\nReplace them?").format("\n".join(paths)),
            QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No,
        )
        return answer == QMessageBox.Yes

    def run(self) -> None:
        self._update_state()
        if self.run_disabled_reason or self.task is not None:
            return
        algorithm = QgsApplication.processingRegistry().createAlgorithmById("nightlightfusion:fuse")
        if algorithm is None:
            self.status.setText(self.tr("The Nightlight Fusion Processing provider is not loaded; re-enable the plugin."))
            return
        params = self.parameters()
        existing = [
            p
            for p in (params["OUTPUT"], params.get("UNCERTAINTY"), params.get("REPORT"))
            if p and p != QgsProcessing.TEMPORARY_OUTPUT and os.path.exists(p)
        ]
        if existing and not self.confirm_overwrite(existing):
            self.status.setText(self.tr("Not run: choose another output file."))
            return
        self.save_settings()
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = DialogFeedback()
        self.params = params
        self.task = QgsProcessingAlgRunnerTask(algorithm, params, self.context, self.feedback)
        self.task.executed.connect(self._on_executed)
        self.progress.setValue(0)
        self.progress_label.setText("")
        self.status.setProperty("reason", False)
        self.status.setText(self.tr("Running on {}…").format(self.resolved_device()))
        self.started = time.monotonic()
        QgsApplication.taskManager().addTask(self.task)
        self.timer.start()
        self._update_state()

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
        parts.append(self.tr("device: {}").format(self.resolved_device()))
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
            self._add_results(results)
            output = results["OUTPUT"]
            report = results.get("REPORT")
            self.report_path = report or None
            link = f' · <a href="{QUrl.fromLocalFile(report).toString()}">{self.tr("run report")}</a>' if report else ""
            self.status.setText(self.tr("Done on {}: {}").format(results.get("DEVICE", "?"), output) + link)
            message = self.tr("Fused raster added: {}").format(output)
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
        self._update_state()

    def _add_results(self, results: dict) -> None:
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
        """In QGIS's message bar (it outlives this dialog), else the dialog's own."""
        bar = self.iface.messageBar() if self.iface is not None and self.iface.messageBar() is not None else self.message_bar
        level = Qgis.Success if success else (Qgis.Warning if warning else Qgis.Critical)
        bar.pushMessage("Nightlight Fusion", message, level=level, duration=10 if success or warning else 0)

    def show_help(self) -> bool:
        return QDesktopServices.openUrl(QUrl(help_url("dialog")))

    def closeEvent(self, event):  # noqa: N802
        if self.map_tool is not None and self.iface is not None and self.iface.mapCanvas().mapTool() is self.map_tool:
            self.iface.mapCanvas().unsetMapTool(self.map_tool)
        super().closeEvent(event)


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
