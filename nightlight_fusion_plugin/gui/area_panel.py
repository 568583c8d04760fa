"""The area: the inputs' intersection, the canvas extent, a drawn rectangle or a polygon mask; its size."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsDistanceArea,
    QgsGeometry,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
)
from qgis.gui import QgsMapLayerComboBox, QgsMapToolExtent
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QWidget

AREA_INTERSECTION, AREA_CANVAS, AREA_DRAWN, AREA_POLYGONS = 0, 1, 2, 3
VIIRS_PIXEL_DEG = 1 / 240


class AreaPanel(QGroupBox):
    """Owns the area choice; the input layers come from `set_inputs` (the area is always within them)."""

    changed = pyqtSignal()
    message = pyqtSignal(str)  # a hint for the dialog's status line (e.g. while drawing)

    def __init__(self, iface=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTitle(self.tr("Area"))
        tr = self.tr
        self.iface = iface
        self.dmsp: QgsRasterLayer | None = None
        self.viirs: QgsRasterLayer | None = None
        self.drawn_extent: QgsReferencedRectangle | None = None
        self.map_tool = None
        self._previous_tool = None
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
        row = QHBoxLayout()
        row.addWidget(self.area_combo, 1)
        row.addWidget(self.draw_button)
        form = QFormLayout(self)
        form.addRow(tr("Area"), row)
        form.addRow(tr("Polygons"), self.mask_combo)
        form.addRow(tr("Size"), self.area_label)

        self.draw_button.clicked.connect(self.draw_extent)
        self.area_combo.currentIndexChanged.connect(self._on_mode_changed)
        self.mask_combo.layerChanged.connect(self.changed)
        self._on_mode_changed()

    def set_inputs(self, dmsp: QgsRasterLayer | None, viirs: QgsRasterLayer | None) -> None:
        self.dmsp, self.viirs = dmsp, viirs

    def mode(self) -> int:
        return self.area_combo.currentIndex()

    def _on_mode_changed(self, *args) -> None:
        self.mask_combo.setEnabled(self.mode() == AREA_POLYGONS)
        self.changed.emit()

    def output_crs_and_pixel(self) -> tuple[QgsCoordinateReferenceSystem, float, float]:
        """The output grid is the VIIRS reference's, else 15″ in EPSG:4326 (as the algorithm writes it)."""
        if self.viirs is not None:
            return self.viirs.crs(), self.viirs.rasterUnitsPerPixelX(), self.viirs.rasterUnitsPerPixelY()
        return QgsCoordinateReferenceSystem("EPSG:4326"), VIIRS_PIXEL_DEG, VIIRS_PIXEL_DEG

    def _to(self, rect: QgsRectangle, source: QgsCoordinateReferenceSystem, target) -> QgsRectangle:
        if source == target or not source.isValid():
            return QgsRectangle(rect)
        try:
            return QgsCoordinateTransform(source, target, QgsProject.instance()).transformBoundingBox(rect)
        except QgsCsException:
            return QgsRectangle()

    def _chosen(self, crs: QgsCoordinateReferenceSystem) -> tuple[QgsRectangle | None, str]:
        """The rectangle of the chosen mode in the output CRS (None for the intersection), or the reason it has none."""
        mode = self.mode()
        if mode == AREA_CANVAS:
            if self.iface is None:
                return None, self.tr("No map canvas here; choose another area.")
            canvas = self.iface.mapCanvas()
            return self._to(canvas.extent(), canvas.mapSettings().destinationCrs(), crs), ""
        if mode == AREA_DRAWN:
            if self.drawn_extent is None:
                return None, self.tr("Draw a rectangle on the map (Draw on map…).")
            return self._to(QgsRectangle(self.drawn_extent), self.drawn_extent.crs(), crs), ""
        if mode == AREA_POLYGONS:
            mask = self.mask_combo.currentLayer()
            if mask is None:
                return None, self.tr("Choose a polygon layer (load one into the project first).")
            if mask.featureCount() == 0:
                return None, self.tr("The polygon layer '{}' has no features.").format(mask.name())
            return self._to(mask.extent(), mask.crs(), crs), ""
        return None, ""

    def area_rectangle(self) -> tuple[QgsRectangle | None, str]:
        """The area in the output CRS (None with the reason when it is empty or outside the layers)."""
        if self.dmsp is None:
            return None, self.tr("Choose a DMSP layer.")
        crs, _, _ = self.output_crs_and_pixel()
        rect = self._to(self.dmsp.extent(), self.dmsp.crs(), crs)
        if self.viirs is not None:
            rect = rect.intersect(self.viirs.extent())
            if rect.isEmpty():
                return None, self.tr("The DMSP and VIIRS layers do not overlap; choose layers of the same region.")
        chosen, reason = self._chosen(crs)
        if reason:
            return None, reason
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
        return pixels, measure.measureArea(QgsGeometry.fromRect(rect)) / 1e6

    def show_size(self, reason: str) -> tuple[int, float] | None:
        """The size label: pixels and km², else why there is no area (`reason` is the dialog's run-blocking reason)."""
        size = self.area_size() if not reason.startswith(self.tr("The chosen")) else None
        if size is None:
            self.area_label.setText(reason)
            return None
        crs, _, _ = self.output_crs_and_pixel()
        text = self.tr("{:,} px · {:,.0f} km² ({})").format(size[0], size[1], crs.authid())
        if self.mode() == AREA_POLYGONS:
            text += self.tr(" · pixels outside the polygons are nodata")
        self.area_label.setText(text)
        return size

    def parameters(self) -> dict:
        """EXTENT or MASK; none for the intersection, which is the algorithm's default area."""
        mode = self.mode()
        if mode == AREA_CANVAS and self.iface is not None:
            canvas = self.iface.mapCanvas()
            return {"EXTENT": QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())}
        if mode == AREA_DRAWN and self.drawn_extent is not None:
            return {"EXTENT": self.drawn_extent}
        if mode == AREA_POLYGONS and self.mask_combo.currentLayer() is not None:
            return {"MASK": self.mask_combo.currentLayer()}
        return {}

    def draw_extent(self) -> None:
        if self.iface is None or self.iface.mapCanvas() is None:
            return
        canvas = self.iface.mapCanvas()
        self.map_tool = QgsMapToolExtent(canvas)
        self.map_tool.extentChanged.connect(self.set_drawn_extent)
        self._previous_tool = canvas.mapTool()
        canvas.setMapTool(self.map_tool)
        self.message.emit(self.tr("Drag a rectangle on the map…"))

    def set_drawn_extent(self, rect: QgsRectangle) -> None:
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        crs = canvas.mapSettings().destinationCrs() if canvas is not None else QgsCoordinateReferenceSystem("EPSG:4326")
        self.drawn_extent = QgsReferencedRectangle(rect, crs)
        self.release_map_tool()
        if self.mode() == AREA_DRAWN:
            self.changed.emit()
        else:
            self.area_combo.setCurrentIndex(AREA_DRAWN)  # emits changed
        self.window().raise_()

    def release_map_tool(self) -> None:
        """Give the canvas its previous tool back (after drawing, or when the dialog closes)."""
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is not None and self.map_tool is not None and canvas.mapTool() is self.map_tool:
            canvas.unsetMapTool(self.map_tool)
            if self._previous_tool is not None:
                canvas.setMapTool(self._previous_tool)
