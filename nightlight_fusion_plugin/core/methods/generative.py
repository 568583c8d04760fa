"""Fusion with a zoo model (regression UNet, diffusion, flow matching, normalizing flow) over any area.

Tiles of the model's native size on the global lattice (tiling.py) are batched through onnxruntime; each
tile's noise comes from its own generator seeded by its lattice position, so results do not depend on the
batch a tile lands in or on the requested extent. K ensemble members are averaged; their spread is the
uncertainty layer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from ..engine.runtime import load_model
from ..engine.samplers import make_scheduler, nfe, sample, sampler_spec, samplers_for
from ..engine.schedulers import SchedulerConfig
from ..engine.tiling import BandAccumulator, TileJob, TileLattice, reading_grid, tile_seed
from ..engine.transforms import (
    apply_target,
    condition_stack_v,
    condition_version,
    model_target,
    radiance_from_model,
    reference_dmsp,
)
from ..engine.zoo import ZooModel, load_manifest
from ..errors import InputError
from ..raster.grids import AlignedReader, Grid, MirroredReader, RasterInfo
from ..sensor.intercalibration import Intercalibration
from ..sensor.sensors import fwhm_to_sigma

OVERLAP_FRACTION = 0.25
REFERENCE_CHUNK = 4096  # columns of condition v2's reference simulation at a time (_reference_dnc)
PREFETCH = True  # the default of GenerativeFusion(prefetch=): off only for tests and benchmarks/bench_engine.py
BATCH_PIXELS = 2 * 256 * 256  # the most pixels one network call takes (batch_size is capped to fit)


class TileNoise:
    """Noise source for a batch of tiles: each tile draws from its own generator, so a tile's noise is the
    same whichever batch it is in."""

    def __init__(self, generators: list[np.random.Generator]):
        self.generators = generators

    def standard_normal(self, shape, dtype=np.float32) -> np.ndarray:
        return np.stack([g.standard_normal(tuple(shape[1:]), dtype=dtype) for g in self.generators])


@dataclass(frozen=True)
class SamplingPlan:
    sampler: str | None
    steps: int
    strength: float
    nfe: int
    temperature: float = 0.8

    def describe(self) -> str:
        if self.sampler is None:
            return f"one pass (NFE {self.nfe})"
        staged = f", staged from the regression estimate at strength {self.strength:g}" if self.strength < 1 else ""
        return f"{self.sampler}, {self.steps} steps (NFE {self.nfe}){staged}"


def sampling_plan(
    model: ZooModel,
    sampler: str | None,
    steps: int | None,
    speed: int | None,
    temperature: float = 0.8,
    strength: float | None = None,
) -> SamplingPlan:
    """Sampler, steps and warm-start strength: explicit choices win, else the model's speed level."""
    if model.family == "unet":
        return SamplingPlan(None, 1, 1.0, 1)
    if model.family == "normalizing_flow":
        if not 0.0 <= temperature <= 2.0:
            raise InputError(f"--temperature must be between 0 and 2 (0.8 is the usual choice), got {temperature}.")
        return SamplingPlan(None, 1, 1.0, 1, temperature)
    level = model.speed(speed) if (sampler is None or steps is None) else None
    name = sampler or (level.sampler if level else samplers_for(model.family)[0])
    if name not in samplers_for(model.family):
        raise InputError(
            f"Sampler '{name}' does not apply to {model.family} models; use one of {', '.join(samplers_for(model.family))}."
        )
    n = steps or (level.steps if level else 20)
    if n < 1:
        raise InputError(f"--steps must be at least 1, got {n}.")
    if strength is None:
        strength = level.strength if (level and sampler is None and steps is None) else 1.0
    if not 0.0 < strength <= 1.0:
        raise InputError(f"--strength must be in (0, 1], got {strength}.")
    return SamplingPlan(name, n, strength, nfe(name, n, strength))


def ensemble_size(ensemble: int | None, uncertainty: bool, family: str, model_id: str) -> int:
    """Ensemble members of a run (2 by default with an uncertainty layer); refuses what cannot be."""
    size = ensemble if ensemble else (2 if uncertainty else 1)
    if uncertainty and size < 2:
        raise InputError("An uncertainty layer needs an ensemble of at least 2 samples (--ensemble 2 or more).")
    if uncertainty and family == "unet":
        raise InputError(f"{model_id} is deterministic (regression): it has no sampling uncertainty; choose a generative model.")
    return size


class GenerativeFusion:
    """A zoo model run tile by tile; `run` writes the blended radiance (and uncertainty) band by band."""

    def __init__(
        self,
        model: ZooModel,
        plan: SamplingPlan,
        device: str = "auto",
        threads: int | None = None,
        ensemble: int = 1,
        batch_size: int = 8,
        cache_models: bool = False,
        prefetch: bool | None = None,
    ):
        if ensemble < 1:
            raise InputError(f"--ensemble must be at least 1, got {ensemble}.")
        self.model_entry, self.plan, self.ensemble, self.batch_size = model, plan, ensemble, max(1, batch_size)
        self.prefetch = PREFETCH if prefetch is None else prefetch  # the next band prepared in a background thread
        self.model = load_model(model.path, device, threads, model.sha256, cache_models)
        self.regression = None
        if plan.strength < 1.0:
            regression = {m.id: m for m in load_manifest(model.zoo_dir)}.get(model.regression_model or "")
            if regression is None:
                raise InputError(
                    f"Model {model.id} warm-starts from regression model '{model.regression_model}', "
                    "which is not in the zoo; choose explicit --sampler/--steps."
                )
            self.regression = load_model(regression.path, device, threads, regression.sha256, cache_models)
        self.notes = list(self.model.warnings)
        meta = self.model.metadata
        self.tile = int(meta.inference_tile or meta.tile_size)
        self.overlap = int(meta.inference_overlap) if meta.inference_overlap is not None else None
        if self.tile % max(int(meta.multiple_of), 1) or not (self.overlap is None or 0 <= self.overlap < self.tile):
            raise InputError(
                f"Model {model.id}: inference tile {self.tile} / overlap {self.overlap} do not fit the network "
                f"(a multiple of {meta.multiple_of}, overlap below the tile); re-export it."
            )
        # A batch holds at most BATCH_PIXELS (eight 64² tiles, two 256² ones): activations of 8 × 256² tiles make
        # onnxruntime's arena grow with the batch, not the area, and measured no faster (benchmarks/bench_session).
        self.batch_size = max(1, min(self.batch_size, BATCH_PIXELS // (self.tile * self.tile)))
        # condition v1 (3 channels) / v2 (+ the reference simulated to DMSP); absolute / residual target
        self.condition_version, self.target = model_condition(model.id, meta.extra)
        if self.regression is not None:
            # The warm start is the regression's raw output: it must read the same condition stack and lie in the
            # same x_0 space (a residual diffusion needs a residual regression model).
            partner = model_condition(model.regression_model, self.regression.metadata.extra)
            if partner != (self.condition_version, self.target):
                raise InputError(
                    f"Model {model.id} (condition v{self.condition_version}, target '{self.target}') cannot warm-start "
                    f"from regression model {model.regression_model} (condition v{partner[0]}, target '{partner[1]}'): "
                    "staged sampling needs the same condition version and target; choose explicit --sampler/--steps "
                    "or a matching regression model."
                )
        self.scheduler_config = SchedulerConfig.from_dict(meta.schedule) if plan.sampler else None
        # scene_gain.dmsp_gain_correction, for reference-aware (v2) models run with a reference: the share of the
        # scene-wide DMSP/reference level difference the prior puts on the sensor is divided out of the DMSP
        # channel, as reference-change does, so a sensor unlike the training's does not read as change.
        self.dmsp_gain = 1.0
        # Condition v3 ("construct, then refine"): the scene-wide part of the traditional estimate the model corrects
        # (methods/construct.py, measured once on the whole area by the pipeline) and the signed years from the DMSP
        # to the reference (None: unknown, the model's learned "unknown" input).
        self.construct = None
        self.gap_years: float | None = None

    def needs_construct(self) -> bool:
        return self.condition_version == 3

    @property
    def device(self) -> str:
        return self.model.device

    def members(
        self, dnc, reference, reference_dnc, cols: list[slice], batch: list[TileJob], seed: int, traditional=None
    ) -> list[np.ndarray]:
        """Radiance of each ensemble member for a batch of tiles of one band (columns `cols`): the condition stack
        of the model's version, the network, and the inverse of its target (residual models add the reference,
        or the traditional estimate)."""
        condition = np.stack(
            [
                condition_stack_v(
                    dnc[:, c],
                    None if reference is None else reference[:, c],
                    None if reference_dnc is None else reference_dnc[:, c],
                    self.condition_version,
                    None if traditional is None else traditional[:, c],
                    self.gap_years,
                )
                for c in cols
            ]
        )
        return [
            radiance_from_model(apply_target(self.predict(condition, batch, seed, k), condition, self.target))[:, 0]
            for k in range(self.ensemble)
        ]

    def predict(self, condition: np.ndarray, jobs: list[TileJob], seed: int, member: int) -> np.ndarray:
        """Model-space prediction [B, 1, T, T] for a batch of tiles."""
        family = self.model_entry.family
        if family == "unet":
            return self.model.run(condition=condition)
        noise = TileNoise([tile_seed(seed, job.row, job.col, member) for job in jobs])
        if family == "normalizing_flow":
            latent = noise.standard_normal((len(jobs), 1, self.tile, self.tile)) * np.float32(self.plan.temperature)
            return self.model.run(condition=condition, latent=latent)
        x_init = self.regression.run(condition=condition) if self.regression is not None else None
        scheduler = make_scheduler(self.plan.sampler, self.scheduler_config)
        return sample(
            lambda x, t, c: self.model.run(sample=x, timestep=t, condition=c),
            condition,
            scheduler,
            self.plan.steps,
            noise,
            x_init=x_init,
            strength=self.plan.strength,
            shape=(len(jobs), 1, self.tile, self.tile),
        )

    def run(
        self,
        dmsp: AlignedReader,
        viirs: AlignedReader | None,
        intercal: Intercalibration,
        grid: Grid,
        extended: Grid,
        offset: tuple[int, int],
        lattice: TileLattice,
        write: Callable[[int, np.ndarray], None],
        seed: int,
        progress: Callable[[float], None],
        check_cancel: Callable[[], None],
        region: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Blend the tiles over the grid; finished rows go to write(row, values [channels, rows, width]).
        `region` (row0, row1, col0, col1), a block of pipeline/distributed: only the tile rows that touch its rows
        and, in each, the batches (whole, as the whole run forms them) with a tile touching its columns; every
        pixel of the region then gets the same tiles, batches and float64 sums, in the same order, as in the whole
        run, and write's values span the region's columns. None: the whole grid."""
        row0, row1, col0, col1 = region or (0, grid.height, 0, grid.width)
        t = self.tile
        y_of = lambda r: lattice.tile_origin(r, lattice.anchor_row)  # noqa: E731
        x_of = lambda c: lattice.tile_origin(c, lattice.anchor_col)  # noqa: E731
        rows = lattice.tile_range(0, grid.height, lattice.anchor_row)
        cols = lattice.tile_range(0, grid.width, lattice.anchor_col)
        chosen = [r for r in rows if y_of(r) < row1 and y_of(r) + t > row0]
        batches = [cols[s : s + self.batch_size] for s in range(0, len(cols), self.batch_size)]
        batches = [b for b in batches if x_of(b[0]) < col1 and x_of(b[-1]) + t > col0]
        x0, x1 = x_of(batches[0][0]), x_of(batches[-1][-1]) + t  # grid columns the chosen tiles read
        columns = Grid(grid.crs, grid.transform * Affine.translation(col0, 0), col1 - col0, grid.height)
        accumulator = BandAccumulator(columns, lattice, 2 if self.ensemble > 1 else 1)
        total, done = len(chosen) * sum(len(b) for b in batches), 0
        prepare = lambda r: self._prepare_band(dmsp, viirs, intercal, extended, offset, y_of(r), x0, x1)  # noqa: E731
        # Band k+1 is read, warped and turned into conditions in one background thread while the network runs on
        # band k (GDAL and numpy release the GIL; the readers serialise their reads, grids.AlignedReader). At most
        # one band ahead, so memory stays flat; the same arrays as without it, so outputs are byte-identical.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlf-prefetch") if self.prefetch else None
        ahead = None  # the next band's preparation, running
        try:
            for k, r in enumerate(chosen):
                y = y_of(r)
                if k == 0:
                    accumulator.start_band(y)
                else:
                    self._flush(accumulator, y, dmsp, grid, offset, write, region)
                dnc, reference, reference_dnc, traditional = ahead.result() if ahead is not None else prepare(r)
                ahead = pool.submit(prepare, chosen[k + 1]) if pool is not None and k + 1 < len(chosen) else None
                for columns_of_batch in batches:
                    check_cancel()
                    batch = [TileJob(r, c, y, x_of(c)) for c in columns_of_batch]
                    cuts = [slice(job.x - x0, job.x - x0 + t) for job in batch]
                    members = self.members(dnc, reference, reference_dnc, cuts, batch, seed, traditional)
                    stack = np.stack(members)  # [K, B, T, T]
                    mean = stack.mean(axis=0)
                    spread = stack.std(axis=0) if self.ensemble > 1 else None
                    for i, job in enumerate(batch):
                        values = mean[i][None] if spread is None else np.stack([mean[i], spread[i]])
                        accumulator.add(TileJob(job.row, job.col, job.y, job.x - col0), values)
                    done += len(batch)
                    progress(done / total)
        finally:
            if pool is not None:  # cancelled or failed: no thread outlives the run (waits for a running band)
                pool.shutdown(wait=True, cancel_futures=True)
        after = chosen[-1] + 1  # where the whole run flushes next: rows below it are outside the region
        upto = y_of(after) if after in rows else grid.height + t
        self._flush(accumulator, upto, dmsp, grid, offset, write, region)

    def _prepare_band(self, dmsp, viirs, intercal: Intercalibration, extended: Grid, offset, y: int, x0: int, x1: int):
        """The conditions of the band of tile rows starting at grid row y, columns [x0, x1) of the grid: (dnc,
        reference, reference_dnc, traditional), None where the model's condition version does not use one."""
        dy, dx = offset
        band = Window(x0 + dx, y + dy, x1 - x0, self.tile)
        dn = dmsp.read(band)
        reference = viirs.read(band) if viirs is not None else None
        dnc = intercal.apply(dn)
        reference_dnc = traditional = None
        if self.condition_version >= 2 and reference is not None:
            reference_dnc = self._reference_dnc(viirs, extended, intercal, y + dy, x0 + dx, x1 + dx)
            dnc = dnc * np.float32(self.dmsp_gain)
        if self.condition_version == 3:
            traditional = self._traditional(dmsp, viirs, extended, y + dy, x0 + dx, x1 + dx)
        return dnc, reference, reference_dnc, traditional

    def _reference_dnc(
        self, viirs: AlignedReader, extended: Grid, intercal: Intercalibration, row: int, col0: int = 0, col1: int | None = None
    ) -> np.ndarray:
        """Condition v2's 4th channel for the band of rows [row, row + tile) and columns [col0, col1) of the
        extended grid: the reference simulated to intercalibrated DMSP DN (_halo_band: beyond the grid's edges the
        reference counts as dark). An extended grid at most REFERENCE_CHUNK wide is one chunk, the whole band."""
        from ..sensor.sensors import DmspParameters

        params = DmspParameters.calibrated()

        def simulate(window, crop, pixel_km):
            return reference_dmsp(viirs.read(window), pixel_km, intercal, params)[crop]

        col1 = extended.width if col1 is None else col1
        return self._halo_band(extended, row, col0, col1, 0.0, simulate)

    def _traditional(self, dmsp, viirs, extended: Grid, row: int, col0: int, col1: int) -> np.ndarray:
        """Condition v3's traditional estimate (radiance) for the band of rows [row, row + tile) and columns
        [col0, col1) of the extended grid: methods/construct.py's estimate with the scene-wide values the pipeline
        measured (_halo_band), so a block of columns gets the whole run's values."""
        if self.construct is None:
            raise InputError(f"Model {self.model_entry.id} refines the traditional estimate: the run must measure it first.")

        def estimate(window, crop, pixel_km):
            reference = viirs.read(window) if viirs is not None else None
            return self.construct.estimate(dmsp.read(window), reference, pixel_km, crop)

        return self._halo_band(extended, row, col0, col1, np.nan, estimate)

    def _halo_band(self, extended: Grid, row: int, col0: int, col1: int, fill: float, compute) -> np.ndarray:
        """A band of rows [row, row + tile) and columns [col0, col1) of the extended grid made by
        compute(window, crop, pixel_km) from reads with the DMSP halo + footprint margin (clipped at the grid's
        edges), in fixed chunks of REFERENCE_CHUNK columns, each with its own margin: a chunk's values depend on
        its position only, so a block of columns (pipeline/distributed) gets the whole run's values and memory
        does not grow with the width."""
        from .reference_change import grid_pixel_km, sensor_parameters

        params = sensor_parameters()
        t = self.tile
        pixel_km = grid_pixel_km(extended, row + t / 2)
        sigma = fwhm_to_sigma(params.halo_fwhm_km) + fwhm_to_sigma(params.psf_fwhm_km)
        margin = int(np.ceil(4 * sigma / max(min(pixel_km), 1e-6))) + 2
        top, bottom = max(row - margin, 0), min(row + t + margin, extended.height)
        out = np.full((t, col1 - col0), fill, np.float32)
        if bottom <= top:
            return out
        lo, hi = row - top, min(row + t, extended.height) - top
        for start in range(col0 - col0 % REFERENCE_CHUNK, col1, REFERENCE_CHUNK):
            stop = min(start + REFERENCE_CHUNK, extended.width)
            left, right = max(start - margin, 0), min(stop + margin, extended.width)
            a, b = max(start, col0), min(stop, col1)
            crop = (slice(lo, hi), slice(a - left, b - left))
            out[: hi - lo, a - col0 : b - col0] = compute(Window(left, top, right - left, bottom - top), crop, pixel_km)
        return out

    @staticmethod
    def _flush(accumulator, upto, dmsp, grid, offset, write, region=None) -> None:
        row0, row1, col0, col1 = region or (0, grid.height, 0, grid.width)
        first, values = accumulator.finished_rows(upto)
        lo, hi = max(first, row0), min(first + values.shape[1], row1)
        if hi <= lo:
            return
        values = values[:, lo - first : hi - first]
        dy, dx = offset
        missing = np.isnan(dmsp.read(Window(dx + col0, lo + dy, col1 - col0, hi - lo)))
        values[:, missing] = np.nan  # nodata in DMSP stays nodata, never light
        write(lo, values)


def model_condition(model_id: str, props: dict) -> tuple[int, str]:
    """(condition version, target) from a model's metadata, as an InputError naming the model if unknown."""
    try:
        return condition_version(props), model_target(props)
    except ValueError as error:
        raise InputError(f"Model {model_id}: {error}; a newer plugin may be needed.") from error


def tile_readers(
    stack: ExitStack, dmsp: RasterInfo, viirs: RasterInfo | None, extended: Grid
) -> tuple[MirroredReader, MirroredReader | None]:
    """The DMSP (bilinear) and reference (nearest) readers a tile model reads on the extended grid, mirrored
    beyond each raster's edges (grids.MirroredReader): the same in a single run and in every block of a
    distributed one."""
    dmsp_reader = MirroredReader(stack.enter_context(AlignedReader(dmsp, extended)))
    viirs_reader = MirroredReader(stack.enter_context(AlignedReader(viirs, extended, Resampling.nearest))) if viirs else None
    return dmsp_reader, viirs_reader


def prepare_lattice(grid: Grid, tile: int, overlap: int | None = None) -> tuple[TileLattice, Grid, tuple[int, int]]:
    """The global tile lattice for a grid (overlap None: OVERLAP_FRACTION of the tile), the grid the tiles read
    (extended by the tiles that stick out) and the grid's offset in it."""
    overlap = max(1, int(tile * OVERLAP_FRACTION)) if overlap is None else overlap
    lattice = TileLattice.for_grid(grid, tile, overlap)
    extended, dy, dx = reading_grid(grid, lattice)
    return lattice, extended, (dy, dx)


def describe_sampler(plan: SamplingPlan) -> str:
    return plan.describe() if plan.sampler is None else f"{sampler_spec(plan.sampler).label}: {plan.describe()}"
