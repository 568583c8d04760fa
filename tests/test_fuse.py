import numpy as np
import pytest
import rasterio
from conftest import write_raster

from nightlight_fusion_plugin.core.errors import CancelledError, InputError, OutputError
from nightlight_fusion_plugin.core.pipeline.calibrate import intercalibrate
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.report.metrics import all_metrics


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.tags(), src


def test_fuse_writes_a_georeferenced_tiled_compressed_radiance_geotiff(tmp_path, sample):
    out = tmp_path / "fused.tif"
    result = fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(out)))
    with rasterio.open(out) as src, rasterio.open(sample["reference"]) as ref:
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.profile["tiled"] and src.profile["compress"] == "deflate"
        assert src.overviews(1), "overviews expected"
        assert src.crs == ref.crs and src.transform.almost_equals(ref.transform) and src.shape == ref.shape
        assert src.units[0] == "nW/cm2/sr"
        tags = src.tags()
        data = src.read(1)
    assert tags["NLF_METHOD"] == "baseline"
    assert tags["NLF_DMSP"].endswith("dmsp_F15_2005_sample.tif")
    assert "F15 2005" in tags["NLF_INTERCALIBRATION"]
    assert np.isfinite(data).all() and data.max() > 10
    assert result.model == "baseline" and not list(tmp_path.glob(".*partial*"))


def test_baseline_beats_raw_dn_and_correlates_with_truth(tmp_path, sample):
    out = tmp_path / "fused.tif"
    fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(out)))
    fused, _, _, _ = _read(out)
    truth, _, _, _ = _read(sample["truth"])
    scores = all_metrics(fused, truth)
    assert scores["r2"] > 0.5
    assert abs(scores["sum_of_lights_error"]) < 1.0


def test_without_reference_the_fixed_curve_and_a_15_arcsec_grid(tmp_path, sample):
    out = tmp_path / "fused.tif"
    result = fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), output=str(out)))
    assert any("fixed" in note for note in result.notes)
    with rasterio.open(out) as src:
        assert src.res == pytest.approx((1 / 240, 1 / 240)) and src.crs.to_epsg() == 4326
        # covers the DMSP (0–1°) to within one pixel, on the VIIRS product lattice
        assert src.bounds == pytest.approx((0, 0, 1, 1), abs=1 / 240 + 1e-9)
        assert src.shape == (241, 241)


def test_block_size_does_not_change_the_result(tmp_path, sample):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(a), block_size=512))
    fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(b), block_size=37))
    assert np.array_equal(_read(a)[0], _read(b)[0], equal_nan=True)


def test_nodata_regions_propagate_as_nodata_never_as_light(tmp_path, sample):
    with rasterio.open(sample["dmsp"]) as src:
        dn = src.read(1).astype(np.float32)
    dn[:30, :] = np.nan
    holes = write_raster(tmp_path / "dmsp_F15_2005_holes.tif", dn, nodata=np.nan)
    out = tmp_path / "fused.tif"
    fuse(FuseRequest(dmsp=str(holes), viirs=str(sample["reference"]), output=str(out)))
    data = _read(out)[0]
    assert np.isnan(data[:58]).all()
    assert np.isfinite(data[62:]).all()


def test_extent_restricts_the_area(tmp_path, sample):
    out = tmp_path / "fused.tif"
    fuse(
        FuseRequest(
            dmsp=str(sample["dmsp"]),
            viirs=str(sample["reference"]),
            output=str(out),
            extent=(0.25, 0.25, 0.5, 0.75),
            extent_crs="EPSG:4326",
        )
    )
    with rasterio.open(out) as src:
        assert src.bounds == pytest.approx((0.25, 0.25, 0.5, 0.75))


def test_viirs_passed_as_dmsp_is_refused_and_nothing_written(tmp_path, sample):
    out = tmp_path / "fused.tif"
    with pytest.raises(InputError, match="0–63 DN.*VIIRS"):
        fuse(FuseRequest(dmsp=str(sample["reference"]), viirs=str(sample["reference"]), output=str(out)))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_no_overlap_is_refused(tmp_path, sample):
    far = write_raster(tmp_path / "far.tif", np.ones((10, 10), np.uint8), west=50, north=50)
    with pytest.raises(InputError, match="do not overlap"):
        fuse(FuseRequest(dmsp=str(far), viirs=str(sample["reference"]), output=str(tmp_path / "o.tif")))
    assert not (tmp_path / "o.tif").exists()


def test_existing_output_is_kept_unless_overwrite(tmp_path, sample):
    out = tmp_path / "fused.tif"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), output=str(out)))
    assert out.read_bytes() == b"precious"
    fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), output=str(out), overwrite=True))
    assert out.read_bytes() != b"precious"


def test_output_equal_to_an_input_is_refused(tmp_path, sample):
    before = sample["dmsp"].read_bytes()
    with pytest.raises(OutputError, match="one of the inputs"):
        fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), output=str(sample["dmsp"]), overwrite=True))
    assert sample["dmsp"].read_bytes() == before


@pytest.mark.parametrize("bad", ["/proc/nlf/out.tif", "{tmp}/a_file/out.tif", "{tmp}/out.png"])
def test_unwritable_output_paths_are_explained(tmp_path, sample, bad):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError):
        fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), output=bad.format(tmp=tmp_path)))


def test_cancel_leaves_no_output(tmp_path, sample):
    out = tmp_path / "fused.tif"
    calls = []

    def cancel_after_two_checks():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(CancelledError):
        fuse(
            FuseRequest(
                model="baseline", dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(out), block_size=40
            ),
            is_cancelled=cancel_after_two_checks,
        )
    assert not out.exists() and not list(tmp_path.iterdir())


def test_intercalibrate_keeps_the_dmsp_grid(tmp_path, sample):
    out = tmp_path / "dnc.tif"
    intercalibrate(str(sample["dmsp"]), str(out))
    with rasterio.open(out) as src, rasterio.open(sample["dmsp"]) as dmsp:
        assert src.shape == dmsp.shape and src.transform == dmsp.transform
        dn, dnc = dmsp.read(1).astype(float), src.read(1)
    lit = dn > 0
    assert np.allclose(dnc[lit], np.clip(0.6367 + 1.2838 * dn[lit] - 0.0041 * dn[lit] ** 2, 0, 63), atol=1e-3)
    assert (dnc[~lit] == 0).all()


def test_negative_viirs_radiance_is_valid_background_not_nodata(tmp_path, sample):
    with rasterio.open(sample["reference"]) as src:
        reference, profile = src.read(1), src.profile
    reference = reference - 0.4  # a darker, partly negative background, as VIIRS composites have
    shifted = tmp_path / "viirs_negative.tif"
    with rasterio.open(shifted, "w", **profile) as dst:
        dst.write(reference, 1)
    out = tmp_path / "fused.tif"
    fuse(FuseRequest(model="baseline", dmsp=str(sample["dmsp"]), viirs=str(shifted), output=str(out)))
    with rasterio.open(out) as src, rasterio.open(sample["dmsp"]) as dmsp:
        fused = src.read(1)
        dark = np.kron(dmsp.read(1) == 0, np.ones((2, 2), bool))  # 30″ unlit pixels on the 15″ grid
    assert np.isfinite(fused).all()
    assert np.median(fused[dark]) < 0  # the negative background level was learnt, not masked away
