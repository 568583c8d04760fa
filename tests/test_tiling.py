"""Global tile lattice, blending and band accumulation (core/tiling.py)."""

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from nightlight_fusion_plugin.core.engine.tiling import (
    BandAccumulator,
    TileLattice,
    blend_window,
    reading_grid,
    tile_rows,
    tile_seed,
)
from nightlight_fusion_plugin.core.raster.grids import Grid

WGS84 = CRS.from_epsg(4326)
RES = 1 / 240


def grid_at(col: int, row: int, width: int, height: int) -> Grid:
    """A grid whose first pixel is global pixel (col, row) of the VIIRS lattice."""
    west = -180 - RES / 2 + col * RES
    north = 90 + RES / 2 - row * RES
    return Grid(WGS84, from_origin(west, north, RES, RES), width, height)


def blended(grid: Grid, lattice: TileLattice, field_fn) -> np.ndarray:
    """Run the accumulator with tiles whose values come from a function of global pixel position."""
    out = np.full((grid.height, grid.width), np.nan, np.float32)
    acc = BandAccumulator(grid, lattice, 1)
    started = False
    for jobs in tile_rows(grid, lattice):
        if not started:
            acc.start_band(jobs[0].y)
            started = True
        else:
            first, values = acc.finished_rows(jobs[0].y)
            _paste(out, first, values)
        for job in jobs:
            rows = np.arange(lattice.tile)[:, None] + job.y + lattice.anchor_row
            cols = np.arange(lattice.tile)[None, :] + job.x + lattice.anchor_col
            acc.add(job, field_fn(rows, cols, job)[None])
    first, values = acc.finished_rows(grid.height + lattice.tile)
    _paste(out, first, values)
    return out


def _paste(out, first, values):
    lo, hi = max(first, 0), min(first + values.shape[1], out.shape[0])
    if hi > lo:
        out[lo:hi] = values[0, lo - first : hi - first]


def test_window_is_positive_and_smooth():
    w = blend_window(64, 16)
    assert w.min() > 0 and w.max() == 1.0 and w[32, 32] == 1.0
    assert np.all(np.diff(w[32, :16]) > 0)


def test_every_pixel_covered_and_a_smooth_field_is_reproduced_exactly():
    grid = grid_at(1000, 2000, 150, 97)
    lattice = TileLattice.for_grid(grid, 32, 8)
    assert (lattice.anchor_col, lattice.anchor_row) == (1000, 2000)
    out = blended(grid, lattice, lambda r, c, job: (np.sin(r / 7.0) + np.cos(c / 5.0)).astype(np.float32))
    rows = np.arange(2000, 2097)[:, None]
    cols = np.arange(1000, 1150)[None, :]
    assert np.allclose(out, np.sin(rows / 7.0) + np.cos(cols / 5.0), atol=1e-5)


def test_output_does_not_depend_on_where_the_area_starts():
    """Tiles whose values depend on the tile (like sampled noise) still give the same pixel values
    when the requested area is shifted by half a tile: tiles are anchored to the global lattice."""

    def per_tile(r, c, job):
        rng = tile_seed(3, job.row, job.col)
        return np.sin(r / 9.0) + rng.normal(0, 0.1, r.shape[0] * c.shape[1]).reshape(r.shape[0], c.shape[1])

    big = grid_at(5000, 7000, 128, 128)
    shifted = grid_at(5016, 7016, 80, 80)
    a = blended(big, TileLattice.for_grid(big, 32, 8), per_tile)
    b = blended(shifted, TileLattice.for_grid(shifted, 32, 8), per_tile)
    assert np.allclose(a[16:96, 16:96], b, atol=1e-6)


def test_tiny_areas_work():
    grid = grid_at(10, 10, 1, 1)
    lattice = TileLattice.for_grid(grid, 32, 8)
    out = blended(grid, lattice, lambda r, c, job: np.ones((r.shape[0], c.shape[1]), np.float32))
    assert out.shape == (1, 1) and out[0, 0] == pytest.approx(1.0)


def test_reading_grid_covers_all_tiles():
    grid = grid_at(100, 100, 50, 40)
    lattice = TileLattice.for_grid(grid, 32, 8)
    extended, dy, dx = reading_grid(grid, lattice)
    for jobs in tile_rows(grid, lattice):
        for job in jobs:
            assert 0 <= job.y + dy and job.y + dy + 32 <= extended.height
            assert 0 <= job.x + dx and job.x + dx + 32 <= extended.width
