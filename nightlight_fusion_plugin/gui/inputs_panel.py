"""The inputs: DMSP and VIIRS layer pickers, guessed from the project's layers, with a swapped-inputs warning."""

from __future__ import annotations

import os
import re

from qgis.core import Qgis, QgsMapLayerProxyModel, QgsProject, QgsRasterBandStats, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QWidget

from ..core.sensor.intercalibration import parse_reference_year, parse_satellite_year

DMSP_NAME = re.compile(r"F\d{2}(19|20)\d{2}|dmsp|\bols\b|stable", re.IGNORECASE)
VIIRS_NAME = re.compile(r"viirs|dnb|vnl|rade|npp", re.IGNORECASE)
INTEGER_TYPES = (Qgis.Byte, Qgis.UInt16, Qgis.Int16, Qgis.UInt32, Qgis.Int32)


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


def raster_layers() -> list[QgsRasterLayer]:
    return [layer for layer in QgsProject.instance().mapLayers().values() if isinstance(layer, QgsRasterLayer)]


class InputsPanel(QGroupBox):
    """Owns the choice of the two input layers; `changed` whenever either changes (or the project's layers do)."""

    changed = pyqtSignal()
    # satellite and year parsed from the DMSP layer's NOAA name ('' / 0 when it has none)
    satellite_year_guessed = pyqtSignal(str, int)
    reference_year_guessed = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTitle(self.tr("Inputs"))
        tr = self.tr
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
        self.swap_row = QWidget(self)
        swap_layout = QHBoxLayout(self.swap_row)
        swap_layout.setContentsMargins(0, 0, 0, 0)
        swap_layout.addWidget(self.swap_label, 1)
        swap_layout.addWidget(self.swap_button)
        form = QFormLayout(self)
        form.addRow(tr("DMSP layer"), self.dmsp_combo)
        form.addRow(tr("VIIRS reference"), self.viirs_combo)
        form.addRow(self.swap_row)

        self.swap_button.clicked.connect(self.swap_inputs)
        self.dmsp_combo.layerChanged.connect(self._on_dmsp_changed)
        # a bound method, not a lambda: PyQt drops it with this panel, so a layer removed after the dialog closed
        # does not call into a deleted widget
        self.viirs_combo.layerChanged.connect(self._on_viirs_changed)
        self.guess_layers()
        project = QgsProject.instance()
        project.layersAdded.connect(self._on_layers_changed)
        project.layersRemoved.connect(self._on_layers_changed)

    def dmsp_layer(self) -> QgsRasterLayer | None:
        return self.dmsp_combo.currentLayer()

    def viirs_layer(self) -> QgsRasterLayer | None:
        return self.viirs_combo.currentLayer()

    def parameters(self) -> dict:
        return {"DMSP": self.dmsp_layer(), "VIIRS": self.viirs_layer()}

    def _except_multiband(self) -> None:
        # the fusion reads band 1 only: a multi-band raster is never the right input
        multiband = [layer for layer in raster_layers() if layer.bandCount() != 1]
        self.dmsp_combo.setExceptedLayerList(multiband)
        self.viirs_combo.setExceptedLayerList(multiband)

    def _on_layers_changed(self, *args) -> None:
        self._except_multiband()
        if self.dmsp_layer() is None:
            self.guess_layers()
        self.changed.emit()

    def guess_layers(self) -> None:
        """Pre-select DMSP and VIIRS from layer names and values (integer 0–63 -> DMSP)."""
        self._except_multiband()
        layers = [layer for layer in raster_layers() if layer.bandCount() == 1]
        if not layers:
            return
        kinds = {layer.id(): layer_kind(layer) for layer in layers}

        def score(layer, kind, pattern):
            return (kinds[layer.id()] == kind) * 2 + bool(pattern.search(layer.name() + " " + layer_file(layer)))

        dmsp = max(layers, key=lambda layer: score(layer, "dmsp", DMSP_NAME))
        if score(dmsp, "dmsp", DMSP_NAME) > 0:
            self.dmsp_combo.setLayer(dmsp)
        others = [layer for layer in layers if layer is not self.dmsp_layer()]
        if others:
            viirs = max(others, key=lambda layer: score(layer, "viirs", VIIRS_NAME))
            if score(viirs, "viirs", VIIRS_NAME) > 0:
                self.viirs_combo.setLayer(viirs)

    def guess_satellite_year(self) -> tuple[str, int]:
        """From the file name first (NOAA's F182013… names), else the layer name."""
        layer = self.dmsp_layer()
        satellite, year = parse_satellite_year(os.path.basename(layer_file(layer)) or (layer.name() if layer else ""))
        if layer is not None and not satellite and not year:
            satellite, year = parse_satellite_year(layer.name())
        return satellite or "", year or 0

    def guess_reference_year(self) -> int:
        """The VIIRS reference's year from its file name, else its layer name; 0 when neither says."""
        layer = self.viirs_layer()
        if layer is None:
            return 0
        return parse_reference_year(os.path.basename(layer_file(layer))) or parse_reference_year(layer.name()) or 0

    def _on_viirs_changed(self, *args) -> None:
        self.reference_year_guessed.emit(self.guess_reference_year())
        self.changed.emit()

    def _on_dmsp_changed(self, *args) -> None:
        self.satellite_year_guessed.emit(*self.guess_satellite_year())
        self.changed.emit()

    def swap_inputs(self) -> None:
        dmsp, viirs = self.dmsp_layer(), self.viirs_layer()
        self.viirs_combo.setLayer(dmsp)
        self.dmsp_combo.setLayer(viirs)
        self.changed.emit()

    def check_swapped(self) -> str:
        """A warning when the inputs look swapped ('' when they look right); shows the swap button when it helps."""
        dmsp, viirs = self.dmsp_layer(), self.viirs_layer()
        dmsp_kind, viirs_kind = layer_kind(dmsp), layer_kind(viirs)
        self.swap_button.setVisible(False)
        warning = ""
        if dmsp_kind == "viirs" and viirs_kind == "dmsp":
            self.swap_button.setVisible(True)
            warning = self.tr(
                "The DMSP and VIIRS layers look swapped: '{}' has radiance values (float or beyond DN 63) and '{}' "
                "integer DN 0–63."
            ).format(dmsp.name(), viirs.name())
        elif dmsp_kind == "viirs":
            warning = self.tr(
                "'{}' does not look like DMSP-OLS stable lights (values are not integer DN 0–63); choose the DMSP layer."
            ).format(dmsp.name())
        elif viirs_kind == "dmsp":
            self.swap_button.setVisible(dmsp_kind is None)
            warning = self.tr("'{}' looks like DMSP (integer DN 0–63), not VIIRS radiance.").format(viirs.name())
        return warning

    def show_warning(self, has_rasters: bool) -> None:
        warning = self.check_swapped() if has_rasters else ""
        self.swap_label.setText(warning)
        self.swap_row.setVisible(bool(warning))
