"""Series mode's inputs: DMSP rasters of many years and VIIRS references, each with its year; series options.

The layers are the project's single-band rasters plus files added with "Add … files…" (opened here, not added
to the project: a 22-year series would bury the layer tree). Satellite and year are read from the names as core
reads them, editable in the table; whether the choice makes a series is decided by core's own resolve functions,
so the dialog and the CLI/Processing explain a bad input with the same words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsMapLayerStore, QgsProcessingException, QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ..core.errors import FusionError
from ..core.sensor.intercalibration import parse_satellite_year
from ..processing.common import inputs_untouched, raster_file
from .inputs_panel import DMSP_NAME, VIIRS_NAME, layer_file, layer_kind, raster_layers

RASTER_FILTER = "Rasters (*.tif *.tiff *.vrt *.img *.nc);;All files (*)"
KEY = Qt.UserRole


@dataclass(frozen=True)
class Row:
    layer: QgsRasterLayer
    satellite: str  # '' when not given (core fills it when only one satellite flew that year)
    year: int | None


def viirs_year(name: str) -> int | None:
    """The year core reads from a VIIRS file name (None when it reads none, or core cannot load)."""
    try:
        from ..core.pipeline.series import SeriesRequest, resolve_viirs
    except ImportError:  # no rasterio yet: the run says what to install
        return None
    try:
        return resolve_viirs(SeriesRequest(dmsp=[], viirs=[name]))[0][1]
    except FusionError:
        return None


def _year(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


class LayerTable(QTableWidget):
    """Checkable layers with their (editable) satellite and year; one row per layer, kept across refreshes."""

    def __init__(self, kind: str, parent: QWidget | None = None):
        self.kind = kind  # 'dmsp' or 'viirs'
        columns = ["Layer", "Satellite", "Year"] if kind == "dmsp" else ["Layer", "Year"]
        super().__init__(0, len(columns), parent)
        self.setHorizontalHeaderLabels([self.tr(c) for c in columns])
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.verticalHeader().setVisible(False)
        self.setSelectionMode(QAbstractItemView.NoSelection)
        self.setMinimumHeight(110)
        self.year_column = len(columns) - 1
        self.layers: dict[str, QgsRasterLayer] = {}  # row key -> layer (project layer id, or 'file:' + path)

    def keys(self) -> list[str]:
        return [self.item(r, 0).data(KEY) for r in range(self.rowCount())]

    def add_layer(self, key: str, layer: QgsRasterLayer, checked: bool | None = None) -> None:
        if key in self.layers:
            return
        self.layers[key] = layer
        name = os.path.basename(layer_file(layer)) or layer.name()
        if self.kind == "dmsp":
            satellite, year = parse_satellite_year(name)
            if year is None:
                satellite, year = parse_satellite_year(layer.name())
            looks = layer_kind(layer) == "dmsp" or bool(DMSP_NAME.search(layer.name() + " " + name))
        else:
            satellite, year = None, viirs_year(name) or viirs_year(layer.name())
            looks = layer_kind(layer) == "viirs" or bool(VIIRS_NAME.search(layer.name() + " " + name))
        row = self.rowCount()
        self.insertRow(row)
        item = QTableWidgetItem(layer.name())
        item.setData(KEY, key)
        item.setFlags(Qt.ItemIsEnabled | Qt.ItemIsUserCheckable)
        if checked is None:  # guessed: pre-checked when it looks like this kind and its year is readable
            checked = looks and year is not None
        item.setCheckState(Qt.Checked if checked else Qt.Unchecked)
        item.setToolTip(layer_file(layer))
        self.setItem(row, 0, item)
        if self.kind == "dmsp":
            self.setItem(row, 1, QTableWidgetItem(satellite or ""))
        self.setItem(row, self.year_column, QTableWidgetItem(str(year) if year else ""))

    def remove_keys(self, keys: set[str]) -> None:
        for row in reversed(range(self.rowCount())):
            key = self.item(row, 0).data(KEY)
            if key in keys:
                self.removeRow(row)
                del self.layers[key]

    def rows(self) -> list[Row]:
        out = []
        for r in range(self.rowCount()):
            if self.item(r, 0).checkState() == Qt.Checked:
                satellite = self.item(r, 1).text().strip() if self.kind == "dmsp" else ""
                out.append(Row(self.layers[self.item(r, 0).data(KEY)], satellite, _year(self.item(r, self.year_column).text())))
        return out

    def set_checked(self, layer: QgsRasterLayer, checked: bool) -> None:
        for r in range(self.rowCount()):
            if self.layers[self.item(r, 0).data(KEY)] is layer:
                self.item(r, 0).setCheckState(Qt.Checked if checked else Qt.Unchecked)

    def set_year(self, layer: QgsRasterLayer, year: int | None, satellite: str | None = None) -> None:
        for r in range(self.rowCount()):
            if self.layers[self.item(r, 0).data(KEY)] is layer:
                self.item(r, self.year_column).setText(str(year) if year else "")
                if satellite is not None and self.kind == "dmsp":
                    self.item(r, 1).setText(satellite)


class SeriesPanel(QGroupBox):
    """Owns the series inputs and options; `changed` on any edit, `message` for what the user should know."""

    changed = pyqtSignal()
    message = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTitle(self.tr("Series inputs"))
        tr = self.tr
        self.dmsp_table = LayerTable("dmsp", self)
        self.dmsp_table.setToolTip(
            tr("DMSP-OLS stable lights of the series' years (several satellites in a year allowed): check them; "
               "satellite and year come from NOAA names (F152005, F15_2005) and can be typed")
        )  # fmt: skip
        self.viirs_table = LayerTable("viirs", self)
        self.viirs_table.setToolTip(
            tr("VIIRS DNB references (year in the name, or typed): each DMSP year uses the nearest in time; "
               "the output is on the earliest one's grid")
        )  # fmt: skip
        self.add_dmsp_button = QPushButton(tr("Add DMSP files…"), self)
        self.add_dmsp_button.setToolTip(tr("Add DMSP-OLS GeoTIFFs to the list (not to the project)"))
        self.add_viirs_button = QPushButton(tr("Add VIIRS files…"), self)
        self.add_viirs_button.setToolTip(tr("Add VIIRS reference GeoTIFFs to the list (not to the project)"))
        self.per_year_widget = QgsFileWidget(self)
        self.per_year_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.per_year_widget.lineEdit().setPlaceholderText(tr("[none: the multi-band GeoTIFF only]"))
        self.per_year_widget.setToolTip(tr("Also write one GeoTIFF per year (nightlights_<year>.tif) in this folder"))
        self.smoothing_check = QCheckBox(tr("Temporal consistency step (one robust gain per DMSP year)"), self)
        self.smoothing_check.setChecked(True)
        self.smoothing_check.setToolTip(
            tr("Divide each DMSP year by one whole-scene gain fitted against a robust ±2-year trend; off keeps the raw maps")
        )
        self.include_viirs_check = QCheckBox(tr("Add the real VIIRS years to the series"), self)
        self.include_viirs_check.setChecked(True)
        self.include_viirs_check.setToolTip(tr("The references themselves as the series' last bands/layers"))
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_dmsp_button)
        buttons.addWidget(self.add_viirs_button)
        buttons.addStretch(1)
        form = QFormLayout(self)
        form.addRow(tr("DMSP years"), self.dmsp_table)
        form.addRow(tr("VIIRS references"), self.viirs_table)
        form.addRow(buttons)
        form.addRow(tr("Per-year files in"), self.per_year_widget)
        form.addRow(self.smoothing_check)
        form.addRow(self.include_viirs_check)

        # the added files' layers are owned by a store that the project owns: deleted in QGIS's own order at exit
        # (a layer left to Python's garbage collection outlives the data providers and crashes QGIS on quit)
        self.file_store = QgsMapLayerStore(QgsProject.instance())
        self.destroyed.connect(self.file_store.deleteLater)
        self.refresh()
        for table in (self.dmsp_table, self.viirs_table):
            table.itemChanged.connect(self.changed)
        self.add_dmsp_button.clicked.connect(lambda: self._browse(self.dmsp_table))
        self.add_viirs_button.clicked.connect(lambda: self._browse(self.viirs_table))
        self.per_year_widget.fileChanged.connect(self.changed)
        project = QgsProject.instance()
        project.layersAdded.connect(self._on_layers_changed)
        # before the layers go: the rows must never hold a deleted layer when the other panels ask (layersRemoved)
        project.layersWillBeRemoved.connect(self._on_layers_removed)

    # --- the lists -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rows for the project's single-band rasters (new ones guessed, existing ones keep what was typed)."""
        layers = {layer.id(): layer for layer in raster_layers() if layer.bandCount() == 1}
        for table in (self.dmsp_table, self.viirs_table):
            table.blockSignals(True)
            table.remove_keys({k for k in table.layers if not k.startswith("file:") and k not in layers})
            for key, layer in layers.items():
                # a layer that looks like DMSP is not pre-checked as a reference too
                looks_dmsp = table is self.viirs_table and layer in [r.layer for r in self.dmsp_table.rows()]
                table.add_layer(key, layer, False if looks_dmsp else None)
            table.blockSignals(False)

    def _on_layers_changed(self, *args) -> None:
        self.refresh()
        self.changed.emit()

    def _on_layers_removed(self, ids) -> None:
        for table in (self.dmsp_table, self.viirs_table):
            table.blockSignals(True)
            table.remove_keys(set(ids))
            table.blockSignals(False)
        self.changed.emit()

    def _browse(self, table: LayerTable) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, self.tr("Add rasters"), "", RASTER_FILTER)
        self.add_files(table, paths)

    def add_files(self, table: LayerTable, paths: list[str]) -> list[QgsRasterLayer]:
        """Open files as (unlisted) layers and add them, checked; unreadable ones are reported, not added."""
        added, bad = [], []
        table.blockSignals(True)
        for path in paths:
            with inputs_untouched():  # opening a file computes statistics: no .aux.xml next to the user's input
                layer = QgsRasterLayer(path, Path(path).stem, "gdal")
            if not layer.isValid() or layer.bandCount() != 1:
                bad.append(os.path.basename(path))
                continue
            key = "file:" + os.path.abspath(path)
            if key in table.layers:
                continue
            self.file_store.addMapLayer(layer)
            table.add_layer(key, layer, True)
            added.append(layer)
        table.blockSignals(False)
        if bad:
            self.message.emit(
                self.tr("Not added (not a single-band raster GDAL can read): {}").format(", ".join(bad))
            )
        self.changed.emit()
        return added

    def dmsp_rows(self) -> list[Row]:
        return self.dmsp_table.rows()

    def viirs_rows(self) -> list[Row]:
        return self.viirs_table.rows()

    def has_rows(self) -> bool:
        return self.dmsp_table.rowCount() > 0

    def first_dmsp(self) -> QgsRasterLayer | None:
        """Core's grid is fitted over the first DMSP file given."""
        rows = self.dmsp_rows()
        return rows[0].layer if rows else None

    def reference(self) -> QgsRasterLayer | None:
        """Core's grid is the earliest reference's."""
        rows = [r for r in self.viirs_rows() if r.year is not None]
        return min(rows, key=lambda r: r.year).layer if rows else None

    # --- is it a series? -----------------------------------------------------------------------------
    def problem(self) -> str:
        """Why the checked inputs make no series ('' when they do), before anything is written."""
        tr = self.tr
        dmsp, viirs = self.dmsp_rows(), self.viirs_rows()
        if not dmsp:
            return tr("Check the DMSP-OLS rasters of at least two years in the DMSP list (Add DMSP files… adds more).")
        both = [r.layer.name() for r in dmsp if r.layer in {v.layer for v in viirs}]
        if both:
            return tr("'{}' is checked both as DMSP and as VIIRS reference; uncheck one.").format(both[0])
        for row in dmsp:
            if row.year is None:
                return tr(
                    "Cannot read the year of the DMSP layer '{}' from its name (NOAA names read: F152005, F15_2005): "
                    "type it in its Year column (1992–2013)."
                ).format(row.layer.name())
        for row in viirs:
            if row.year is None:
                return tr("Cannot read the year of the VIIRS reference '{}' from its name: type it in its Year column.").format(
                    row.layer.name()
                )
        try:
            dmsp_files = [raster_file(r.layer, "DMSP") for r in dmsp]
            viirs_files = [raster_file(r.layer, "VIIRS") for r in viirs]
        except QgsProcessingException as exc:
            return str(exc)
        try:
            from ..core.pipeline.series import SeriesRequest, resolve_dmsp, resolve_viirs
        except ImportError:
            return ""  # core cannot load (rasterio missing): the run explains what to install
        request = SeriesRequest(
            dmsp=dmsp_files, viirs=viirs_files, years=[r.year for r in dmsp],
            satellites=[r.satellite for r in dmsp], viirs_years=[r.year for r in viirs],
        )  # fmt: skip
        try:
            years = sorted({d.year for d in resolve_dmsp(request)})
            resolve_viirs(request)
        except FusionError as exc:
            return str(exc)
        if len(years) < 2:
            return tr(
                "A series needs DMSP-OLS rasters of at least two years; only {} is checked. Check more years, "
                "or use Single year mode for one year."
            ).format(years[0])
        return ""

    # --- the run -------------------------------------------------------------------------------------
    def parameters(self) -> dict:
        """The `nightlightfusion:series` inputs and options this panel stands for."""
        dmsp, viirs = self.dmsp_rows(), self.viirs_rows()
        params = {
            "DMSP": [r.layer for r in dmsp],
            "VIIRS": [r.layer for r in viirs],
            "YEARS": ",".join(str(r.year or "") for r in dmsp),
            "SATELLITES": ",".join(r.satellite for r in dmsp),
            "VIIRS_YEARS": ",".join(str(r.year or "") for r in viirs),
            "TEMPORAL_SMOOTHING": self.smoothing_check.isChecked(),
            "INCLUDE_VIIRS": self.include_viirs_check.isChecked(),
        }
        if self.per_year_widget.filePath():
            params["PER_YEAR_DIR"] = self.per_year_widget.filePath()
        return params

    def outputs(self, output: str) -> list[str]:
        """The files a series run may replace, as core names them: the GeoTIFF and its JSON report, and in the
        per-year folder nightlights_<label>.tif and series.json. Any other clash core refuses itself."""
        paths = [output, str(Path(output).with_suffix(".json"))] if output else []
        folder = Path(self.per_year_widget.filePath()) if self.per_year_widget.filePath() else None
        if folder is not None and folder.is_dir():
            paths += [str(p) for p in sorted(folder.glob("nightlights_*.tif"))] + [str(folder / "series.json")]
        return paths
