"""The analyst's dialog (issue 6), driven headless in the real QGIS: widgets set, Run pressed, the task awaited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis_helpers import register_provider, wait_until

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"


def make_dialog(iface):
    from nightlight_fusion_plugin.gui.dialog import FuseDialog

    dlg = FuseDialog(iface)
    dlg.advanced_panel.report_check.setChecked(False)
    dlg.advanced_panel.threads_spin.setValue(0)
    dlg.advanced_panel.batch_spin.setValue(8)
    dlg.advanced_panel.device_combo.setCurrentIndex(0)
    return dlg


@pytest.fixture
def layers(qgis_iface, qgis_processing, sample, qgis_new_project):
    register_provider()
    # VIIRS first: the dialog must still guess which is which
    viirs = QgsRasterLayer(str(sample["reference"]), "viirs_2015_reference_sample")
    dmsp = QgsRasterLayer(str(sample["dmsp"]), "dmsp_F15_2005_sample")
    QgsProject.instance().addMapLayers([viirs, dmsp])
    qgis_iface.mapCanvas().setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    yield dmsp, viirs
    QgsProject.instance().removeAllMapLayers()


@pytest.fixture
def dialog(qgis_iface, layers):
    dlg = make_dialog(qgis_iface)
    yield dlg
    if dlg.run_panel.task is not None:
        dlg.run_panel.cancel()
        wait_until(lambda: dlg.run_panel.task is None)
    dlg.close()


def run_and_wait(dlg, timeout=120.0):
    finished = []
    dlg.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dlg.run_button.click()
    assert wait_until(lambda: finished, timeout), "task did not finish"
    return finished[0]


@pytest.fixture
def speed_zoo(smoke_zoo, tmp_path_factory, monkeypatch):
    """The smoke zoo with speed levels as `make report` writes them: measured for diffusion, unmeasured for flow."""
    zoo = tmp_path_factory.mktemp("speed_zoo") / "model_zoo"
    shutil.copytree(smoke_zoo, zoo)
    manifest = json.loads((zoo / "manifest.json").read_text())
    for entry in manifest["models"]:
        if entry["family"] == "diffusion":
            entry["speed_levels"] = [
                {"level": 1, "sampler": "ddim", "steps": 2, "nfe": 2, "psnr": 21.5, "seconds_per_megapixel": 3.0},
                {"level": 2, "sampler": "dpmpp_2m", "steps": 8, "nfe": 8, "psnr": 24.25, "seconds_per_megapixel": 12.0},
            ]
            entry["default_speed"] = 1
        elif entry["family"] == "flow_matching":
            entry["speed_levels"] = [{"level": 1, "sampler": "flow_euler", "steps": 4, "nfe": 4}]
    (zoo / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
    return zoo


def select_model(dlg, base_id):
    index = dlg.model_panel.model_combo.findData(base_id)
    assert index >= 0, [dlg.model_panel.model_combo.itemData(i) for i in range(dlg.model_panel.model_combo.count())]
    dlg.model_panel.model_combo.setCurrentIndex(index)


def triangle_layer():
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "districts", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((0.1 0.1, 0.5 0.1, 0.1 0.5, 0.1 0.1))"))
    layer.dataProvider().addFeatures([feature])
    layer.updateExtents()
    return layer


# --- inputs ------------------------------------------------------------------------------------------
def default_model_id(with_reference: bool = True) -> str:
    """The model the dialog preselects; the tests' layers include a VIIRS reference."""
    from nightlight_fusion_plugin.core.engine.models import default_model

    entry = default_model(with_reference)
    return entry.variant_of or entry.id


def test_guesses_inputs_and_prefills_satellite_year(dialog, layers):
    dmsp, viirs = layers
    assert dialog.dmsp_combo.currentLayer() is dmsp and dialog.viirs_combo.currentLayer() is viirs
    assert dialog.advanced_panel.satellite_edit.text() == "F15" and dialog.advanced_panel.year_spin.value() == 2005
    params = dialog.parameters()
    assert params["SATELLITE"] == "F15" and params["YEAR"] == 2005
    assert params["MODEL"] == default_model_id()  # the recommendation for runs with a reference preselected
    dialog.viirs_combo.setLayer(None)
    assert dialog.parameters()["MODEL"] == default_model_id(with_reference=False)  # no reference: the zoo's default
    dialog.viirs_combo.setLayer(viirs)
    assert dialog.parameters()["MODEL"] == default_model_id()
    dialog.advanced_panel.satellite_edit.setText("F16")
    assert dialog.parameters()["SATELLITE"] == "F16"  # editable


def test_prefills_the_reference_year_from_the_viirs_file(dialog, layers):
    _, viirs = layers
    assert dialog.advanced_panel.reference_year_spin.value() == 2015  # viirs_2015_reference_sample.tif
    assert dialog.parameters()["REFERENCE_YEAR"] == 2015
    dialog.viirs_combo.setLayer(None)
    assert "REFERENCE_YEAR" not in dialog.parameters()  # no reference, no year
    dialog.viirs_combo.setLayer(viirs)
    dialog.advanced_panel.reference_year_spin.setValue(2014)
    assert dialog.parameters()["REFERENCE_YEAR"] == 2014  # editable
    dialog.series_radio.setChecked(True)
    assert not dialog.advanced_panel.reference_year_spin.isEnabled()  # a series reads each reference's year


def test_swapped_inputs_warn_and_swap_in_one_click(dialog, layers):
    dmsp, viirs = layers
    dialog.dmsp_combo.setLayer(viirs)
    dialog.viirs_combo.setLayer(dmsp)
    assert dialog.inputs_panel.swap_row.isVisibleTo(dialog) and dialog.inputs_panel.swap_button.isVisibleTo(dialog)
    assert "swapped" in dialog.inputs_panel.swap_label.text()
    dialog.inputs_panel.swap_button.click()
    assert dialog.dmsp_combo.currentLayer() is dmsp and dialog.viirs_combo.currentLayer() is viirs
    assert not dialog.inputs_panel.swap_row.isVisibleTo(dialog)


def test_multiband_layers_are_not_offered(qgis_iface, layers, tmp_path):
    from conftest import write_raster

    rgb = QgsRasterLayer(str(write_raster(tmp_path / "rgb.tif", np.ones((3, 10, 10), np.uint8))), "rgb")
    QgsProject.instance().addMapLayer(rgb)
    dlg = make_dialog(qgis_iface)
    assert rgb in dlg.dmsp_combo.exceptedLayerList() and rgb in dlg.viirs_combo.exceptedLayerList()
    dlg.close()


def test_without_raster_layers_the_dialog_says_what_to_load(qgis_iface, qgis_new_project):
    QgsProject.instance().removeAllMapLayers()
    dlg = make_dialog(qgis_iface)
    assert dlg.no_layers_label.isVisibleTo(dlg) and "Add Raster Layer" in dlg.no_layers_label.text()
    assert not dlg.inputs_panel.isEnabled() and not dlg.run_button.isEnabled()
    assert "Load a DMSP" in dlg.status.text()
    dlg.close()


# --- area --------------------------------------------------------------------------------------------
def test_area_size_in_pixels_and_km2(dialog):
    pixels, km2 = dialog.area_panel.area_size()
    assert pixels == 240 * 240 and km2 == pytest.approx(111.32**2, rel=0.01)  # 1°×1° at the equator
    assert "57,600 px" in dialog.area_panel.area_label.text() and "km²" in dialog.area_panel.area_label.text()


def test_drawn_rectangle_with_the_map_tool(dialog, qgis_iface):
    from qgis.gui import QgsMapToolExtent

    dialog.area_panel.draw_button.click()
    tool = qgis_iface.mapCanvas().mapTool()
    assert isinstance(tool, QgsMapToolExtent)
    tool.extentChanged.emit(QgsRectangle(0.25, 0.25, 0.5, 0.5))  # what dragging on the canvas emits
    assert dialog.area_panel.area_combo.currentIndex() == 2 and qgis_iface.mapCanvas().mapTool() is not tool
    assert dialog.area_panel.area_size()[0] == 60 * 60 and dialog.run_button.isEnabled()
    assert dialog.parameters()["EXTENT"].crs().authid() == "EPSG:4326"


def test_area_outside_the_layers_disables_run_with_the_reason(dialog):
    dialog.area_panel.set_drawn_extent(QgsRectangle(40, 40, 41, 41))
    assert not dialog.run_button.isEnabled()
    assert "outside the input layers" in dialog.status.text() and "outside" in dialog.run_button.toolTip()
    dialog.area_panel.area_combo.setCurrentIndex(0)
    assert dialog.run_button.isEnabled()


def test_polygon_area_without_a_polygon_layer_disables_run(dialog):
    dialog.area_panel.area_combo.setCurrentIndex(3)
    assert not dialog.run_button.isEnabled() and "polygon layer" in dialog.status.text()


def test_polygon_mask_writes_only_pixels_inside(dialog, tmp_path):
    mask = triangle_layer()
    QgsProject.instance().addMapLayer(mask)
    dialog.area_panel.area_combo.setCurrentIndex(3)
    dialog.area_panel.mask_combo.setLayer(mask)
    assert "nodata" in dialog.area_panel.area_label.text()
    out = tmp_path / "masked.tif"
    dialog.output_widget.setFilePath(str(out))
    ok, text = run_and_wait(dialog)
    assert ok, text
    with rasterio.open(out) as src:
        data = src.read(1)
        rows, cols = np.indices(data.shape)
        x, y = (np.asarray(v) for v in src.xy(rows, cols))
        assert src.bounds.left == pytest.approx(0.1, abs=0.005)
        assert np.isfinite(data[(x + y < 0.58) & (x > 0.1) & (y > 0.1)]).all()
        assert np.isnan(data[x + y > 0.62]).all()
    assert "polygon" in dialog.result_layer.metadata().abstract()


# --- running and results -----------------------------------------------------------------------------
def test_run_adds_a_styled_layer_with_metadata_and_a_report(dialog, tmp_path):
    out = tmp_path / "fused.tif"
    dialog.output_widget.setFilePath(str(out))
    dialog.advanced_panel.report_check.setChecked(True)
    dialog.advanced_panel.seed_spin.setValue(7)
    dialog.run_button.click()
    assert not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    assert wait_until(lambda: finished, 120)
    assert finished[0] == (True, str(out)), finished
    layer = dialog.result_layer
    assert layer in QgsProject.instance().mapLayers().values()
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    abstract = layer.metadata().abstract()
    for expected in (
        f"Model: {default_model_id()}",
        "Seed: 7",
        "Device: cpu",
        "dmsp_F15_2005_sample.tif",
        "viirs_2015_reference",
        "Pearson r",
    ):
        assert expected in abstract, abstract
    report = Path(dialog.run_panel.report_path)
    assert report == out.with_suffix(".report.html") and "data:image/png" in report.read_text()
    assert "run report" in dialog.status.text() and dialog.run_panel.progress.value() == 100
    messages = dialog.iface.messageBar().get_messages(Qgis.Success)
    assert any(str(out) in m and "report" in m for m in messages)


def test_dialog_parameters_are_processing_parameters(dialog, tmp_path):
    """Parity: the same parameters through processing.run give the same raster as the dialog's run."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    mask = triangle_layer()
    QgsProject.instance().addMapLayer(mask)
    dialog.area_panel.area_combo.setCurrentIndex(3)
    dialog.area_panel.mask_combo.setLayer(mask)
    dialog.advanced_panel.seed_spin.setValue(3)
    dialog.output_widget.setFilePath(str(tmp_path / "dialog.tif"))
    ok, _ = run_and_wait(dialog)
    assert ok
    params = {**dialog.parameters(), "OUTPUT": str(tmp_path / "processing.tif")}
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.run("nightlightfusion:fuse", params, context=context, feedback=QgsProcessingFeedback())
    with rasterio.open(tmp_path / "dialog.tif") as a, rasterio.open(tmp_path / "processing.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_existing_output_asks_before_overwriting(dialog, tmp_path):
    out = tmp_path / "fused.tif"
    out.write_bytes(b"old")
    asked = []
    dialog.run_panel.confirm_overwrite = lambda paths: asked.append(paths) or False
    dialog.output_widget.setFilePath(str(out))
    dialog.run_button.click()
    assert asked == [[str(out)]] and dialog.run_panel.task is None and "Not run" in dialog.status.text()
    assert out.read_bytes() == b"old"
    dialog.run_panel.confirm_overwrite = lambda paths: True
    ok, _ = run_and_wait(dialog)
    assert ok and out.stat().st_size > 1000


def test_dialog_can_be_closed_while_the_task_runs(dialog, tmp_path):
    out = tmp_path / "fused.tif"
    dialog.output_widget.setFilePath(str(out))
    dialog.show()
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dialog.run_button.click()
    dialog.close()
    assert wait_until(lambda: finished, 120) and finished[0][0]
    assert dialog.result_layer in QgsProject.instance().mapLayers().values()
    assert any(str(out) in m for m in dialog.iface.messageBar().get_messages(Qgis.Success))


def test_help_button_opens_the_help_page(dialog, monkeypatch):
    from qgis.PyQt.QtGui import QDesktopServices

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    dialog.run_panel.help_button.click()
    assert opened and opened[0].isLocalFile() and Path(opened[0].toLocalFile()).is_file()
    assert opened[0].toLocalFile().endswith("index.html")


def test_settings_are_remembered(qgis_iface, layers):
    dlg = make_dialog(qgis_iface)
    dlg.advanced_panel.threads_spin.setValue(2)
    dlg.advanced_panel.batch_spin.setValue(4)
    dlg.advanced_panel.device_combo.setCurrentIndex(dlg.advanced_panel.device_combo.findData("cpu"))
    dlg.save_settings()
    dlg.close()
    from nightlight_fusion_plugin.gui.dialog import FuseDialog

    again = FuseDialog(qgis_iface)
    advanced = again.advanced_panel
    assert (advanced.threads_spin.value(), advanced.batch_spin.value(), advanced.device_combo.currentData()) == (2, 4, "cpu")
    assert again.parameters()["THREADS"] == 2 and again.parameters()["BATCH_SIZE"] == 4
    again.close()
    make_dialog(qgis_iface).save_settings()  # back to the defaults


def test_every_control_has_a_tooltip(dialog):
    from qgis.PyQt.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QSlider, QSpinBox

    missing = []
    for kind in (QComboBox, QSpinBox, QSlider, QAbstractButton):
        for widget in dialog.findChildren(kind):
            if widget.parent() is dialog.advanced_panel and isinstance(widget, QAbstractButton) and not widget.text():
                continue  # the group box's own collapse button
            if not widget.toolTip() and widget.isVisibleTo(dialog) and not isinstance(widget.parent(), QComboBox):
                if isinstance(widget.parent(), (QLineEdit,)) or widget.objectName().startswith("qt_"):
                    continue
                if widget.parent() in (dialog.output_widget, dialog.advanced_panel.uncertainty_widget):
                    continue  # QgsFileWidget's browse button (the widget has the tooltip)
                missing.append((type(widget).__name__, getattr(widget, "text", lambda: "")()))
    assert not missing, missing


# --- models, speed -----------------------------------------------------------------------------------
def test_baseline_disables_the_speed_slider_with_the_reason(dialog):
    select_model(dialog, "baseline")
    assert not dialog.model_panel.speed_slider.isEnabled()
    assert "no sampler" in dialog.model_panel.speed_label.text()
    assert "SPEED" not in dialog.parameters()


def test_speed_slider_label_with_the_zoo(qgis_iface, layers, speed_zoo):
    dlg = make_dialog(qgis_iface)
    select_model(dlg, "diffusion-fp32")
    dlg.advanced_panel.device_combo.setCurrentIndex(dlg.advanced_panel.device_combo.findData("cpu"))
    # Automatic: the model and PRECISION auto; the engine times the variants once on this machine
    assert (dlg.parameters()["MODEL"], dlg.parameters()["PRECISION"]) == ("diffusion-fp32", "auto")
    assert dlg.model_panel.selected_model().id == "diffusion-fp32"  # not measured here yet: times of fp32
    from nightlight_fusion_plugin.core.engine import precision
    from nightlight_fusion_plugin.processing.common import precision_cache_dir

    cache = precision.ChoiceCache(precision_cache_dir())
    zoo = dlg.model_panel.models["diffusion-fp32"].zoo
    precision.choose(zoo, "auto", "cpu", None, cache, lambda m, d, t: {"int8": 1.0}.get(m.precision, 2.0))
    dlg.model_panel._on_variant_changed()
    assert dlg.model_panel.selected_model().id == "diffusion-int8"  # measured: the slider predicts with int8
    assert dlg.parameters()["MODEL"] == "diffusion-fp32"
    cache.path.unlink()
    dlg.model_panel.precision_combo.setCurrentIndex(dlg.model_panel.precision_combo.findData("fp32"))
    assert (dlg.parameters()["MODEL"], dlg.parameters()["PRECISION"]) == ("diffusion-fp32", "fp32")
    assert dlg.model_panel.speed_slider.isEnabled() and dlg.model_panel.speed_slider.maximum() == 1
    text = dlg.model_panel.speed_label.text()
    # 57,600 px = 0.0576 Mpx at 3 s/Mpx = 0.17 s
    assert "DDIM" in text and "NFE 2" in text and "< 1 s" in text and "PSNR 21.50 dB" in text, text
    dlg.model_panel.speed_slider.setValue(1)
    text = dlg.model_panel.speed_label.text()
    assert "NFE 8" in text and "PSNR 24.25 dB" in text and dlg.parameters()["SPEED"] == 2, text
    dlg.advanced_panel.sampler_combo.setCurrentIndex(dlg.advanced_panel.sampler_combo.findData("ddpm"))
    dlg.advanced_panel.steps_spin.setValue(3)
    text = dlg.model_panel.speed_label.text()
    assert "advanced override" in text and "quality not measured" in text, text
    select_model(dlg, "flow-matching-fp32")
    text = dlg.model_panel.speed_label.text()
    assert "time not measured" in text and "quality not measured" in text
    select_model(dlg, "unet-fp32")
    assert not dlg.model_panel.speed_slider.isEnabled() and not dlg.advanced_panel.uncertainty_check.isEnabled()
    dlg.close()


def test_temperature_only_for_normalizing_flows(qgis_iface, layers, speed_zoo):
    dlg = make_dialog(qgis_iface)
    temperature = dlg.advanced_panel.temperature_spin
    select_model(dlg, "normalizing-flow-fp32")
    assert temperature.isEnabledTo(dlg) and "TEMPERATURE" not in dlg.parameters()  # the algorithm's 0.8
    temperature.setValue(0.0)
    assert dlg.parameters()["TEMPERATURE"] == 0.0
    select_model(dlg, "diffusion-fp32")
    assert not temperature.isEnabledTo(dlg) and "TEMPERATURE" not in dlg.parameters()
    dlg.close()


def test_without_onnxruntime_the_onnx_models_are_greyed_out(qgis_iface, layers, speed_zoo, monkeypatch):
    from nightlight_fusion_plugin.core.engine.models import available_models
    from nightlight_fusion_plugin.gui import common

    monkeypatch.setattr(common, "onnxruntime_available", lambda: False)
    dlg = make_dialog(qgis_iface)
    combo = dlg.model_panel.model_combo
    items = {combo.itemData(i): combo.model().item(i) for i in range(combo.count())}
    traditional = {m.id for m in available_models() if m.zoo is None}
    assert "baseline" in traditional and traditional <= set(items) and len(items) > len(traditional)
    for model_id, item in items.items():
        assert item.isEnabled() == (model_id in traditional), model_id
        if model_id not in traditional:
            assert "onnxruntime" in item.toolTip() and "Install dependencies" in item.toolTip(), item.toolTip()
    assert combo.currentData() in traditional and dlg.parameters()["MODEL"] in traditional
    assert dlg.run_button.isEnabled()
    label = dlg.model_panel.runtime_label
    assert label.isVisibleTo(dlg) and "onnxruntime" in label.text() and "Install dependencies" in label.text()
    device = dlg.advanced_panel.device_combo
    assert [device.itemData(i) for i in range(device.count())] == ["auto", "cpu"]
    select_model(dlg, "diffusion-fp32")  # only code can pick a disabled item; Run then says why not
    assert not dlg.run_button.isEnabled() and "Install dependencies" in dlg.status.text()
    assert not dlg.model_panel.measure_button.isEnabled()
    dlg.close()


def test_with_onnxruntime_every_model_is_offered(qgis_iface, layers, speed_zoo):
    dlg = make_dialog(qgis_iface)
    combo = dlg.model_panel.model_combo
    assert all(combo.model().item(i).isEnabled() for i in range(combo.count()))
    assert not dlg.model_panel.runtime_label.isVisibleTo(dlg)
    dlg.close()


def test_measure_times_one_tile_here(qgis_iface, layers, speed_zoo):
    dlg = make_dialog(qgis_iface)
    select_model(dlg, "diffusion-fp32")
    dlg.advanced_panel.device_combo.setCurrentIndex(dlg.advanced_panel.device_combo.findData("cpu"))
    labels = []
    dlg.measured.connect(labels.append)
    dlg.model_panel.measure_button.click()
    assert wait_until(lambda: labels, 120), "measuring did not finish"
    assert "measured on this machine" in labels[0], labels[0]
    # Automatic precision, not yet measured by the engine on this machine: the model itself is timed
    assert ("diffusion-fp32", "cpu") in dlg.model_panel.measurements
    dlg.close()


def test_missing_and_corrupt_model_files_are_marked(qgis_iface, layers, speed_zoo):
    (speed_zoo / "unet-fp32.onnx").unlink()
    dlg = make_dialog(qgis_iface)
    index = dlg.model_panel.model_combo.findData("unet-fp32")
    assert dlg.model_panel.model_combo.itemText(index).startswith("⚠")
    assert "missing" in dlg.model_panel.model_combo.itemData(index, 3)
    dlg.model_panel.model_combo.setCurrentIndex(index)
    assert not dlg.run_button.isEnabled() and "missing" in dlg.status.text()
    # corrupt with the right size: only the on-demand sha256 check finds it
    path = speed_zoo / "flow-matching-fp32.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    select_model(dlg, "flow-matching-fp32")
    assert dlg.run_button.isEnabled()
    dlg.model_panel.verify_button.click()
    assert not dlg.run_button.isEnabled() and "sha256" in dlg.status.text()
    assert dlg.model_panel.model_combo.currentText().startswith("⚠")
    dlg.close()


def test_details_open_the_model_card(qgis_iface, layers, speed_zoo):
    dlg = make_dialog(qgis_iface)
    select_model(dlg, "diffusion-fp32")
    dlg.model_panel.details_button.click()
    assert dlg.model_panel.details_dialog is not None and dlg.model_panel.details_dialog.isVisible()
    from qgis.PyQt.QtWidgets import QTextBrowser

    text = dlg.model_panel.details_dialog.findChild(QTextBrowser).toPlainText()
    assert "diffusion" in text.lower()
    dlg.model_panel.details_dialog.close()
    dlg.close()


def test_zoo_run_with_uncertainty_styles_both_layers(qgis_iface, layers, speed_zoo, tmp_path):
    dlg = make_dialog(qgis_iface)
    select_model(dlg, "diffusion-fp32")
    dlg.advanced_panel.device_combo.setCurrentIndex(dlg.advanced_panel.device_combo.findData("cpu"))
    dlg.advanced_panel.uncertainty_check.setChecked(True)
    dlg.advanced_panel.uncertainty_widget.setFilePath(str(tmp_path / "spread.tif"))
    dlg.advanced_panel.ensemble_spin.setValue(2)
    dlg.area_panel.set_drawn_extent(QgsRectangle(0.25, 0.25, 0.5, 0.5))
    dlg.output_widget.setFilePath(str(tmp_path / "fused.tif"))
    ok, text = run_and_wait(dlg, 300)
    assert ok, text
    spread = dlg.run_panel.uncertainty_layer
    assert spread is not None and spread in QgsProject.instance().mapLayers().values()
    items = spread.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert items[0].color.name() == "#440154"  # viridis, not the night-lights ramp
    abstract = dlg.result_layer.metadata().abstract()
    assert "NFE: 2" in abstract and "DDIM" in abstract and "Ensemble: 2" in abstract and "Device: cpu" in abstract, abstract
    assert "device: cpu" in dlg.run_panel.progress_label.text()
    dlg.close()


def test_cancel_stops_a_zoo_run_within_a_batch(qgis_iface, layers, speed_zoo, tmp_path):
    dlg = make_dialog(qgis_iface)
    select_model(dlg, "diffusion-fp32")
    dlg.advanced_panel.device_combo.setCurrentIndex(dlg.advanced_panel.device_combo.findData("cpu"))
    dlg.advanced_panel.sampler_combo.setCurrentIndex(dlg.advanced_panel.sampler_combo.findData("ddim"))
    dlg.advanced_panel.steps_spin.setValue(200)
    dlg.advanced_panel.batch_spin.setValue(1)
    out = tmp_path / "fused.tif"
    dlg.output_widget.setFilePath(str(out))
    finished = []
    dlg.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dlg.run_button.click()
    assert wait_until(lambda: "Tile" in dlg.run_panel.progress_label.text() or finished, 120)
    progress = dlg.run_panel.progress_label.text()
    assert "Tile" in progress and "left" in progress, progress
    dlg.cancel_button.click()
    assert wait_until(lambda: finished, 60)
    assert finished[0][0] is False and "Cancelled" in finished[0][1]
    assert not out.exists() and not list(tmp_path.iterdir())
    assert any("Cancelled" in m for m in dlg.iface.messageBar().get_messages(Qgis.Warning))
    dlg.close()


# --- screenshots -------------------------------------------------------------------------------------
@pytest.mark.xvfb
def test_screenshots_of_the_dialog_and_the_result(qgis_iface, layers, tmp_path):
    """docs/images/dialog.png and docs/images/result.png (referenced from the README)."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    mask = triangle_layer()
    dlg = make_dialog(qgis_iface)
    dlg.advanced_panel.report_check.setChecked(True)
    dlg.output_widget.setFilePath(str(tmp_path / "fused_2005.tif"))
    dlg.advanced_panel.setCollapsed(False)
    dlg.resize(640, 900)
    dlg.show()
    ok, text = run_and_wait(dlg)
    assert ok, text
    dlg.output_widget.setFilePath("/data/fused_2005.tif")  # tidy paths for the picture
    dlg.status.setText(dlg.status.text().replace(str(tmp_path), "/data"))
    IMAGES.mkdir(parents=True, exist_ok=True)
    wait_until(lambda: False, 0.3)
    assert dlg.grab().save(str(IMAGES / "dialog.png"))

    dmsp, viirs = layers
    settings = QgsMapSettings()
    settings.setLayers([dlg.result_layer])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    settings.setExtent(dlg.result_layer.extent())
    settings.setOutputSize(QSize(480, 480))
    settings.setBackgroundColor(QColor("black"))
    pictures = []
    for layer in (dmsp, dlg.result_layer):
        settings.setLayers([layer])
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        pictures.append(job.renderedImage())
    from qgis.PyQt.QtGui import QImage, QPainter

    combined = QImage(980, 480, QImage.Format_ARGB32)
    combined.fill(QColor("white"))
    painter = QPainter(combined)
    painter.drawImage(0, 0, pictures[0])
    painter.drawImage(500, 0, pictures[1])
    painter.end()
    assert combined.save(str(IMAGES / "result.png"))
    assert (IMAGES / "dialog.png").stat().st_size > 10_000 and (IMAGES / "result.png").stat().st_size > 10_000
    del mask
    dlg.close()
