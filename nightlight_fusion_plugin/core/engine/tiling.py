"""Tiles on a global lattice, blended with a raised-cosine window, accumulated band by band.

Tiles are anchored to a lattice fixed in geographic space (not to the requested area), and each tile's
noise is seeded by its lattice position, so the same pixel gets the same tiles and the same noise whatever
extent is asked for: re-running a sub-area reproduces the full run, and output does not depend on where
the area's borders fall. Overlapping tiles are blended with weights that fall smoothly to (almost) zero at
tile edges, so there are no seams. Results are accumulated in a band one tile high and written out as soon
as no later tile can touch them, so memory grows with the area's width, not its size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.transform import Affine

from ..raster.grids import VIIRS_LATTICE_ORIGIN, Grid


@dataclass(frozen=True)
class TileLattice:
    tile: int  # pixels per tile side (the model's native tile size)
    overlap: int  # pixels shared by neighbouring tiles
    anchor_col: int  # global column of the grid's first pixel
    anchor_row: int

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @classmethod
    def for_grid(cls, grid: Grid, tile: int, overlap: int) -> TileLattice:
        if not 0 <= overlap < tile:
            raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
        origin = VIIRS_LATTICE_ORIGIN if grid.crs.is_geographic else (0.0, 0.0)
        col = int(round((grid.transform.c - origin[0]) / grid.transform.a))
        row = int(round((grid.transform.f - origin[1]) / grid.transform.e))
        return cls(tile, overlap, col, row)

    def tile_range(self, start: int, length: int, anchor: int) -> range:
        """Global tile indices along one axis whose pixels meet [start, start+length) of the grid."""
        first = (anchor + start - self.tile) // self.stride + 1
        last = (anchor + start + length - 1) // self.stride
        return range(first, last + 1)

    def tile_origin(self, index: int, anchor: int) -> int:
        """Grid pixel coordinate of a tile's first pixel (may be negative: outside the grid)."""
        return index * self.stride - anchor


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """2-D weights: raised cosine over `overlap` pixels at each edge, 1 inside; never exactly 0."""
    ramp = np.ones(tile, np.float64)
    if overlap > 0:
        i = np.arange(overlap)
        rise = np.sin(0.5 * np.pi * (i + 0.5) / overlap) ** 2
        ramp[:overlap] = rise
        ramp[tile - overlap :] = rise[::-1]
    return np.outer(ramp, ramp).astype(np.float32)


def tile_seed(seed: int, row: int, col: int, member: int = 0) -> np.random.Generator:
    """Noise for one lattice tile: depends on the tile's geographic position, not on the requested area."""
    return np.random.default_rng([seed & 0xFFFFFFFF, member, row + (1 << 30), col + (1 << 30)])


@dataclass
class TileJob:
    row: int  # global tile indices
    col: int
    y: int  # grid pixel of the tile's top-left (may be outside the grid)
    x: int


class BandAccumulator:
    """Weighted sums for the rows one row of tiles covers; emits finished rows."""

    def __init__(self, grid: Grid, lattice: TileLattice, channels: int):
        self.grid, self.lattice, self.channels = grid, lattice, channels
        self.window = blend_window(lattice.tile, lattice.overlap)
        self.top = 0  # grid row of the band's first row
        self.sums = np.zeros((channels, lattice.tile, grid.width), np.float64)
        self.weights = np.zeros((lattice.tile, grid.width), np.float64)

    def start_band(self, y: int) -> None:
        self.top = y

    def add(self, job: TileJob, values: np.ndarray) -> None:
        """Blend one tile's [channels, tile, tile] values into the band."""
        t = self.lattice.tile
        x0, x1 = max(job.x, 0), min(job.x + t, self.grid.width)
        if x1 <= x0:
            return
        sx = slice(x0 - job.x, x1 - job.x)
        dy = job.y - self.top
        w = self.window[:, sx]
        self.sums[:, dy : dy + t, x0:x1] += values[:, :, sx] * w
        self.weights[dy : dy + t, x0:x1] += w

    def finished_rows(self, upto: int) -> tuple[int, np.ndarray]:
        """(first grid row, [channels, n, width] blended values) for band rows above grid row `upto`,
        then shift the band so that row `upto` is its first row."""
        n = max(0, min(upto - self.top, self.lattice.tile))
        with np.errstate(invalid="ignore", divide="ignore"):
            values = (self.sums[:, :n] / self.weights[:n]).astype(np.float32)
        first = self.top
        self.sums = np.concatenate([self.sums[:, n:], np.zeros((self.channels, n, self.grid.width))], axis=1)
        self.weights = np.concatenate([self.weights[n:], np.zeros((n, self.grid.width))], axis=0)
        self.top = upto
        return first, values


def tile_rows(grid: Grid, lattice: TileLattice) -> Iterator[list[TileJob]]:
    """Rows of tile jobs covering the grid, top to bottom."""
    cols = lattice.tile_range(0, grid.width, lattice.anchor_col)
    for r in lattice.tile_range(0, grid.height, lattice.anchor_row):
        y = lattice.tile_origin(r, lattice.anchor_row)
        yield [TileJob(r, c, y, lattice.tile_origin(c, lattice.anchor_col)) for c in cols]


def reading_grid(grid: Grid, lattice: TileLattice) -> tuple[Grid, int, int]:
    """A grid extended to whole tiles around `grid` (inputs are read beyond the area's edges so tiles at
    the border see the same data as in a larger run), and the offset (dy, dx) of `grid` inside it."""
    rows = lattice.tile_range(0, grid.height, lattice.anchor_row)
    cols = lattice.tile_range(0, grid.width, lattice.anchor_col)
    y0 = lattice.tile_origin(rows.start, lattice.anchor_row)
    x0 = lattice.tile_origin(cols.start, lattice.anchor_col)
    y1 = lattice.tile_origin(rows.stop - 1, lattice.anchor_row) + lattice.tile
    x1 = lattice.tile_origin(cols.stop - 1, lattice.anchor_col) + lattice.tile
    extended = Grid(grid.crs, grid.transform * Affine.translation(x0, y0), x1 - x0, y1 - y0)
    return extended, -y0, -x0
