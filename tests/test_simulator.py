"""The training simulator: scenes, pairs, CLI, and the calibration against real Athens/Greece data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from conftest import REPO, write_raster

from training.simulate.pairs import make_pair
from training.simulate.scenes import plan_scene, render


def simulate_cli(*args, check=True):
    done = subprocess.run(
        [sys.executable, "-m", "training.simulate", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_scene_changes_between_years_the_way_real_years_do():
    plan = plan_scene(4, 128, base_year=2000)
    early, _ = render(plan, 2000)
    late, _ = render(plan, 2020)
    assert early.shape == (128, 128) and (early >= 0).all()
    assert not np.allclose(early, late)
    assert np.corrcoef(early.ravel(), late.ravel())[0, 1] > 0.5  # same landscape, changed
    assert (early[plan.water] == 0).all() or plan.flares  # water is dark (but for flares)


def test_settlement_sizes_follow_a_rank_size_law():
    plan = plan_scene(11, 256, base_year=2000)
    sizes = np.array(sorted((t.population for t in plan.settlements), reverse=True))
    assert len(sizes) >= 5
    ranks = np.arange(1, len(sizes) + 1)
    slope = np.polyfit(np.log(ranks), np.log(sizes), 1)[0]
    assert -1.3 < slope < -0.7


def test_make_pair_is_aligned_and_deterministic():
    a, b = make_pair(3, 64), make_pair(3, 64)
    assert a.dmsp_dn.shape == (32, 32) and a.viirs_truth.shape == (64, 64) and a.viirs_reference.shape == (64, 64)
    assert a.dmsp_dn.dtype == np.uint8 and a.dmsp_dn.max() <= 63
    assert np.array_equal(a.dmsp_dn, b.dmsp_dn) and np.array_equal(a.viirs_truth, b.viirs_truth)
    assert 1992 <= a.year <= 2013 and a.reference_year > a.year
    assert not np.array_equal(make_pair(4, 64).viirs_truth, a.viirs_truth)


def test_pairs_command_writes_geotiffs_and_a_manifest(tmp_path):
    simulate_cli("pairs", "--out", tmp_path, "--count", 2, "--size", 64, "--seed", 5)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["count"] == 2 and len(manifest["scenes"]) == 2
    scene = manifest["scenes"][0]
    with (
        rasterio.open(tmp_path / scene["files"]["dmsp"]) as d,
        rasterio.open(tmp_path / scene["files"]["viirs_truth"]) as v,
    ):
        assert d.res == pytest.approx((1 / 120, 1 / 120)) and v.res == pytest.approx((1 / 240, 1 / 240))
        assert d.bounds == pytest.approx(v.bounds)  # aligned
    first = (tmp_path / scene["files"]["viirs_truth"]).read_bytes()
    simulate_cli("pairs", "--out", tmp_path / "again", "--count", 1, "--size", 64, "--seed", 5)
    assert (tmp_path / "again" / scene["files"]["viirs_truth"]).read_bytes() == first  # byte-identical


@pytest.mark.real_data
def test_dmsp_command_on_real_viirs_covers_the_input_on_a_30_arcsec_grid(real_data, tmp_path):
    viirs = real_data / "sao_tome" / "viirs_dnb_monthly_2014_01.tif"
    out = tmp_path / "dmsp_like.tif"
    simulate_cli("dmsp", "--viirs", viirs, "--output", out, "--satellite", "F18", "--year", "2013")
    with rasterio.open(out) as d, rasterio.open(viirs) as v:
        assert d.crs.to_epsg() == 4326 and d.res == pytest.approx((1 / 120, 1 / 120))
        assert d.bounds.left <= v.bounds.left and d.bounds.right >= v.bounds.right
        assert d.bounds.bottom <= v.bounds.bottom and d.bounds.top >= v.bounds.top
        dn = d.read(1)
        assert d.nodata == 255 and (dn == 255).any()  # outside the country stays nodata
        assert dn[dn != 255].max() > 0
    again = tmp_path / "again.tif"
    simulate_cli("dmsp", "--viirs", viirs, "--output", again)
    with rasterio.open(out) as a, rasterio.open(again) as b:
        assert np.array_equal(a.read(), b.read())  # deterministic


@pytest.mark.parametrize("case", ["dmsp_as_viirs", "all_nodata", "multiband", "not_radiance"])
def test_dmsp_command_bad_input_writes_nothing(tmp_path, sample, case):
    if case == "dmsp_as_viirs":
        source = sample["dmsp"]
    elif case == "all_nodata":
        source = write_raster(tmp_path / "empty.tif", np.full((20, 20), np.nan, np.float32), res=1 / 240, nodata=np.nan)
    elif case == "multiband":
        source = write_raster(tmp_path / "rgb.tif", np.ones((3, 20, 20), np.float32), res=1 / 240)
    else:
        source = write_raster(tmp_path / "dem.tif", np.full((20, 20), 1e9, np.float32), res=1 / 240)
    out = tmp_path / "out.tif"
    done = simulate_cli("dmsp", "--viirs", source, "--output", out, check=False)
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    assert not out.exists()


@pytest.mark.real_data
def test_calibrated_simulator_matches_real_athens_dmsp(real_data):
    from nightlight_fusion_plugin.core.sensor.sensors import DmspParameters
    from training.simulate.calibrate import agreement, load_scene, simulate

    scene = load_scene(real_data)
    scores = agreement(simulate(scene, DmspParameters.calibrated()), scene.real_dn)
    assert scores["pearson_r"] >= 0.92
    assert abs(scores["lit_fraction_sim"] / scores["lit_fraction_real"] - 1) <= 0.10
    assert 0.5 <= scores["saturated_fraction_sim"] / scores["saturated_fraction_real"] <= 2.0
    before = agreement(simulate(scene, DmspParameters(satellite="F18", year=2013)), scene.real_dn)
    assert scores["pearson_r"] > before["pearson_r"]  # the fit improved on the literature defaults
