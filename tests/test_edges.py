"""Tile models near a raster's edges: beyond the edge the inputs are mirrored (grids.MirroredReader), so a small
clip is fused as if it were cut from a larger raster that continues the same way, not from a wall of darkness."""

from __future__ import annotations

import numpy as np
import rasterio
from conftest import write_raster
from rasterio.windows import Window

from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.raster.grids import (
    AlignedReader,
    Grid,
    MirroredReader,
    footprint,
    inspect_raster,
    mirror_indices,
)

RES = 1 / 240  # 15″


def test_mirror_indices_reflect_symmetrically_at_any_distance():
    inside = range(2, 5)  # 2, 3, 4
    index = np.arange(-5, 12)
    expected = np.pad(np.arange(2, 5), (7, 7), mode="symmetric")
    assert mirror_indices(index, inside).tolist() == expected.tolist()
    assert mirror_indices(np.arange(3), range(0, 0)).tolist() == [0, 1, 2]  # nothing inside: unchanged


def test_mirrored_reader_is_the_raster_inside_and_its_mirror_outside(tmp_path):
    data = np.arange(7 * 5, dtype=np.float32).reshape(7, 5)
    path = write_raster(tmp_path / "r.tif", data, west=10.0, north=20.0, res=RES)
    pad = 4
    grid = Grid(
        rasterio.crs.CRS.from_epsg(4326),
        rasterio.transform.from_origin(10.0 - pad * RES, 20.0 + pad * RES, RES, RES),
        5 + 2 * pad,
        7 + 2 * pad,
    )
    info = inspect_raster(path, "raster")
    assert footprint(info, grid) == (range(pad, pad + 7), range(pad, pad + 5))
    with AlignedReader(info, grid) as plain:
        mirrored = MirroredReader(plain)
        whole = mirrored.read(Window(0, 0, grid.width, grid.height))
        assert np.array_equal(whole, np.pad(data, pad, mode="symmetric"))
        inner = Window(pad, pad, 5, 7)
        assert np.array_equal(mirrored.read(inner), plain.read(inner))
        assert np.isnan(plain.read(Window(0, 0, 2, 2))).all()  # what a tile model saw before


def test_a_clip_fuses_like_the_same_area_of_its_mirror_extended_raster(use_zoo, tmp_path):
    model = "unet-fp32"
    rng = np.random.default_rng(3)
    height, width, pad = 40, 30, 96  # smaller than one 64-px tile; the pad covers every tile's context
    reference = rng.gamma(2.0, 8.0, (height, width)).astype(np.float32)
    dmsp = np.clip(reference * 1.5 + rng.normal(0, 2, reference.shape), 0, 63).astype(np.uint8)
    west, north = 72.8, 19.1
    small = {
        "dmsp": write_raster(tmp_path / "dmsp_F16_2005.tif", dmsp, west=west, north=north, res=RES),
        "viirs": write_raster(tmp_path / "viirs_2015.tif", reference, west=west, north=north, res=RES),
    }
    big_west, big_north = west - pad * RES, north + pad * RES
    at = {"west": big_west, "north": big_north, "res": RES}
    big = {
        "dmsp": write_raster(tmp_path / "big_dmsp_F16_2005.tif", np.pad(dmsp, pad, mode="symmetric"), **at),
        "viirs": write_raster(tmp_path / "big_viirs_2015.tif", np.pad(reference, pad, mode="symmetric"), **at),
    }
    area = (west, north - height * RES, west + width * RES, north)
    out_small, out_big = tmp_path / "small.tif", tmp_path / "big.tif"
    fuse(FuseRequest(dmsp=str(small["dmsp"]), viirs=str(small["viirs"]), output=str(out_small), model=model))
    fuse(FuseRequest(dmsp=str(big["dmsp"]), viirs=str(big["viirs"]), output=str(out_big), model=model, extent=area))
    with rasterio.open(out_small) as a, rasterio.open(out_big) as b:
        assert a.shape == b.shape == (height, width) and a.transform.almost_equals(b.transform)
        fused_small, fused_big = a.read(1), b.read(1)
    assert np.isfinite(fused_small).all()
    np.testing.assert_allclose(fused_small, fused_big, rtol=1e-5, atol=1e-5)
