import numpy as np
import pytest
import rasterio
from conftest import write_raster
from rasterio.warp import reproject, transform_bounds

from nightlight_fusion_plugin.core.errors import InputError
from nightlight_fusion_plugin.core.raster.grids import AlignedReader, inspect_raster, output_grid


def test_output_grid_is_the_viirs_grid_cropped_to_the_overlap(tmp_path, sample):
    dmsp = write_raster(tmp_path / "dmsp.tif", np.ones((60, 60), np.uint8), west=0.5, north=0.8)  # 0.5° square
    grid = output_grid(inspect_raster(dmsp, "DMSP"), inspect_raster(sample["reference"], "VIIRS"))
    with rasterio.open(sample["reference"]) as v:
        assert grid.crs == v.crs and grid.pixel_size == pytest.approx((v.res[0], v.res[1]))
        # pixel corners on the VIIRS lattice
        col = (grid.transform.c - v.transform.c) / v.res[0]
        assert col == pytest.approx(round(col), abs=1e-6)
    assert (grid.width, grid.height) == (120, 120)
    assert grid.bounds == pytest.approx((0.5, 0.3, 1.0, 0.8))


def test_without_viirs_a_15_arcsec_wgs84_grid_snapped_to_the_global_lattice(tmp_path):
    dmsp = write_raster(tmp_path / "dmsp.tif", np.ones((10, 10), np.uint8), west=23.0041666, north=38.0)
    grid = output_grid(inspect_raster(dmsp, "DMSP"))
    assert grid.crs.to_epsg() == 4326 and grid.pixel_size == pytest.approx((1 / 240, 1 / 240))
    # on the VIIRS product lattice, whose pixel corners are half a pixel off the whole-degree lines
    assert ((grid.transform.c + 180) * 240) % 1 == pytest.approx(0.5, abs=1e-6)
    assert ((grid.transform.f - 90) * 240) % 1 == pytest.approx(0.5, abs=1e-6)


def test_extent_in_another_crs_is_transformed(tmp_path, sample):
    dmsp = inspect_raster(sample["dmsp"], "DMSP")
    viirs = inspect_raster(sample["reference"], "VIIRS")
    extent = transform_bounds("EPSG:4326", "EPSG:3857", 0.25, 0.25, 0.75, 0.75)  # in Web Mercator metres
    grid = output_grid(dmsp, viirs, extent, "EPSG:3857")
    assert grid.bounds == pytest.approx((0.25, 0.25, 0.75, 0.75), abs=1e-6)


def test_dmsp_in_another_crs_is_reprojected_onto_the_viirs_grid(tmp_path, sample):
    with rasterio.open(sample["dmsp"]) as src:
        data, transform, crs = src.read(1).astype(np.float32), src.transform, src.crs
    merc = np.zeros((150, 150), np.float32)
    merc_transform = rasterio.transform.from_origin(-1000.0, 112000.0, 760.0, 760.0)
    reproject(
        data,
        merc,
        src_transform=transform,
        src_crs=crs,
        dst_transform=merc_transform,
        dst_crs="EPSG:3857",
        resampling=rasterio.enums.Resampling.bilinear,
        dst_nodata=np.nan,
    )
    dmsp_merc = write_raster(tmp_path / "dmsp_3857.tif", merc, transform=merc_transform, crs="EPSG:3857", nodata=np.nan)
    viirs = inspect_raster(sample["reference"], "VIIRS")
    grid = output_grid(inspect_raster(dmsp_merc, "DMSP"), viirs)
    window = next(grid.blocks(1024))
    with (
        AlignedReader(inspect_raster(dmsp_merc, "DMSP"), grid) as a,
        AlignedReader(inspect_raster(sample["dmsp"], "DMSP"), grid) as b,
    ):
        via_mercator, direct = a.read(window), b.read(window)
    ok = np.isfinite(via_mercator) & np.isfinite(direct)
    assert ok.mean() > 0.9
    assert np.corrcoef(via_mercator[ok], direct[ok])[0, 1] > 0.97


def test_nodata_and_nan_stay_nodata_when_aligned(tmp_path, sample):
    data = np.full((120, 120), 10.0, np.float32)
    data[:20] = -3.4028234663852886e38  # declared nodata (like the São Tomé clip)
    data[50:60, 50:60] = np.nan
    path = write_raster(tmp_path / "holes.tif", data, nodata=-3.4028234663852886e38)
    info = inspect_raster(path, "DMSP")
    grid = output_grid(info, inspect_raster(sample["reference"], "VIIRS"))
    with AlignedReader(info, grid) as reader:
        values = reader.read(next(grid.blocks(1024)))
    assert np.isnan(values[:38]).all()
    assert np.isnan(values[102:118, 102:118]).all()
    assert np.nanmax(values) == pytest.approx(10.0) and np.nanmin(values) == pytest.approx(10.0)


def test_no_overlap_multiband_and_ungeoreferenced_inputs_are_explained(tmp_path, sample):
    far = write_raster(tmp_path / "far.tif", np.ones((10, 10), np.uint8), west=50, north=50)
    with pytest.raises(InputError, match="do not overlap"):
        output_grid(inspect_raster(far, "DMSP"), inspect_raster(sample["reference"], "VIIRS"))
    rgb = write_raster(tmp_path / "rgb.tif", np.ones((3, 10, 10), np.uint8))
    with pytest.raises(InputError, match="3 bands.*single-band"):
        inspect_raster(rgb, "DMSP")
    with pytest.raises(InputError, match="outside the inputs"):
        output_grid(inspect_raster(sample["dmsp"], "DMSP"), extent=(10, 10, 11, 11), extent_crs="EPSG:4326")
    with pytest.raises(InputError, match="not found"):
        inspect_raster(tmp_path / "missing.tif", "VIIRS")


def test_a_plain_warp_marks_every_pixel_the_mask_marks(tmp_path, sample):
    """AlignedReader reads the warped band alone, not with masked=True (which warps each window a second time for
    the mask): the VRT's NaN nodata already covers source nodata, a per-dataset mask and the area outside the
    footprint, in the same CRS and through a reprojection."""
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin
    from rasterio.vrt import WarpedVRT

    dn = (np.arange(60 * 60).reshape(60, 60) % 63).astype(np.uint8)
    masked = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        profile = dict(driver="GTiff", width=60, height=60, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=from_origin(0.5, 0.8, 1 / 120, 1 / 120))  # fmt: skip
        with rasterio.open(masked, "w", **profile) as dst:
            dst.write(dn, 1)
            mask = np.full((60, 60), 255, np.uint8)
            mask[10:20, 5:40] = 0
            dst.write_mask(mask)
    nodata = write_raster(tmp_path / "nodata.tif", np.where(dn > 50, 255, dn).astype(np.uint8), nodata=255,
                          west=0.45, north=0.85)  # fmt: skip
    viirs = inspect_raster(sample["reference"], "VIIRS")
    for path in (masked, nodata):
        info = inspect_raster(path, "DMSP")
        grid = output_grid(info, viirs)
        grid = type(grid)("EPSG:3857", *_mercator(grid)) if path == nodata else grid
        window = next(grid.blocks(4096))
        with AlignedReader(info, grid, Resampling.bilinear) as reader:
            values = reader.read(window)
        with rasterio.open(path) as src, WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                                   height=grid.height, resampling=Resampling.bilinear,
                                                   src_nodata=src.nodata, nodata=np.nan, dtype="float32") as vrt:  # fmt: skip
            expected = vrt.read(1, window=window, masked=True).filled(np.nan)
        assert 0 < np.isnan(values).sum() < values.size
        np.testing.assert_array_equal(values, expected)


def _mercator(grid):
    from rasterio.warp import calculate_default_transform

    transform, width, height = calculate_default_transform(grid.crs, "EPSG:3857", grid.width, grid.height, *grid.bounds)
    return transform, width + 7, height + 5  # wider than the raster: some pixels fall outside its footprint
