"""`series` (core/series.py, CLI, Processing): one map per year on one grid, temporal step, report, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from nightlight_fusion_plugin.cli import main
from nightlight_fusion_plugin.core.errors import FusionError
from nightlight_fusion_plugin.core.pipeline.series import SeriesRequest, fit_year_gains, local_trend, run_series
from nightlight_fusion_plugin.core.pipeline.temporal import dmsp_scene_change, gain_sigma, prior_gains, smooth_levels

SAMPLE = Path(__file__).resolve().parent.parent / "nightlight_fusion_plugin" / "sample_data"


@pytest.fixture
def years(tmp_path) -> dict[str, Path]:
    """The sample's DMSP as three satellite-years (two of them in 2005) and its reference named by year."""
    out = {}
    for name in ("F14_2003", "F15_2005", "F16_2005"):
        out[name] = tmp_path / f"{name}.tif"
        shutil.copy(SAMPLE / "dmsp_F15_2005_sample.tif", out[name])
    out["viirs"] = tmp_path / "viirs_2015.tif"
    shutil.copy(SAMPLE / "viirs_2015_reference_sample.tif", out["viirs"])
    return out


def test_local_trend_follows_a_line_and_ignores_one_off_year():
    t = np.arange(2000.0, 2008.0)
    line = 0.1 * (t - 2000)
    assert np.allclose(local_trend(t, line), line)
    bumped = line.copy()
    bumped[3] += 0.5
    assert np.allclose(local_trend(t, bumped)[3], line[3], atol=0.06)


def test_year_gains_cut_the_satellite_gain_error_and_real_viirs_years_anchor_them():
    rng = np.random.default_rng(1)
    years = 10
    t = np.arange(2004.0, 2004.0 + years)
    trend = np.cumsum(rng.normal(0.05, 0.03, years))  # growth with some real year-to-year change
    truth = rng.normal(2.0, 1.0, (5000, 1)) + trend + rng.normal(0, 0.05, (5000, years))
    gains = np.append(rng.normal(0, 0.1, years - 2), [0.0, 0.0])
    fixed = np.array([False] * (years - 2) + [True, True])
    fitted = fit_year_gains(truth + gains, t, fixed)
    assert np.all(fitted[fixed] == 0.0)
    assert np.sqrt(np.mean((fitted - gains) ** 2)) < 0.5 * np.sqrt(np.mean(gains**2))


def test_series_writes_bands_per_year_files_and_a_report(years, tmp_path):
    out = tmp_path / "out" / "series.tif"
    request = SeriesRequest(
        dmsp=[str(years[k]) for k in ("F14_2003", "F15_2005", "F16_2005")],
        viirs=[str(years["viirs"])],
        output=str(out),
        per_year_dir=str(tmp_path / "years"),
        model="baseline",
    )
    result = run_series(request)
    with rasterio.open(out) as src:
        assert src.count == 3 and list(src.descriptions) == ["2003", "2005", "2015"]
        stack = src.read()
    with rasterio.open(years["viirs"]) as src:
        assert np.array_equal(stack[2], src.read(1), equal_nan=True)  # the real year is the reference itself
    assert sorted(p.name for p in (tmp_path / "years").iterdir()) == [f"nightlights_{y}.tif" for y in (2003, 2005, 2015)]
    body = json.loads(out.with_suffix(".json").read_text())
    assert [r["to"] for r in body["year_to_year_ratios"]] == ["2005", "2015"]
    assert body["seam"]["last_dmsp"] == "2005" and body["seam"]["first_viirs"] == "2015"
    assert 0.0 <= body["trend_sign_disagreement"] <= 1.0
    assert any("2 satellites" in n for n in result.notes) and any("No DMSP for 2004" in n for n in result.notes)
    assert not list(out.parent.glob(".*"))  # no partial or work files left


def test_no_temporal_smoothing_keeps_gains_at_one(years, tmp_path):
    request = SeriesRequest(
        dmsp=[str(years["F14_2003"]), str(years["F15_2005"])],
        viirs=[str(years["viirs"])],
        output=str(tmp_path / "s.tif"),
        model="baseline",
        temporal_smoothing=False,
    )
    assert set(run_series(request).report["year_gains"].values()) == {1.0}


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(years=[2015, 2005]), "1992–2013"),
        (dict(years=[2005, 2005], satellites=["F15", "F15"]), "Two DMSP files for F15 2005"),
        (dict(years=[2005]), "one per file"),
        (dict(viirs_years=[2015, 2016]), "--viirs-years"),
    ],
)
def test_bad_input_is_explained_and_nothing_is_written(years, tmp_path, change, message):
    out = tmp_path / "bad" / "s.tif"
    request = SeriesRequest(dmsp=[str(years["F14_2003"]), str(years["F15_2005"])], viirs=[str(years["viirs"])], output=str(out))
    for key, value in change.items():
        setattr(request, key, value)
    with pytest.raises(FusionError, match=message):
        run_series(request)
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_existing_output_without_overwrite_via_the_cli(years, tmp_path, capsys):
    out = tmp_path / "s.tif"
    out.write_bytes(b"keep")
    argv = ["series", "--dmsp", str(years["F14_2003"]), str(years["F15_2005"]), "--viirs", str(years["viirs"])]
    assert main(argv + ["--output", str(out), "--model", "baseline", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep"
    assert main(argv + ["--output", str(out), "--model", "baseline", "--quiet", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert '"seam"' in printed and "series report" in printed


def test_dmsp_on_another_grid_is_warped_onto_the_reference_grid(years, tmp_path):
    from rasterio.warp import Resampling, reproject

    shifted = tmp_path / "F15_2005_3857.tif"
    with rasterio.open(years["F15_2005"]) as src:
        from rasterio.warp import calculate_default_transform

        transform, w, h = calculate_default_transform(src.crs, "EPSG:3857", src.width, src.height, *src.bounds)
        profile = {**src.profile, "crs": "EPSG:3857", "transform": transform, "width": w, "height": h}
        with rasterio.open(shifted, "w", **profile) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest)
    request = SeriesRequest(
        dmsp=[str(years["F14_2003"]), str(shifted)],
        viirs=[str(years["viirs"])],
        output=str(tmp_path / "m.tif"),
        model="baseline",
        extent=(0.2, 0.2, 0.8, 0.8),
        extent_crs="EPSG:4326",
    )
    result = run_series(request)
    assert any("warped onto the series grid" in n for n in result.notes)
    with rasterio.open(result.output) as src:
        assert src.crs.to_epsg() == 4326 and src.count == 3


def test_processing_series_algorithm(qgis_processing, years, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback
    from qgis_helpers import register_provider

    register_provider()
    import processing

    out = tmp_path / "p.tif"
    result = processing.run(
        "nightlightfusion:series",
        {
            "DMSP": [str(years["F14_2003"]), str(years["F15_2005"])],
            "VIIRS": [str(years["viirs"])],
            "MODEL": "baseline",
            "OUTPUT": str(out),
            "PER_YEAR_DIR": str(tmp_path / "py"),
        },
        context=QgsProcessingContext(),
        feedback=QgsProcessingFeedback(),
    )
    with rasterio.open(result["OUTPUT"]) as src:
        assert list(src.descriptions) == ["2003", "2005", "2015"]
    assert Path(result["REPORT"]).is_file() and len(list((tmp_path / "py").glob("*.tif"))) == 3


def test_a_failed_year_leaves_nothing_behind(years, tmp_path):
    from rasterio.windows import Window

    part = tmp_path / "F15_2005_part.tif"  # covers only the western half of the series area
    with rasterio.open(years["F15_2005"]) as src:
        profile = {**src.profile, "width": src.width // 2, "transform": src.transform}
        with rasterio.open(part, "w", **profile) as dst:
            dst.write(src.read(1, window=Window(0, 0, src.width // 2, src.height)), 1)
    out = tmp_path / "out" / "s.tif"
    request = SeriesRequest(
        dmsp=[str(years["F14_2003"]), str(part)], viirs=[str(years["viirs"])], output=str(out), model="baseline"
    )
    with pytest.raises(FusionError, match="covers only part of the series area"):
        run_series(request)
    assert not list(out.parent.iterdir())


def test_series_on_a_dask_worker_equals_the_in_process_series(years, tmp_path):
    pytest.importorskip("dask.distributed")
    from nightlight_fusion_plugin.core.pipeline.distributed import ClusterOptions

    def series(name, cluster):
        request = SeriesRequest(
            dmsp=[str(years["F14_2003"]), str(years["F15_2005"])], viirs=[str(years["viirs"])], output=str(tmp_path / name)
        )
        request.model = "baseline"
        run_series(request, cluster)
        with rasterio.open(tmp_path / name) as src:
            return src.read()

    assert np.array_equal(series("a.tif", None), series("b.tif", ClusterOptions(workers=1)), equal_nan=True)


def test_per_year_layers_get_their_year_as_a_fixed_temporal_range(qgis_processing, years):
    from qgis.core import QgsRasterLayer, QgsRasterLayerTemporalProperties

    from nightlight_fusion_plugin.processing.series_algorithm import _YearRange

    layer = QgsRasterLayer(str(years["F15_2005"]), "2005")
    _YearRange(2005).postProcessLayer(layer, None, None)
    props = layer.temporalProperties()
    assert props.isActive() and props.mode() == QgsRasterLayerTemporalProperties.ModeFixedTemporalRange
    span = props.fixedTemporalRange()
    assert (span.begin().date().year(), span.end().date().year(), span.end().date().month()) == (2005, 2005, 12)


def _corrected(fit_gains: np.ndarray, levels: np.ndarray) -> np.ndarray:
    return levels - fit_gains


def test_prior_fit_takes_out_a_one_year_gain_jump_and_keeps_a_step_at_the_seam():
    t = np.arange(2000.0, 2013.0)
    viirs = t >= 2010
    truth = np.where(viirs, -0.3, 0.0)  # the light fell by 26 % when VIIRS took over (a crisis, not a gain)
    gain = np.where(t == 2004, 0.25, 0.0)  # one satellite-year reads 28 % too bright
    levels = truth + gain
    fitted = prior_gains(t, levels, levels, viirs)[0]
    assert np.all(fitted[viirs] == 0.0)
    assert fitted[4] > 0.5 * 0.25  # most of the jump is taken out as gain
    corrected = _corrected(fitted, levels)
    assert corrected[10] - corrected[9] < 0.5 * -0.3  # most of the seam step stays in the series
    old = fit_year_gains(np.tile(levels, (50, 1)), t, viirs)  # the local-trend fit on the same levels
    old_step = _corrected(old, levels)[10] - _corrected(old, levels)[9]
    assert corrected[10] - corrected[9] < old_step  # keeps more of it than the local-trend fit


def test_prior_fit_cuts_random_satellite_gains_on_a_growing_scene():
    rng = np.random.default_rng(4)
    t = np.arange(2004.0, 2017.0)
    viirs = t >= 2014
    truth = 0.05 * (t - 2004) + np.cumsum(rng.normal(0, 0.02, t.size))
    gain = np.where(viirs, 0.0, rng.normal(0.0, gain_sigma(), t.size))
    fitted, tau = prior_gains(t, truth + gain, truth + gain, viirs)
    assert tau < gain_sigma()  # the REML τ sees a smooth scene, not the gains, as the real change
    rms = lambda v: np.sqrt(np.mean(v[~viirs] ** 2))  # noqa: E731
    assert rms(fitted - gain) < 0.5 * rms(gain)


def test_smooth_levels_without_anchors_or_with_few_years():
    levels, tau = smooth_levels(np.array([2000.0, 2001.0]), np.array([1.0, 1.2]), np.array([0.1, 0.1]))
    assert tau == gain_sigma() and np.all(np.isfinite(levels))
    assert levels[0] < levels[1]  # two noisy years: pulled together, order kept


def test_dmsp_scene_change_recovers_a_whole_scene_gain(tmp_path):
    from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster
    from nightlight_fusion_plugin.core.raster.grids import inspect_raster, output_grid
    from nightlight_fusion_plugin.core.sensor.intercalibration import intercalibration_for

    reference = SAMPLE / "viirs_2015_reference_sample.tif"
    with rasterio.open(reference) as src:
        profile, data = src.profile, src.read(1)
    for factor in (0.7, 1.0, 1.4):
        scaled = tmp_path / "scaled.tif"
        with rasterio.open(scaled, "w", **profile) as dst:
            dst.write(data * factor, 1)
        simulate_dmsp_raster(str(scaled), str(tmp_path / "d.tif"), "F16", 2008, overwrite=True)
        dmsp, viirs = inspect_raster(tmp_path / "d.tif", "DMSP"), inspect_raster(reference, "VIIRS")
        change = dmsp_scene_change(dmsp, viirs, output_grid(dmsp, viirs, None, None), intercalibration_for("F16", 2008))
        assert change == pytest.approx(np.log(factor), abs=0.02)


def test_temporal_fits_are_switchable_and_reported(years, tmp_path):
    def run(name, **options):
        request = SeriesRequest(
            dmsp=[str(years[k]) for k in ("F14_2003", "F15_2005", "F16_2005")], viirs=[str(years["viirs"])],
            output=str(tmp_path / f"{name}.tif"), model="baseline", **options,
        )  # fmt: skip
        report = run_series(request).report
        with rasterio.open(tmp_path / f"{name}.tif") as src:
            return src.read(), report

    off, off_report = run("off", temporal_smoothing=False)
    for fit in ("prior", "local-trend"):
        on, report = run(fit, temporal_fit=fit)
        assert report["temporal_fit"] == fit and report["year_gains"]["2015"] == 1.0
        gains = np.array(list(report["year_gains"].values()), np.float32)
        assert np.allclose(on, off / gains[:, None, None], rtol=1e-5, equal_nan=True)  # one factor per band, nothing else
    assert report["gain_prior_sigma"] is None and off_report["temporal_fit"] is None
    assert run("p2", temporal_fit="prior")[1]["gain_prior_sigma"] == pytest.approx(gain_sigma(), abs=1e-4)
    with pytest.raises(FusionError, match="Unknown temporal fit"):
        run("bad", temporal_fit="kalman")


def test_local_trend_sample_skips_pixels_that_are_nodata_in_some_year():
    from nightlight_fusion_plugin.core.pipeline.temporal import lit_log_sample

    block = np.full((3, 2, 2), 5.0, np.float32)
    block[1, 0, 0] = np.nan  # nodata in the second year only
    block[2, 1, 1] = 0.1  # dark in the third year
    sample = lit_log_sample([block], 3, 4, lit=0.5)
    assert sample.shape == (2, 3) and np.isfinite(sample).all()
