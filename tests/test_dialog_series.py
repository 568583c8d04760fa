"""The dialog's Series mode (issue 14), driven headless in the real QGIS: years checked, Run pressed, the task
awaited, the per-year layers played through a Temporal Controller (QgsTemporalNavigationObject) frame by frame."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsInterval,
    QgsProject,
    QgsRasterLayer,
    QgsRasterLayerTemporalProperties,
    QgsRectangle,
    QgsTemporalNavigationObject,
    QgsUnitTypes,
)
from qgis.PyQt.QtCore import Qt
from qgis_helpers import register_provider, wait_until
from test_dialog import make_dialog, run_and_wait, select_model, triangle_layer

SAMPLE = Path(__file__).resolve().parent.parent / "nightlight_fusion_plugin" / "sample_data"


def copy_sample(folder: Path, name: str, kind: str = "dmsp") -> Path:
    source = "dmsp_F15_2005_sample.tif" if kind == "dmsp" else "viirs_2015_reference_sample.tif"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLE / source, folder / name))


@pytest.fixture
def inputs(tmp_path_factory):
    """The sample's DMSP as three satellite-years (two satellites in 2005) and its reference named by year."""
    folder = tmp_path_factory.mktemp("series_inputs")
    files = {name: copy_sample(folder, f"{name}.tif") for name in ("F14_2003", "F15_2005", "F16_2005")}
    files["viirs"] = copy_sample(folder, "viirs_2015.tif", "viirs")
    return files


@pytest.fixture
def series_layers(qgis_iface, qgis_processing, inputs, qgis_new_project):
    register_provider()
    # the reference first: the tables must still tell DMSP from VIIRS
    layers = {"viirs": QgsRasterLayer(str(inputs["viirs"]), "viirs_2015")}
    layers.update({name: QgsRasterLayer(str(inputs[name]), name) for name in ("F14_2003", "F15_2005", "F16_2005")})
    QgsProject.instance().addMapLayers(list(layers.values()))
    qgis_iface.mapCanvas().setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    yield layers
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


@pytest.fixture
def navigation(qgis_iface):
    """What QGIS's Temporal Controller panel is: the canvas' QgsTemporalNavigationObject."""
    canvas = qgis_iface.mapCanvas()
    nav = QgsTemporalNavigationObject(canvas)
    canvas.setTemporalController(nav)
    yield nav
    canvas.setTemporalController(None)


@pytest.fixture
def dialog(qgis_iface, series_layers):
    dlg = make_dialog(qgis_iface)
    dlg.set_series_mode(True)
    select_model(dlg, "baseline")  # the traditional method: seconds, no onnxruntime
    yield dlg
    if dlg.run_panel.task is not None:
        dlg.run_panel.cancel()
        wait_until(lambda: dlg.run_panel.task is None)
    dlg.close()


def table_rows(table) -> dict[str, tuple]:
    """layer name -> (checked, satellite, year) as the table shows them."""
    out = {}
    for r in range(table.rowCount()):
        cells = [table.item(r, c).text() for c in range(1, table.columnCount())]
        out[table.item(r, 0).text()] = (table.item(r, 0).checkState() == Qt.Checked, *cells)
    return out


def check(table, name: str, checked: bool) -> None:
    for r in range(table.rowCount()):
        if table.item(r, 0).text() == name:
            table.item(r, 0).setCheckState(Qt.Checked if checked else Qt.Unchecked)
            return
    raise AssertionError(f"{name} not in the table")


def type_year(table, name: str, year: str) -> None:
    for r in range(table.rowCount()):
        if table.item(r, 0).text() == name:
            table.item(r, table.year_column).setText(year)
            return
    raise AssertionError(f"{name} not in the table")


def layer_year(layer) -> int:
    props = layer.temporalProperties()
    assert props.isActive() and props.mode() == QgsRasterLayerTemporalProperties.ModeFixedTemporalRange
    span = props.fixedTemporalRange()
    assert span.begin().date().year() == span.end().date().year()
    return span.begin().date().year()


# --- the mode and the lists --------------------------------------------------------------------------
def test_series_mode_swaps_the_inputs_and_reads_years_from_names(dialog, series_layers):
    assert dialog.series_panel.isVisibleTo(dialog) and not dialog.inputs_panel.isVisibleTo(dialog)
    dmsp = table_rows(dialog.series_panel.dmsp_table)
    assert dmsp == {
        "F14_2003": (True, "F14", "2003"),
        "F15_2005": (True, "F15", "2005"),
        "F16_2005": (True, "F16", "2005"),
        "viirs_2015": (False, "", "2015"),  # a year in the name, but VIIRS values and name: not pre-checked
    }, dmsp
    viirs = table_rows(dialog.series_panel.viirs_table)
    assert viirs["viirs_2015"] == (True, "2015") and not viirs["F14_2003"][0]
    assert dialog.run_button.isEnabled(), dialog.status.text()
    assert "series" in dialog.run_button.toolTip()
    params = dialog.parameters()
    assert params["YEARS"] == "2003,2005,2005" and params["SATELLITES"] == "F14,F15,F16"
    assert params["VIIRS_YEARS"] == "2015" and params["MODEL"] == "baseline"
    assert [layer.name() for layer in params["DMSP"]] == ["F14_2003", "F15_2005", "F16_2005"]
    for single_year_only in ("ENSEMBLE", "UNCERTAINTY", "SATELLITE", "YEAR", "REPORT", "MASK"):
        assert single_year_only not in params
    advanced = dialog.advanced_panel
    assert not advanced.satellite_edit.isEnabled() and not advanced.report_check.isEnabled()
    dialog.set_series_mode(False)  # back to single year: the earlier dialog, unchanged
    assert dialog.inputs_panel.isVisibleTo(dialog) and not dialog.series_panel.isVisibleTo(dialog)
    assert dialog.advanced_panel.satellite_edit.isEnabled() and "DMSP" in dialog.parameters()
    assert not isinstance(dialog.parameters()["DMSP"], list) and "fuse" in dialog.run_button.toolTip()


def test_every_series_control_has_a_tooltip(dialog):
    from qgis.PyQt.QtWidgets import QAbstractButton, QComboBox, QTableWidget

    missing = [
        (type(w).__name__, getattr(w, "text", lambda: "")())
        for kind in (QAbstractButton, QComboBox, QTableWidget)
        for w in dialog.series_panel.findChildren(kind)
        if w.isVisibleTo(dialog) and not w.toolTip() and w.parent() is not dialog.series_panel.per_year_widget
        and not isinstance(w.parent(), QTableWidget) and not w.objectName().startswith("qt_")
    ]  # fmt: skip
    assert not missing, missing
    assert dialog.single_radio.toolTip() and dialog.series_radio.toolTip()


def test_help_opens_the_series_section(dialog, monkeypatch):
    from qgis.PyQt.QtGui import QDesktopServices

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    dialog.run_panel.help_button.click()
    assert opened[0].fragment() == "dialog-series" and Path(opened[0].toLocalFile()).is_file()
    assert 'id="dialog-series"' in Path(opened[0].toLocalFile()).read_text()


# --- running: layers, time, style --------------------------------------------------------------------
def test_series_run_adds_year_layers_that_the_temporal_controller_plays(dialog, navigation, tmp_path):
    out = tmp_path / "series.tif"
    dialog.output_widget.setFilePath(str(out))
    dialog.run_button.click()
    assert not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    assert wait_until(lambda: finished, 180), "task did not finish"
    assert finished[0] == (True, str(out)), finished
    with rasterio.open(out) as src:
        assert list(src.descriptions) == ["2003", "2005", "2015"]
    assert out.with_suffix(".json").is_file()

    layers = dialog.series_layers
    project_layers = QgsProject.instance().mapLayers().values()
    assert [layer.name() for layer in layers] == ["Night lights 2003", "Night lights 2005", "Night lights 2015"]
    assert all(layer in project_layers for layer in layers)
    assert [layer_year(layer) for layer in layers] == [2003, 2005, 2015]
    # no per-year files: every layer is one band of the series
    assert all(layer.source() == str(out) for layer in layers)
    assert [layer.renderer().band() for layer in layers] == [1, 2, 3]
    # styled alike: one ramp and one stretch for all years
    stretches = {(layer.renderer().classificationMin(), layer.renderer().classificationMax()) for layer in layers}
    assert len(stretches) == 1 and next(iter(stretches))[1] > 0
    group = QgsProject.instance().layerTreeRoot().findGroup("Night lights 2003–2015")
    assert group is not None and {n.layer() for n in group.findLayers()} == set(layers)

    # the Temporal Controller is set to play it: the series' span, one frame per year, at the first year
    assert navigation.navigationMode() == QgsTemporalNavigationObject.Animated
    extents = navigation.temporalExtents()
    assert (extents.begin().date().year(), extents.end().date().year()) == (2003, 2015)
    assert navigation.frameDuration() == QgsInterval(1, QgsUnitTypes.TemporalYears)
    assert navigation.totalFrameCount() == 13 and navigation.currentFrameNumber() == 0
    project_range = QgsProject.instance().timeSettings().temporalRange()
    assert (project_range.begin().date().year(), project_range.end().date().year()) == (2003, 2015)

    canvas = dialog.iface.mapCanvas()
    shown = {}
    for frame in range(navigation.totalFrameCount()):
        navigation.setCurrentFrameNumber(frame)  # what the play button does, frame by frame
        frame_range = navigation.dateTimeRangeForFrameNumber(frame)
        assert canvas.temporalRange() == frame_range and canvas.mapSettings().isTemporal()
        visible = [layer.name() for layer in layers if layer.temporalProperties().isVisibleInTemporalRange(frame_range)]
        shown[frame_range.begin().date().year()] = visible
    assert shown[2003] == ["Night lights 2003"] and shown[2005] == ["Night lights 2005"]
    assert shown[2015] == ["Night lights 2015"] and shown[2004] == [] and shown[2010] == []
    assert sorted(shown) == list(range(2003, 2016))

    messages = dialog.iface.messageBar().get_messages(Qgis.Success)
    assert any("Temporal Controller" in m and "2003, 2005, 2015" in m for m in messages), messages
    assert "Done on cpu" in dialog.status.text()


def test_per_year_files_become_the_year_layers(dialog, series_layers, tmp_path):
    check(dialog.series_panel.viirs_table, "viirs_2015", True)
    dialog.series_panel.include_viirs_check.setChecked(False)  # the reference guides, but is no band
    dialog.series_panel.smoothing_check.setChecked(False)
    dialog.series_panel.per_year_widget.setFilePath(str(tmp_path / "years"))
    dialog.output_widget.setFilePath(str(tmp_path / "series.tif"))
    ok, text = run_and_wait(dialog, 180)
    assert ok, text
    files = sorted(p.name for p in (tmp_path / "years").glob("*.tif"))
    assert files == ["nightlights_2003.tif", "nightlights_2005.tif"]
    layers = dialog.series_layers
    assert [Path(layer.source()).name for layer in layers] == files
    assert [layer_year(layer) for layer in layers] == [2003, 2005]
    assert len({layer.renderer().classificationMax() for layer in layers}) == 1


def test_dialog_series_parameters_are_processing_parameters(dialog, tmp_path):
    """Parity: the dialog's run is nightlightfusion:series with its parameters(), no second implementation."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    dialog.area_panel.set_drawn_extent(QgsRectangle(0.25, 0.25, 0.75, 0.75))
    dialog.advanced_panel.seed_spin.setValue(5)
    dialog.output_widget.setFilePath(str(tmp_path / "dialog.tif"))
    ok, text = run_and_wait(dialog, 180)
    assert ok, text
    params = {**dialog.parameters(), "OUTPUT": str(tmp_path / "processing.tif")}
    assert params["EXTENT"].crs().authid() == "EPSG:4326" and params["SEED"] == 5
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    result = processing.run("nightlightfusion:series", params, context=context, feedback=QgsProcessingFeedback())
    assert result["LABELS"] == "2003,2005,2015"
    with rasterio.open(tmp_path / "dialog.tif") as a, rasterio.open(tmp_path / "processing.tif") as b:
        assert a.width == 120 and a.height == 120  # the drawn half-degree at 15″
        np.testing.assert_array_equal(a.read(), b.read())


def test_files_added_without_the_project(qgis_iface, qgis_processing, inputs, qgis_new_project, tmp_path):
    register_provider()
    QgsProject.instance().removeAllMapLayers()
    dlg = make_dialog(qgis_iface)
    dlg.set_series_mode(True)
    select_model(dlg, "baseline")
    assert dlg.series_panel.isEnabled() and not dlg.no_layers_label.isVisibleTo(dlg)
    assert "at least two years" in dlg.status.text()
    (tmp_path / "notes.tif").write_text("not a raster")
    panel = dlg.series_panel
    panel.add_files(panel.dmsp_table, [str(inputs["F14_2003"]), str(inputs["F15_2005"]), str(tmp_path / "notes.tif")])
    panel.add_files(panel.viirs_table, [str(inputs["viirs"])])
    assert any("notes.tif" in m for m in qgis_iface.messageBar().get_messages(Qgis.Warning)) or any(
        "notes.tif" in item.text() for item in dlg.message_bar.items()
    )
    assert table_rows(panel.dmsp_table) == {"F14_2003": (True, "F14", "2003"), "F15_2005": (True, "F15", "2005")}
    assert not list(inputs["F14_2003"].parent.glob("*.aux.xml"))  # opening the inputs left nothing beside them
    dlg.output_widget.setFilePath(str(tmp_path / "s.tif"))
    ok, text = run_and_wait(dlg, 180)
    assert ok, text
    assert [layer_year(layer) for layer in dlg.series_layers] == [2003, 2005, 2015]
    dlg.close()
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


# --- bad input: a clear message, nothing written -----------------------------------------------------
def assert_blocked(dlg, tmp_path, *words):
    assert not dlg.run_button.isEnabled()
    for word in words:
        assert word in dlg.status.text(), dlg.status.text()
    dlg.run()  # the run refuses too (not only the button)
    assert dlg.run_panel.task is None and not list(tmp_path.iterdir())


def test_one_dmsp_year_is_not_a_series(dialog, tmp_path):
    dialog.output_widget.setFilePath(str(tmp_path / "s.tif"))
    check(dialog.series_panel.dmsp_table, "F14_2003", False)
    assert_blocked(dialog, tmp_path, "at least two years", "2005", "Single year")  # two satellites, one year
    for name in ("F15_2005", "F16_2005"):
        check(dialog.series_panel.dmsp_table, name, False)
    assert_blocked(dialog, tmp_path, "Check the DMSP-OLS rasters")
    check(dialog.series_panel.dmsp_table, "F14_2003", True)
    check(dialog.series_panel.dmsp_table, "F15_2005", True)
    assert dialog.run_button.isEnabled(), dialog.status.text()


def test_an_unreadable_year_says_where_to_type_it(dialog, series_layers, tmp_path, inputs):
    lights = QgsRasterLayer(str(copy_sample(tmp_path.parent / "unnamed", "lights.tif")), "lights")
    QgsProject.instance().addMapLayer(lights)
    table = dialog.series_panel.dmsp_table
    assert table_rows(table)["lights"] == (False, "", "")  # no year in its name: listed, not pre-checked
    check(table, "lights", True)
    dialog.output_widget.setFilePath(str(tmp_path / "s.tif"))
    assert_blocked(dialog, tmp_path, "Cannot read the year", "'lights'", "Year column")
    type_year(table, "lights", "2017")  # typed, but DMSP-OLS ends in 2013: core's own words
    assert_blocked(dialog, tmp_path, "1992–2013")
    type_year(table, "lights", "2009")
    assert dialog.run_button.isEnabled(), dialog.status.text()
    assert dialog.parameters()["YEARS"] == "2003,2005,2005,2009"


def test_a_satellite_year_given_twice_and_a_reference_without_year(dialog, series_layers, tmp_path):
    table = dialog.series_panel.dmsp_table
    dialog.output_widget.setFilePath(str(tmp_path / "s.tif"))
    for r in range(table.rowCount()):
        if table.item(r, 0).text() == "F16_2005":
            table.item(r, 1).setText("F15")
    assert_blocked(dialog, tmp_path, "Two DMSP files for F15 2005")
    table.item(next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "F16_2005"), 1).setText("F16")
    type_year(dialog.series_panel.viirs_table, "viirs_2015", "")
    assert_blocked(dialog, tmp_path, "Cannot read the year of the VIIRS reference 'viirs_2015'")
    type_year(dialog.series_panel.viirs_table, "viirs_2015", "2015")
    check(dialog.series_panel.viirs_table, "F14_2003", True)
    assert_blocked(dialog, tmp_path, "both as DMSP and as VIIRS")


def test_a_polygon_area_is_refused(dialog, tmp_path):
    mask = triangle_layer()
    QgsProject.instance().addMapLayer(mask)
    dialog.area_panel.area_combo.setCurrentIndex(3)
    dialog.area_panel.mask_combo.setLayer(mask)
    dialog.output_widget.setFilePath(str(tmp_path / "s.tif"))
    assert_blocked(dialog, tmp_path, "no polygon mask")


def test_existing_series_files_are_replaced_only_when_agreed(dialog, tmp_path):
    out = tmp_path / "series.tif"
    report = out.with_suffix(".json")
    report.write_text("{}")
    asked = []
    dialog.run_panel.confirm_overwrite = lambda paths: asked.append(paths) or False
    dialog.output_widget.setFilePath(str(out))
    dialog.run_button.click()
    assert asked == [[str(report)]] and dialog.run_panel.task is None and "Not run" in dialog.status.text()
    assert report.read_text() == "{}" and not out.exists()
    dialog.run_panel.confirm_overwrite = lambda paths: True
    ok, text = run_and_wait(dialog, 180)
    assert ok, text
    assert '"seam"' in report.read_text() and out.stat().st_size > 1000


def test_a_clash_core_finds_is_refused_with_its_words(dialog, tmp_path):
    """A file only core knows it would write (here: a per-year file the dialog was not asked about, because
    OVERWRITE is off unless the user agreed): core stops before any work and the dialog shows its message."""
    years = tmp_path / "years"
    years.mkdir()
    (years / "nightlights_2015.tif").write_bytes(b"keep")
    dialog.run_panel.confirm_overwrite = lambda paths: False
    dialog.series_panel.per_year_widget.setFilePath(str(years))
    dialog.output_widget.setFilePath(str(tmp_path / "series.tif"))
    dialog.run_button.click()
    assert "Not run" in dialog.status.text() and (years / "nightlights_2015.tif").read_bytes() == b"keep"
    # asked and refused above; now a run that is not asked (the folder's file is hidden from the dialog's check)
    dialog.series_panel.outputs = lambda output: []
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dialog.run_button.click()
    assert wait_until(lambda: finished, 60)
    assert finished[0][0] is False and "already exists" in finished[0][1], finished
    assert "already exists" in dialog.status.text()
    assert (years / "nightlights_2015.tif").read_bytes() == b"keep" and not (tmp_path / "series.tif").exists()
    assert sorted(p.name for p in years.iterdir()) == ["nightlights_2015.tif"]


# --- real files --------------------------------------------------------------------------------------
@pytest.mark.real_data
@pytest.mark.parametrize("smoothing", [False, True])
def test_series_on_real_files(qgis_iface, qgis_processing, real_data, qgis_new_project, navigation, tmp_path, smoothing):
    """São Tomé: the real DMSP 1992 clip (float DN, real nodata) as two years, the real VIIRS 2014 reference."""
    register_provider()
    dmsp_file = real_data / "sao_tome" / "dmsp_1992_stable_lights.tif"
    viirs_file = real_data / "sao_tome" / "viirs_dnb_monthly_2014_01.tif"
    dlg = make_dialog(qgis_iface)
    dlg.set_series_mode(True)
    select_model(dlg, "baseline")
    panel = dlg.series_panel
    panel.add_files(panel.dmsp_table, [str(dmsp_file), str(dmsp_file)])
    assert table_rows(panel.dmsp_table) == {"dmsp_1992_stable_lights": (True, "", "1992")}  # a file is listed once
    panel.add_files(panel.viirs_table, [str(viirs_file)])
    assert "at least two years" in dlg.status.text()
    # the same clip again, as an F10 1994 layer of the project, its year typed
    layer_1994 = QgsRasterLayer(str(dmsp_file), "sao_tome_dmsp_copy")
    QgsProject.instance().addMapLayer(layer_1994)
    check(panel.dmsp_table, "sao_tome_dmsp_copy", True)
    type_year(panel.dmsp_table, "sao_tome_dmsp_copy", "1994")
    check(panel.viirs_table, "sao_tome_dmsp_copy", False)
    assert dlg.run_button.isEnabled(), dlg.status.text()
    panel.smoothing_check.setChecked(smoothing)
    dlg.output_widget.setFilePath(str(tmp_path / "sao_tome_series.tif"))
    ok, text = run_and_wait(dlg, 300)
    assert ok, text
    with rasterio.open(tmp_path / "sao_tome_series.tif") as src:
        assert list(src.descriptions) == ["1992", "1994", "2014"] and src.crs.to_epsg() == 4326
        stack = src.read()
        assert all(np.isfinite(band).sum() > 4000 and np.nanmax(band) > 0 for band in stack)
    assert [layer_year(layer) for layer in dlg.series_layers] == [1992, 1994, 2014]
    navigation.setCurrentFrameNumber(2)  # 1994
    frame = navigation.dateTimeRangeForFrameNumber(2)
    assert [layer.name() for layer in dlg.series_layers if layer.temporalProperties().isVisibleInTemporalRange(frame)] == [
        "Night lights 1994"
    ]
    assert not list((real_data / "sao_tome").glob("*.series-work"))
    dlg.close()
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().layerTreeRoot().removeAllChildren()


def test_cancel_leaves_no_series(dialog, tmp_path):
    out = tmp_path / "series.tif"
    dialog.output_widget.setFilePath(str(out))
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dialog.run_button.click()
    dialog.cancel_button.click()  # before the first year is fused: core checks between years
    assert wait_until(lambda: finished, 60)
    assert finished[0][0] is False and "Cancelled" in finished[0][1], finished
    assert not list(tmp_path.iterdir()) and dialog.series_layers == []
    assert dialog.run_button.isEnabled()
