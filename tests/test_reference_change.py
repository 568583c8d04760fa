"""`--model reference-change` (the reference scaled by the change the DMSP sees), the reference/DMSP
disagreement note of every model, and reference nodata holes (never zeros taken as unlit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import REPO

from nightlight_fusion_plugin.core.engine.models import available_models
from nightlight_fusion_plugin.core.engine.zoo import ZOO_DIR, load_manifest
from nightlight_fusion_plugin.core.errors import InputError
from nightlight_fusion_plugin.core.methods.reference_change import CORRELATION_NOTE_BELOW
from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.report.metrics import all_metrics

MODEL = "reference-change"
TAG_R = "NLF_REFERENCE_DMSP_CORRELATION"


def _read(path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(1), src.tags()


def _run(dmsp, viirs, out: Path, model: str = MODEL, **kwargs):
    return fuse(FuseRequest(model=model, dmsp=str(dmsp), viirs=str(viirs) if viirs else None, output=str(out), **kwargs))


def _copy_with(src_path, out: Path, edit) -> Path:
    """A copy of a raster with its values edited (float32, NaN nodata)."""
    with rasterio.open(src_path) as src:
        data, profile = src.read(1).astype("float32"), src.profile
    profile.update(dtype="float32", nodata=np.nan)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(edit(data), 1)
    return out


@pytest.fixture(scope="module")
def no_change(sample, tmp_path_factory) -> Path:
    """DMSP F15 2005 simulated from the 2015 reference with core's sensor model: no change at all."""
    out = tmp_path_factory.mktemp("nochange") / "dmsp_sim.tif"
    simulate_dmsp_raster(str(sample["reference"]), str(out), "F15", 2005)
    return out


def test_listed_as_traditional_never_default_and_by_the_cli():
    entry = {m.id: m for m in available_models()}[MODEL]
    assert entry.family == "traditional" and not entry.default and entry.zoo is None
    done = subprocess.run(
        [sys.executable, "-m", "nightlight_fusion_plugin", "models", "--json"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert MODEL in {m["id"] for m in json.loads(done.stdout)}


def test_sample_writes_a_tagged_geotiff_that_beats_persistence(sample, tmp_path):
    out = tmp_path / "fused.tif"
    result = _run(sample["dmsp"], sample["reference"], out)
    data, tags = _read(out)
    reference, _ = _read(sample["reference"])
    truth, _ = _read(sample["truth"])
    assert result.model == MODEL and tags["NLF_METHOD"] == MODEL and tags["NLF_MODEL_FAMILY"] == "traditional"
    assert "ratio clipped" in tags["NLF_REFERENCE_CHANGE"] and "F15 2005" in tags["NLF_INTERCALIBRATION"]
    assert tags["NLF_CALIBRATION"] and float(tags[TAG_R]) > 0.8
    assert data.shape == reference.shape and np.isfinite(data).all()
    # measured: 31.6 dB against the truth, persistence (the 2015 reference as the 2005 map) 27.3 dB
    assert all_metrics(data, truth)["psnr_log"] > all_metrics(reference, truth)["psnr_log"] + 2.0
    assert not any("disagrees" in note for note in result.notes)


def test_dmsp_equal_to_the_reference_simulated_gives_the_reference(sample, no_change, tmp_path):
    out = tmp_path / "fused.tif"
    _run(no_change, sample["reference"], out, satellite="F15", year=2005)
    data, _ = _read(out)
    reference, _ = _read(sample["reference"])
    with rasterio.open(no_change) as src:
        dn = src.read(1, out_shape=(src.height * 2, src.width * 2))[: data.shape[0], : data.shape[1]]
    inner = np.zeros(data.shape, bool)
    inner[20:-20, 20:-20] = True  # the borders saw no light beyond the reference's edge
    check = inner & (dn < 60) & (reference > 1.0)
    assert check.sum() > 1000
    relative = np.abs(data[check] - reference[check]) / reference[check]
    assert np.median(relative) < 0.03 and np.percentile(relative, 95) < 0.15


def test_dmsp_brighter_in_a_region_scales_the_output_up_there(sample, no_change, tmp_path):
    brighter = tmp_path / "dmsp_brighter.tif"
    with rasterio.open(no_change) as src:
        data, profile = src.read(1), src.profile
    boosted = data.astype(np.float32)
    boosted[:, : data.shape[1] // 2] = np.clip(boosted[:, : data.shape[1] // 2] * 1.5, 0, 63)
    with rasterio.open(brighter, "w", **{**profile, "dtype": "uint8", "nodata": 255}) as dst:
        dst.write(np.rint(boosted).astype(np.uint8), 1)
    base_out, bright_out = tmp_path / "same.tif", tmp_path / "bright.tif"
    _run(no_change, sample["reference"], base_out, satellite="F15", year=2005)
    _run(brighter, sample["reference"], bright_out, satellite="F15", year=2005)
    (same, same_tags), (bright, bright_tags) = _read(base_out), _read(bright_out)
    reference = _read(sample["reference"])[0]
    half = data.shape[1]  # the 30″ DMSP half-width in 15″ pixels
    left = np.zeros(same.shape, bool)
    left[20:-20, 20 : half - 30] = True
    right = np.zeros(same.shape, bool)
    right[20:-20, half + 30 : -20] = True
    unsaturated = (same < 0.9 * same.max()) & (reference > 1.0)
    gain_left = np.median(bright[left & unsaturated] / same[left & unsaturated])
    gain_right = np.median(bright[right & unsaturated] / same[right & unsaturated])
    # A brighter half also lifts the scene-wide level: the prior puts part of that on the sensor
    # (core/scene_gain.py) and scales the whole DMSP down by the tagged factor; the change stays on the left.
    scene_gain = float(bright_tags["NLF_DMSP_SCENE_GAIN"]) / float(same_tags["NLF_DMSP_SCENE_GAIN"])
    assert 0.85 < scene_gain < 1.0
    assert gain_left / gain_right > 1.3 and abs(gain_right - scene_gain) < 0.02


def test_without_a_reference_it_says_it_needs_one(sample, tmp_path):
    with pytest.raises(InputError, match="needs a VIIRS reference.*--viirs"):
        _run(sample["dmsp"], None, tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_two_runs_give_identical_pixels_and_tags(sample, tmp_path):
    a, b, c = tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "c.tif"
    _run(sample["dmsp"], sample["reference"], a)
    _run(sample["dmsp"], sample["reference"], b)
    _run(sample["dmsp"], sample["reference"], c, block_size=37)
    (da, ta), (db, tb), (dc, _) = _read(a), _read(b), _read(c)
    assert da.tobytes() == db.tobytes()
    for tags in (ta, tb):
        tags.pop("NLF_CREATED")
    assert ta == tb
    # other blocks read other margins: the FFT blur differs in the last bits, which can flip a simulated DN's
    # rounding (one 6-bit step) in a few pixels: measured at most 0.3 % there
    np.testing.assert_allclose(dc, da, rtol=1e-2, atol=1e-2)


def test_a_wrong_reference_gets_the_disagreement_note_and_tag(sample, tmp_path):
    flipped = _copy_with(sample["reference"], tmp_path / "flipped.tif", lambda d: d[::-1].copy())
    for model in ("baseline", MODEL):
        result = _run(sample["dmsp"], flipped, tmp_path / f"{model}.tif", model=model)
        r = float(_read(tmp_path / f"{model}.tif")[1][TAG_R])
        assert r < CORRELATION_NOTE_BELOW  # measured 0.31 (0.87 with the right reference)
        assert any("disagrees strongly" in note and "without the reference" in note for note in result.notes)
    result = _run(sample["dmsp"], None, tmp_path / "none.tif", model="baseline")
    assert TAG_R not in result.tags and not any("disagrees" in note for note in result.notes)


HOLE_MODELS = ["baseline", MODEL] + [m for m in ("unet-fp32",) if m in {z.id for z in load_manifest(ZOO_DIR)}]


@pytest.mark.parametrize("model", HOLE_MODELS)
def test_a_reference_hole_is_absent_reference_never_unlit(sample, tmp_path, model):
    reference = _read(sample["reference"])[0]
    lit = reference > 5.0
    rows, cols = np.nonzero(lit)
    r0, c0 = int(np.median(rows)), int(np.median(cols))
    hole = (slice(max(r0 - 20, 0), r0 + 20), slice(max(c0 - 20, 0), c0 + 20))

    def punch(d: np.ndarray) -> np.ndarray:
        d = d.copy()
        d[hole] = np.nan
        return d

    holed = _copy_with(sample["reference"], tmp_path / "holed.tif", punch)
    out = tmp_path / f"{model}.tif"
    _run(sample["dmsp"], holed, out, model=model)
    data = _read(out)[0]
    with rasterio.open(sample["dmsp"]) as src:
        dn = src.read(1, out_shape=(src.height * 2, src.width * 2))[: data.shape[0], : data.shape[1]]
    inside, dmsp_lit = data[hole], dn[hole] > 10
    assert dmsp_lit.sum() > 100
    assert np.isfinite(inside).all()
    assert np.median(inside[dmsp_lit]) > 1.0  # lit DMSP inside the hole: light, not "unlit" zeros
    if model == MODEL:  # inside a hole reference-change is the traditional method
        _run(sample["dmsp"], holed, tmp_path / "base.tif", model="baseline")
        np.testing.assert_allclose(inside, _read(tmp_path / "base.tif")[0][hole], rtol=1e-5, atol=1e-5)


@pytest.mark.real_data
def test_real_pairs_agree_and_a_shifted_reference_does_not(real_data, tmp_path):
    """Athens DMSP F18 2013 against Greece VIIRS 2017 (measured r 0.94–0.96 for every month); the same
    reference shifted by 0.5° east (0.11) gets the note. reference-change runs on the real pair."""
    dmsp = real_data / "athens" / "dmsp_F18_2013_stable_lights.tif"
    viirs = real_data / "greece" / "viirs_dnb_monthly_2017_06.tif"
    result = _run(dmsp, viirs, tmp_path / "athens.tif")
    assert float(result.tags[TAG_R]) > 0.9 and not any("disagrees" in n for n in result.notes)
    data = _read(tmp_path / "athens.tif")[0]
    assert np.isfinite(data).mean() > 0.9 and np.nanmax(data) > 50
    with rasterio.open(viirs) as src:
        values, profile = src.read(1), src.profile
    t = profile["transform"]
    profile["transform"] = rasterio.Affine(t.a, t.b, t.c + 0.5, t.d, t.e, t.f)
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(shifted, "w", **profile) as dst:
        dst.write(values, 1)
    result = _run(dmsp, shifted, tmp_path / "shifted_out.tif", model="baseline")
    assert float(result.tags[TAG_R]) < CORRELATION_NOTE_BELOW
    assert any("disagrees strongly" in n for n in result.notes)


def test_through_processing_with_the_model_parameter(qgis_processing, sample, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback
    from qgis_helpers import register_provider

    register_provider()
    out = tmp_path / "fused.tif"
    params = {"DMSP": str(sample["dmsp"]), "VIIRS": str(sample["reference"]), "MODEL": MODEL, "OUTPUT": str(out)}
    processing.run("nightlightfusion:fuse", params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    assert _read(out)[1]["NLF_METHOD"] == MODEL
    params = {"DMSP": str(sample["dmsp"]), "MODEL": MODEL, "OUTPUT": str(tmp_path / "none.tif")}
    with pytest.raises(QgsProcessingException, match="needs a VIIRS reference"):
        processing.run("nightlightfusion:fuse", params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
