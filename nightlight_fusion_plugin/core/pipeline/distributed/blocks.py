"""The block plan and the per-block compute: what a worker runs.

A block is a rectangle of the output grid (rows × columns). Its task (`run_block`) opens the inputs on the *full*
run's grids and does, for the block's pixels, exactly the arithmetic `fuse()` does, with every scene-wide value
(calibration curve, scene gain, change weight, intercalibration) measured once by the client and carried in the
`BlockSpec`; nothing is fitted per block. Why each method's bytes equal the single process's:

- baseline: per pixel; a block is a set of `fuse()`'s own read windows (`grid.blocks(block_size)`), so its edges
  fall on multiples of the request's block size in both directions.
- reference-change: every window of `fuse()` is computed alone from a read with a fixed margin (the halo blur is an
  FFT over that read: its bytes depend on the read's extent, so blocks are again sets of `fuse()`'s windows).
- zoo models: `GenerativeFusion.run` over the block's region runs the tile rows that touch it and, in each, the
  batches (whole, as the full run forms them: onnxruntime's output may depend on a batch's make-up) with a tile
  touching its columns; each pixel gets the same tiles and float64 sums in the same order. Block edges are placed
  where this costs one extra tile row / batch: just past the overlap of a tile row / of a batch's first tile.
  Condition v2's reference simulation is made in fixed 4096-column chunks (`generative.REFERENCE_CHUNK`).
"""

from __future__ import annotations

import math
import os
import socket
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ...errors import InputError
from ...raster.grids import AlignedReader, Grid, RasterInfo
from ...sensor.intercalibration import Intercalibration

BLOCK_ROWS = 512
BLOCK_COLS = 4096
GDAL_CACHE_MB = 64
TRADITIONAL = "baseline"  # BlockSpec.kind: the three ways a block is computed
REFERENCE_CHANGE = "reference-change"
ZOO = "zoo"


@dataclass(frozen=True)
class Block:
    """Rows [row0, row1) × columns [col0, col1) of the output grid."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def key(self) -> str:
        return f"{self.row0}:{self.col0}"

    @property
    def window(self) -> Window:
        return Window(self.col0, self.row0, self.col1 - self.col0, self.row1 - self.row0)


@dataclass(frozen=True)
class BlockSpec:
    """Everything a worker needs for any block: plain, picklable values (no open files, no sessions)."""

    dmsp: RasterInfo
    viirs: RasterInfo | None
    grid: Grid
    intercal: Intercalibration
    seed: int
    kind: str = TRADITIONAL
    dmsp_resampling: str = "bilinear"
    block_size: int = 512
    curve: Any = None  # RadianceCurve (baseline; reference-change's fallback), fitted once by the client
    dmsp_gain: float = 1.0  # scene_gain correction (reference-change, reference-aware models), measured once
    change_weight: float = 1.0  # reference-change's exponent of the local ratio (the prior's), once
    model: Any = None  # ZooModel
    plan: Any = None  # SamplingPlan
    device: str = "cpu"
    threads: int | None = None
    ensemble: int = 1
    batch_size: int = 8
    tile: int = 0  # the model's tile (block edges are planned on its lattice)
    overlap: int | None = None  # the model's tile overlap (None: the engine's default fraction)
    construct: Any = None  # methods.construct.SceneConstruct (condition v3), measured once by the client
    gap_years: float | None = None  # condition v3's signed gap (None: unknown)
    files: tuple[tuple[str, str], ...] = ()  # (model file, sha256) the client resolved: the model and its partner

    @property
    def channels(self) -> int:
        return 2 if self.kind == ZOO and self.ensemble > 1 else 1


@dataclass
class BlockResult:
    """A block's values [channels, rows, cols] (float32; channel 1: the ensemble spread) and pixel counts."""

    values: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


# -- the plan ---------------------------------------------------------------------------------------------------


def plan_blocks(spec: BlockSpec, block_rows: int, block_cols: int) -> list[Block]:
    """The blocks of the whole grid, row-major, of about block_rows × block_cols pixels."""
    grid = spec.grid
    if spec.kind != ZOO:  # sets of fuse()'s read windows
        size = spec.block_size
        rows = _cuts(grid.height, max(1, round(block_rows / size)) * size, range(size, grid.height, size))
        cols = _cuts(grid.width, max(1, round(block_cols / size)) * size, range(size, grid.width, size))
    else:
        from ...methods.generative import prepare_lattice

        lattice = prepare_lattice(grid, spec.tile, spec.overlap)[0]
        y_of = [lattice.tile_origin(r, lattice.anchor_row) + lattice.overlap
                for r in lattice.tile_range(0, grid.height, lattice.anchor_row)]  # fmt: skip
        tiles = lattice.tile_range(0, grid.width, lattice.anchor_col)
        x_of = [lattice.tile_origin(c, lattice.anchor_col) + lattice.overlap for c in tiles[:: spec.batch_size]]
        rows, cols = _balanced(grid.height, block_rows, y_of), _balanced(grid.width, block_cols, x_of)
    return [Block(r0, r1, c0, c1) for r0, r1 in rows for c0, c1 in cols]


def _cuts(length: int, size: int, candidates) -> list[tuple[int, int]]:
    """[start, stop) spans covering [0, length) cut at candidate positions, each at most `size` long where the
    candidates allow (else just past it)."""
    candidates = sorted(candidates)
    cuts = [0]
    while length - cuts[-1] > size:
        fits = [c for c in candidates if cuts[-1] < c <= cuts[-1] + size]
        later = [c for c in candidates if c > cuts[-1]]
        step = max(fits) if fits else (later[0] if later else None)
        if step is None or step >= length:
            break
        cuts.append(step)
    return list(zip(cuts, cuts[1:] + [length]))


def _balanced(length: int, size: int, candidates) -> list[tuple[int, int]]:
    """ceil(length / size) [start, stop) spans covering [0, length), cut at the candidates nearest to equal parts:
    about `size` long each and alike, so that the workers finish together."""
    candidates = sorted(c for c in candidates if 0 < c < length)
    n = max(1, math.ceil(length / size))
    cuts = [0]
    for k in range(1, n):
        later = [c for c in candidates if c > cuts[-1]]
        if not later:
            break
        cuts.append(min(later, key=lambda c: abs(c - k * length / n)))
    return list(zip(cuts, cuts[1:] + [length]))


# -- the compute (worker side) ---------------------------------------------------------------------------------

_METHODS: dict[tuple, Any] = {}  # one GenerativeFusion (onnxruntime session) per worker process


def where_am_i() -> str:
    return f"Worker {socket.gethostname()} (pid {os.getpid()})"


def check_worker(spec: BlockSpec) -> str | None:
    """What this worker lacks to run the spec's blocks (None: nothing): the inputs at the same paths, the model
    files at the same paths and versions (sha256) as the client's. Run on every worker before the first block."""
    from ...engine.runtime import sha256_of

    problems = []
    for info in (spec.dmsp, spec.viirs):
        if info is not None and "://" not in info.path and not info.path.startswith("/vsi") and not os.path.isfile(info.path):
            problems.append(f"has no input {info.path}")
    for path, sha256 in spec.files:
        if not Path(path).is_file():
            problems.append(f"has no model file {path}")
        elif (found := sha256_of(path)) != sha256:
            problems.append(f"has another version of {path}: sha256 {found[:12]}…, the client's is {sha256[:12]}…")
    if not problems:
        return None
    return (
        f"{where_am_i()} {'; '.join(problems)}: install the same plugin version (its model_zoo/) and the inputs at "
        "the same paths on every worker machine, or share them there."
    )


def _generative_method(spec: BlockSpec):
    from ...methods.generative import GenerativeFusion

    key = (spec.model.path, spec.model.sha256, spec.plan, spec.device, spec.threads, spec.ensemble, spec.batch_size)
    if key not in _METHODS:
        if not Path(spec.model.path).is_file():
            # a remote worker sees its own disk: say which machine lacks which file
            raise InputError(
                f"{where_am_i()} has no model file {spec.model.path}: install the plugin (its model_zoo/) at the same "
                "path on every worker machine, or share it there."
            )
        _METHODS.clear()  # one model at a time per worker: sessions are large
        try:
            _METHODS[key] = GenerativeFusion(spec.model, spec.plan, spec.device, spec.threads, spec.ensemble, spec.batch_size)
        except InputError as exc:  # e.g. a sha256 mismatch: name the machine
            raise InputError(f"{where_am_i()}: {exc}") from exc
    return _METHODS[key]


def run_block(spec: BlockSpec, row0: int, row1: int, col0: int = 0, col1: int | None = None) -> BlockResult:
    """Rows [row0, row1) × columns [col0, col1) of the full grid: the task one worker runs."""
    block = Block(row0, row1, col0, spec.grid.width if col1 is None else col1)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        if spec.kind == ZOO:
            return _generative_block(spec, block)
        if spec.kind == REFERENCE_CHANGE:
            return _reference_change_block(spec, block)
        return _traditional_block(spec, block)


def _windows(spec: BlockSpec, block: Block):
    """fuse()'s read windows (grid.blocks(block_size)) inside the block, with their place in it."""
    grid, size = spec.grid, spec.block_size
    for row in range(block.row0, block.row1, size):
        for col in range(block.col0, block.col1, size):
            window = Window(col, row, min(size, grid.width - col), min(size, grid.height - row))
            yield window, (slice(row - block.row0, row - block.row0 + window.height),
                           slice(col - block.col0, col - block.col0 + window.width))  # fmt: skip


def _traditional_block(spec: BlockSpec, block: Block) -> BlockResult:
    from ...methods.baseline import TraditionalFusion

    method = TraditionalFusion(spec.intercal, spec.curve)
    out = np.empty((1, block.row1 - block.row0, block.col1 - block.col0), np.float32)
    with AlignedReader(spec.dmsp, spec.grid, Resampling[spec.dmsp_resampling]) as reader:
        for window, (rows, cols) in _windows(spec, block):
            out[0, rows, cols] = method.predict(reader.read(window), None)  # the reference only fitted the curve
    return BlockResult(out)


def _reference_change_block(spec: BlockSpec, block: Block) -> BlockResult:
    from ...methods.reference_change import ReferenceChangeFusion, expanded, predict_window

    method = ReferenceChangeFusion(spec.intercal, spec.dmsp_gain, spec.change_weight)
    method.traditional.curve = spec.curve
    wide = expanded(spec.grid, method.margin(spec.grid))
    out = np.empty((1, block.row1 - block.row0, block.col1 - block.col0), np.float32)
    with (
        AlignedReader(spec.dmsp, wide, Resampling[spec.dmsp_resampling]) as dmsp_reader,
        AlignedReader(spec.viirs, wide, Resampling.nearest) as viirs_reader,
    ):
        for window, (rows, cols) in _windows(spec, block):
            out[0, rows, cols] = predict_window(method, dmsp_reader, viirs_reader, spec.grid, window)
    return BlockResult(out, {"valid": method.valid_pixels, "fallback": method.fallback_pixels})


def _generative_block(spec: BlockSpec, block: Block) -> BlockResult:
    from ...methods.generative import prepare_lattice, tile_readers

    method = _generative_method(spec)
    method.dmsp_gain = spec.dmsp_gain
    method.construct, method.gap_years = spec.construct, spec.gap_years
    grid = spec.grid
    lattice, extended, offset = prepare_lattice(grid, method.tile, method.overlap)
    out = np.full((spec.channels, block.row1 - block.row0, block.col1 - block.col0), np.nan, np.float32)

    def keep(row: int, values: np.ndarray) -> None:
        out[:, row - block.row0 : row - block.row0 + values.shape[1]] = values

    with ExitStack() as stack:
        dmsp, viirs = tile_readers(stack, spec.dmsp, spec.viirs, extended)
        region = (block.row0, block.row1, block.col0, block.col1)
        method.run(
            dmsp, viirs, spec.intercal, grid, extended, offset, lattice, keep, spec.seed, lambda f: None, lambda: None, region
        )
    return BlockResult(out)
