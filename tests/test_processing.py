"""`nightlightfusion:*` through the real QGIS Processing framework (as the Toolbox, modeler and batch use it)."""

import sys

import numpy as np
import pytest
import rasterio
from conftest import write_raster
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
)
from qgis_helpers import register_provider


@pytest.fixture(scope="module")
def processing_run(qgis_processing):
    register_provider()
    import processing

    def run(algorithm, params):
        return processing.run(algorithm, params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())

    return run


def test_provider_lists_both_algorithms(processing_run):
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("nightlightfusion")
    assert {a.id() for a in provider.algorithms()} == {
        "nightlightfusion:fuse",
        "nightlightfusion:intercalibrate",
        "nightlightfusion:simulate_dmsp",
        "nightlightfusion:series",
    }
    fuse = registry.algorithmById("nightlightfusion:fuse")
    names = [p.name() for p in fuse.parameterDefinitions()]
    for expected in ("DMSP", "VIIRS", "EXTENT", "MODEL", "SEED", "OUTPUT", "MASK", "THREADS", "BATCH_SIZE", "REPORT"):
        assert expected in names
    assert fuse.parameterDefinition("VIIRS").flags() & fuse.parameterDefinition("VIIRS").FlagOptional


def test_fuse_from_file_paths(processing_run, sample, tmp_path):
    out = tmp_path / "fused.tif"
    result = processing_run(
        "nightlightfusion:fuse",
        {
            "DMSP": str(sample["dmsp"]),
            "VIIRS": str(sample["reference"]),
            "MODEL": "baseline",
            "SEED": 3,
            "OUTPUT": str(out),
        },
    )
    assert result["OUTPUT"] == str(out)
    layer = QgsRasterLayer(str(out), "fused")
    assert layer.isValid() and layer.crs().authid() == "EPSG:4326" and (layer.width(), layer.height()) == (240, 240)
    with rasterio.open(out) as src:
        assert src.tags()["NLF_SEED"] == "3"
        assert src.tags()["NLF_REFERENCE_GAP_YEARS"] == "10 (DMSP 2005, reference 2015)"  # from the file names


def test_fuse_reference_year_parameter_sets_the_gap(processing_run, sample, tmp_path):
    out = tmp_path / "fused.tif"
    params = {"DMSP": str(sample["dmsp"]), "VIIRS": str(sample["reference"]), "MODEL": "reference-change"}
    processing_run("nightlightfusion:fuse", {**params, "REFERENCE_YEAR": 2014, "OUTPUT": str(out)})
    with rasterio.open(out) as src:
        assert src.tags()["NLF_REFERENCE_GAP_YEARS"] == "9 (DMSP 2005, reference 2014)"


def test_fuse_from_project_layers_with_an_extent_in_another_crs(processing_run, sample, tmp_path):
    dmsp = QgsRasterLayer(str(sample["dmsp"]), "dmsp")
    viirs = QgsRasterLayer(str(sample["reference"]), "viirs")
    extent = QgsReferencedRectangle(
        QgsRectangle(27829.9, 27642.4, 55659.7, 55331.2), QgsCoordinateReferenceSystem("EPSG:3857")
    )  # ≈ 0.25°..0.5°
    out = tmp_path / "fused.tif"
    processing_run("nightlightfusion:fuse", {"DMSP": dmsp, "VIIRS": viirs, "EXTENT": extent, "OUTPUT": str(out)})
    with rasterio.open(out) as src:
        assert src.bounds.left == pytest.approx(0.25, abs=0.005) and src.bounds.right == pytest.approx(0.5, abs=0.005)


def test_intercalibrate(processing_run, sample, tmp_path):
    out = tmp_path / "dnc.tif"
    processing_run("nightlightfusion:intercalibrate", {"DMSP": str(sample["dmsp"]), "OUTPUT": str(out)})
    with rasterio.open(out) as src:
        assert src.read(1).max() <= 63 and src.tags()["NLF_METHOD"] == "intercalibrate"


@pytest.mark.parametrize(
    "case, message",
    [
        ("swapped", "0–63 DN"),
        ("no_overlap", "do not overlap"),
        ("multiband", "single-band"),
        ("extent_outside", "outside the inputs"),
        ("unwritable", "Cannot write"),
    ],
)
def test_bad_input_gives_a_clear_processing_error_and_no_output(processing_run, sample, tmp_path, case, message):
    params = {"DMSP": str(sample["dmsp"]), "VIIRS": str(sample["reference"]), "OUTPUT": str(tmp_path / "out.tif")}
    if case == "swapped":
        params["DMSP"], params["VIIRS"] = str(sample["reference"]), str(sample["reference"])
    elif case == "no_overlap":
        params["DMSP"] = str(write_raster(tmp_path / "far.tif", np.ones((10, 10), np.uint8), west=50, north=50))
    elif case == "multiband":
        params["DMSP"] = str(write_raster(tmp_path / "rgb.tif", np.ones((3, 10, 10), np.uint8)))
    elif case == "extent_outside":
        params["EXTENT"] = "40,41,40,41 [EPSG:4326]"
    elif case == "unwritable":
        params["OUTPUT"] = "/proc/nlf/out.tif"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(QgsProcessingException, match=message):
        processing_run("nightlightfusion:fuse", params)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_missing_rasterio_is_reported_with_install_instructions(processing_run, sample, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "rasterio" or name.startswith("rasterio.") or name.startswith("nightlight_fusion_plugin.core.pipeline.fuse"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rasterio", None)  # import rasterio -> ImportError
    with pytest.raises(QgsProcessingException, match="pip install rasterio"):
        processing_run("nightlightfusion:fuse", {"DMSP": str(sample["dmsp"]), "OUTPUT": str(tmp_path / "o.tif")})
    # the plugin itself still loads: provider and algorithms exist without rasterio
    from nightlight_fusion_plugin.processing.provider import NightlightFusionProvider

    provider = NightlightFusionProvider()
    provider.loadAlgorithms()
    assert len(provider.algorithms()) == 4


def test_fuse_with_a_zoo_model_speed_ensemble_uncertainty_device(processing_run, use_zoo, sample, tmp_path):
    import processing

    from nightlight_fusion_plugin.processing.fuse_algorithm import FuseAlgorithm

    out, spread = tmp_path / "fused.tif", tmp_path / "spread.tif"
    result = processing.run(
        FuseAlgorithm(),
        {
            "DMSP": str(sample["dmsp"]),
            "VIIRS": str(sample["reference"]),
            "MODEL": "diffusion-fp32",
            "SAMPLER": "ddim",
            "STEPS": 2,
            "ENSEMBLE": 2,
            "DEVICE": "cpu",
            "PRECISION": "fp32",
            "UNCERTAINTY": str(spread),
            "OUTPUT": str(out),
        },
        context=QgsProcessingContext(),
        feedback=QgsProcessingFeedback(),
    )
    assert result["DEVICE"] == "cpu" and "NFE 2" in result["SAMPLER"]
    assert result["PRECISION"] == "fp32 (asked for)"
    assert result["UNCERTAINTY"] == str(spread) and spread.exists()
    for model, precision in (("diffusion-fp32", "int8 (asked for)"), ("flow-matching-fp32", None)):  # the smoke zoo's int8
        params = {"DMSP": str(sample["dmsp"]), "MODEL": model, "STEPS": 1, "PRECISION": "int8", "OUTPUT": str(tmp_path / "i.tif")}
        params["SAMPLER"] = "flow_euler" if precision is None else "ddim"
        if precision is None:
            with pytest.raises(QgsProcessingException, match="has no int8 variant"):
                processing.run(FuseAlgorithm(), params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
        else:
            ran = processing.run(FuseAlgorithm(), params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
            assert ran["PRECISION"] == precision
    with rasterio.open(out) as src:
        assert src.tags()["NLF_ENSEMBLE"] == "2" and src.tags()["NLF_SAMPLER"] == "ddim"


def triangle_layer(crs="EPSG:4326"):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer(f"Polygon?crs={crs}", "mask", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((0.1 0.1, 0.5 0.1, 0.1 0.5, 0.1 0.1))"))
    layer.dataProvider().addFeatures([feature])
    layer.updateExtents()
    return layer


def test_fuse_mask_writes_only_pixels_inside_the_polygons(processing_run, sample, tmp_path):
    out = tmp_path / "masked.tif"
    processing_run(
        "nightlightfusion:fuse",
        {"DMSP": str(sample["dmsp"]), "VIIRS": str(sample["reference"]), "MASK": triangle_layer(), "OUTPUT": str(out)},
    )
    with rasterio.open(out) as src:
        # no EXTENT: the polygons' extent is the area
        assert src.bounds.left == pytest.approx(0.1, abs=0.005) and src.bounds.top == pytest.approx(0.5, abs=0.005)
        data = src.read(1)
        rows, cols = np.indices(data.shape)
        x, y = src.xy(rows, cols)
        x, y = np.asarray(x), np.asarray(y)
        inside = (x > 0.1) & (y > 0.1) & (x + y < 0.6)
        margin = src.res[0]
        assert np.isfinite(data[inside & (x + y < 0.6 - 2 * margin)]).all()
        assert np.isnan(data[~inside & (x + y > 0.6 + 2 * margin)]).all()
        assert "polygon" in src.tags()["NLF_MASK"]


def test_fuse_mask_in_another_crs_with_an_extent(processing_run, sample, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:3857", "mask", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(27829.9, 27642.4, 55659.7, 55331.2)))  # 0.25..0.5°
    layer.dataProvider().addFeatures([feature])
    out = tmp_path / "masked.tif"
    processing_run(
        "nightlightfusion:fuse",
        {"DMSP": str(sample["dmsp"]), "MASK": layer, "EXTENT": "0.2,0.6,0.2,0.6 [EPSG:4326]", "OUTPUT": str(out)},
    )
    with rasterio.open(out) as src:
        data = src.read(1)
        row, col = src.index(0.375, 0.375)
        assert np.isfinite(data[row, col])
        row, col = src.index(0.55, 0.55)
        assert np.isnan(data[row, col])


def test_fuse_report_and_qa(processing_run, sample, tmp_path):
    out, report = tmp_path / "fused.tif", tmp_path / "report.html"
    result = processing_run(
        "nightlightfusion:fuse",
        {"DMSP": str(sample["dmsp"]), "VIIRS": str(sample["reference"]), "OUTPUT": str(out), "REPORT": str(report)},
    )
    assert result["REPORT"] == str(report)
    text = report.read_text()
    from nightlight_fusion_plugin.core.engine.models import default_model

    default = default_model(with_reference=True).id  # MODEL left out: the recommendation for runs with a reference
    assert "data:image/png;base64," in text and "Pearson r" in text and default in text  # names the method that ran
    assert 0.5 < result["QA_PEARSON_R"] <= 1.0
    assert result["SECONDS"] > 0


def test_simulate_dmsp(processing_run, sample, tmp_path):
    out = tmp_path / "dmsp_like.tif"
    result = processing_run("nightlightfusion:simulate_dmsp", {"VIIRS": str(sample["reference"]), "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    with rasterio.open(out) as src:
        data = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 255 and src.tags()["NLF_METHOD"] == "simulate_dmsp"
        assert data[data != 255].max() <= 63 and data[data != 255].max() > 10
        assert src.res[0] == pytest.approx(1 / 120)


def test_simulate_dmsp_rejects_dmsp_input(processing_run, sample, tmp_path):
    with pytest.raises(QgsProcessingException, match="looks like DMSP"):
        processing_run("nightlightfusion:simulate_dmsp", {"VIIRS": str(sample["dmsp"]), "OUTPUT": str(tmp_path / "o.tif")})


def test_algorithms_link_the_help_page(processing_run):
    from pathlib import Path
    from urllib.parse import urlparse

    for name in ("fuse", "intercalibrate", "simulate_dmsp"):
        url = QgsApplication.processingRegistry().algorithmById(f"nightlightfusion:{name}").helpUrl()
        assert url.startswith("file://") and url.endswith(f"#{name}")
        assert Path(urlparse(url).path).is_file()


def test_fuse_normalizing_flow_temperature(processing_run, use_zoo, sample, tmp_path):
    """TEMPERATURE scales the flow's latent: at 0 the result does not depend on the seed, at 1 it does; the
    output records the temperature; out of range is a clear error."""
    import processing

    from nightlight_fusion_plugin.processing.fuse_algorithm import FuseAlgorithm

    def run(name, temperature, seed):
        out = tmp_path / f"{name}.tif"
        params = {"DMSP": str(sample["dmsp"]), "VIIRS": str(sample["reference"]), "MODEL": "normalizing-flow-fp32"}
        params.update({"TEMPERATURE": temperature, "SEED": seed, "DEVICE": "cpu", "OUTPUT": str(out)})
        processing.run(FuseAlgorithm(), params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
        with rasterio.open(out) as src:
            return src.read(1), src.tags()

    cold_a, tags = run("cold_a", 0.0, 0)
    cold_b, _ = run("cold_b", 0.0, 7)
    warm_a, warm_tags = run("warm_a", 1.0, 0)
    warm_b, _ = run("warm_b", 1.0, 7)
    assert tags["NLF_TEMPERATURE"] == "0" and warm_tags["NLF_TEMPERATURE"] == "1"
    np.testing.assert_array_equal(cold_a, cold_b)
    assert not np.allclose(warm_a, warm_b) and not np.allclose(cold_a, warm_a)
    from nightlight_fusion_plugin.core.engine.zoo import ZooModel
    from nightlight_fusion_plugin.core.errors import InputError
    from nightlight_fusion_plugin.core.methods.generative import sampling_plan

    flow = ZooModel("nf", "normalizing_flow", "nf.onnx", "0" * 64, "fp32")
    with pytest.raises(InputError, match="temperature must be between 0 and 2"):
        sampling_plan(flow, None, None, None, temperature=3.0)
