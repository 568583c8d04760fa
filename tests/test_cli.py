"""The headless CLI, as a user types it, on the bundled sample and on the real clips in ../shared."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from conftest import REPO


def cli(*args, check=True):
    done = subprocess.run(
        [sys.executable, "-m", "nightlight_fusion_plugin", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_models_lists_baseline_as_text_and_json():
    assert "baseline" in cli("models").stdout
    models = json.loads(cli("models", "--json").stdout)
    assert models[0]["id"] == "baseline"
    assert sum(m["default"] for m in models) == 1  # the zoo's recommended model, else the baseline
    assert models[0]["default"] is not any(m["default"] for m in models[1:])
    for m in models:
        assert {"id", "family", "precision", "variant_of", "default"} <= set(m)


def test_fuse_the_bundled_sample_and_compare(tmp_path):
    sample = REPO / "nightlight_fusion_plugin" / "sample_data"
    out = tmp_path / "fused.tif"
    cli(
        "fuse",
        "--dmsp",
        sample / "dmsp_F15_2005_sample.tif",
        "--viirs",
        sample / "viirs_2015_reference_sample.tif",
        "--output",
        out,
        "--extent",
        "0.1,0.1,0.9,0.9",
        "--seed",
        5,
    )
    with rasterio.open(out) as src:
        assert src.bounds.left == pytest.approx(0.1, abs=1 / 240) and src.tags()["NLF_SEED"] == "5"
    scores = cli("compare", out, sample / "viirs_2005_truth_sample.tif").stdout
    assert "psnr_log=" in scores and "r2=" in scores


def test_compare_says_when_copying_the_reference_wins(tmp_path):
    sample = REPO / "nightlight_fusion_plugin" / "sample_data"
    reference, truth = sample / "viirs_2015_reference_sample.tif", sample / "viirs_2005_truth_sample.tif"
    out = tmp_path / "baseline.tif"
    cli("fuse", "--dmsp", sample / "dmsp_F15_2005_sample.tif", "--viirs", reference, "--output", out, "--model", "baseline")
    text = cli("compare", out, truth, "--reference", reference).stdout
    lines = text.splitlines()
    fused, persistence = (float(line.split("psnr_log=")[1].split()[0]) for line in (lines[0], lines[2]))
    assert lines[1].startswith("persistence")
    # the traditional method loses to persistence on the sample: the note must say so, and only then
    assert fused < persistence and "note: the fused map scores" in text and "reference-change" in text
    assert "note:" not in cli("compare", truth, truth, "--reference", reference).stdout  # a perfect map: no note


def test_bundled_sample_is_what_the_generator_makes(tmp_path):
    cli("sample", "--out", tmp_path)
    for name in ("dmsp_F15_2005_sample.tif", "viirs_2015_reference_sample.tif", "viirs_2005_truth_sample.tif"):
        with (
            rasterio.open(tmp_path / name) as a,
            rasterio.open(REPO / "nightlight_fusion_plugin" / "sample_data" / name) as b,
        ):
            assert np.array_equal(a.read(), b.read(), equal_nan=True) and a.transform == b.transform


def test_errors_are_one_clear_line_and_exit_2(tmp_path):
    sample = REPO / "nightlight_fusion_plugin" / "sample_data"
    done = cli("fuse", "--dmsp", sample / "viirs_2015_reference_sample.tif", "--output", tmp_path / "o.tif", check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert not (tmp_path / "o.tif").exists()
    done = cli(
        "fuse",
        "--dmsp",
        sample / "dmsp_F15_2005_sample.tif",
        "--output",
        tmp_path / "o.tif",
        "--model",
        "nope",
        check=False,
    )
    assert done.returncode == 2 and "Unknown model 'nope'" in done.stderr


@pytest.mark.real_data
def test_sao_tome_real_dmsp_1992_with_real_viirs_2014(real_data, tmp_path):
    out = tmp_path / "sao_tome_1992.tif"
    viirs = real_data / "sao_tome" / "viirs_dnb_monthly_2014_01.tif"
    done = cli("fuse", "--dmsp", real_data / "sao_tome" / "dmsp_1992_stable_lights.tif", "--viirs", viirs, "--output", out)
    assert "F10 1992" in done.stderr  # satellite inferred from the year
    with rasterio.open(out) as src, rasterio.open(viirs) as ref:
        assert src.crs == ref.crs and src.res == pytest.approx(ref.res)
        data = src.read(1)
        # outside the country the DMSP clip is nodata: it stays nodata, never light
        assert np.isnan(data).any() and np.isfinite(data).any()
        assert np.nanmax(data) > 1.0


@pytest.mark.real_data
def test_athens_real_dmsp_alone_on_a_15_arcsec_grid(real_data, tmp_path):
    out = tmp_path / "athens_2013.tif"
    done = cli("fuse", "--dmsp", real_data / "athens" / "dmsp_F18_2013_stable_lights.tif", "--output", out)
    assert "F18 2012" in done.stderr  # documented fall-back for F18 2013
    with rasterio.open(out) as src, rasterio.open(real_data / "athens" / "dmsp_F18_2013_stable_lights.tif") as dmsp:
        assert src.res == pytest.approx((1 / 240, 1 / 240)) and src.crs.to_epsg() == 4326
        assert src.bounds.left == pytest.approx(dmsp.bounds.left, abs=1 / 240)
        assert src.bounds.top == pytest.approx(dmsp.bounds.top, abs=1 / 240)
        data = src.read(1)
    assert np.nanmax(data) > 20  # Athens' saturated core


def test_mask_and_run_report(tmp_path):
    sample = REPO / "nightlight_fusion_plugin" / "sample_data"
    mask = tmp_path / "triangle.geojson"
    mask.write_text('{"type": "Polygon", "coordinates": [[[0.2, 0.2], [0.8, 0.2], [0.5, 0.8], [0.2, 0.2]]]}')
    out, report = tmp_path / "fused.tif", tmp_path / "report.html"
    done = cli(
        "fuse",
        "--dmsp",
        sample / "dmsp_F15_2005_sample.tif",
        "--viirs",
        sample / "viirs_2015_reference_sample.tif",
        "--output",
        out,
        "--mask",
        mask,
        "--report",
        report,
    )
    assert "Pearson r" in done.stdout
    with rasterio.open(out) as src:
        data = src.read(1)
        row, col = src.index(0.5, 0.3)  # inside the triangle
        corner = src.index(0.75, 0.75)  # outside it, inside its bounding box
    assert np.isfinite(data[row, col]) and np.isnan(data[corner])
    text = report.read_text()
    assert "Nightlight Fusion run report" in text and "re-simulated" in text
