"""Scale-out and resumable runs: the output grid's blocks of rows as tasks, on a Dask cluster or in-process.

`fuse_blocks` runs the same computation as `fuse()` split into blocks of whole output rows. Each block is a
task (`run_block`) that opens the inputs on the *full* run's grids and reads exactly the windows the
single-process run reads, so the bytes of every block are the same as in `fuse()`: the traditional method is
per pixel with a calibration curve fitted once by the client; a zoo model runs the tile rows of the global
lattice that touch the block, in the same order and batches as the full run (whole-width tile rows), and its
noise is seeded by geographic tile, so a block is a sub-area that reproduces the full run.

The client (this process) writes each finished block into a partial GeoTIFF next to the output and records
it in a sidecar journal (`.OUT.tif.partial.json`); a rerun with `resume=True` skips the recorded blocks, so a
run stopped by Ctrl-C, a crash or a dying cluster continues where it stopped. Only the complete raster (with
overviews and tags) is renamed into place, as with `RasterWriter`.

Dask (`requirements-dask.txt`) is imported only when a cluster is asked for: the plugin and the
single-process path never need it. Workers load their onnxruntime session once per process (cached here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import CancelledError, FusionError, InputError
from ..raster.grids import AlignedReader, Grid, RasterInfo
from ..raster.output import GTIFF_OPTIONS, overview_factors
from ..sensor.intercalibration import Intercalibration

BLOCK_ROWS = 512
GDAL_CACHE_MB = 64
JOURNAL_VERSION = 1


@dataclass(frozen=True)
class ClusterOptions:
    """Where blocks run: `workers` processes of a LocalCluster, a running scheduler, or in this process."""

    workers: int | None = None
    threads: int = 1  # threads per worker (also onnxruntime's, unless the request sets its own)
    scheduler: str | None = None
    resume: bool = False
    block_rows: int = BLOCK_ROWS

    @property
    def uses_dask(self) -> bool:
        return bool(self.workers) or bool(self.scheduler)


@dataclass(frozen=True)
class BlockSpec:
    """Everything a worker needs for any block: plain, picklable values (no open files, no sessions)."""

    dmsp: RasterInfo
    viirs: RasterInfo | None
    grid: Grid
    intercal: Intercalibration
    seed: int
    dmsp_resampling: str = "bilinear"
    block_size: int = 512
    curve: Any = None  # RadianceCurve of the traditional method (fitted once, by the client)
    model: Any = None  # ZooModel, or None for the traditional method
    plan: Any = None  # SamplingPlan
    device: str = "cpu"
    threads: int | None = None
    ensemble: int = 1
    batch_size: int = 8
    dmsp_gain: float = 1.0  # scene_gain correction for reference-aware models (measured once, by the client)


# -- worker side -------------------------------------------------------------------------------------------

_METHODS: dict[tuple, Any] = {}  # one GenerativeFusion (onnxruntime session) per worker process


def _generative_method(spec: BlockSpec):
    from ..methods.generative import GenerativeFusion

    key = (spec.model.path, spec.model.sha256, spec.plan, spec.device, spec.threads, spec.ensemble, spec.batch_size)
    if key not in _METHODS:
        if not Path(spec.model.path).is_file():
            # a remote worker sees its own disk: say which machine lacks which file
            raise InputError(
                f"Worker {socket.gethostname()} (pid {os.getpid()}) has no model file {spec.model.path}: install the "
                "plugin (its model_zoo/) at the same path on every worker machine, or share it there."
            )
        _METHODS.clear()  # one model at a time per worker: sessions are large
        _METHODS[key] = GenerativeFusion(spec.model, spec.plan, spec.device, spec.threads, spec.ensemble, spec.batch_size)
    return _METHODS[key]


def run_block(spec: BlockSpec, row0: int, row1: int) -> np.ndarray:
    """Output rows [row0, row1) of the full grid, float32 [rows, width]: the task one worker runs."""
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        if spec.model is None:
            return _traditional_rows(spec, row0, row1)
        return _generative_rows(spec, row0, row1)


def _traditional_rows(spec: BlockSpec, row0: int, row1: int) -> np.ndarray:
    from ..methods.baseline import TraditionalFusion

    grid = spec.grid
    method = TraditionalFusion(spec.intercal, spec.curve)
    out = np.empty((row1 - row0, grid.width), np.float32)
    with AlignedReader(spec.dmsp, grid, Resampling[spec.dmsp_resampling]) as reader:
        for window in grid.blocks(spec.block_size):  # the very windows fuse() reads
            if row0 <= window.row_off < row1:
                r = window.row_off - row0
                values = method.predict(reader.read(window), None)  # the reference only fitted the curve
                out[r : r + window.height, window.col_off : window.col_off + window.width] = values
    return out


def _generative_rows(spec: BlockSpec, row0: int, row1: int) -> np.ndarray:
    """GenerativeFusion.run restricted to the tile rows that touch [row0, row1). Rows above the first chosen
    tile row lack that row's upper neighbour, but they lie above row0 and are dropped; every kept pixel gets
    the same tiles, batches and float64 sums in the same order as in the full run."""
    from ..engine.tiling import BandAccumulator, tile_rows
    from ..methods.generative import GenerativeFusion, prepare_lattice, tile_readers

    method = _generative_method(spec)
    grid = spec.grid
    lattice, extended, offset = prepare_lattice(grid, method.tile)
    dy, dx = offset
    t = method.tile
    rows = list(tile_rows(grid, lattice))
    chosen = [i for i, jobs in enumerate(rows) if jobs[0].y < row1 and jobs[0].y + t > row0]
    out = np.full((row1 - row0, grid.width), np.nan, np.float32)

    def keep(first: int, values: np.ndarray) -> None:
        lo, hi = max(first, row0), min(first + values.shape[1], row1)
        if hi > lo:
            out[lo - row0 : hi - row0] = values[0, lo - first : hi - first]

    accumulator = BandAccumulator(grid, lattice, 2 if method.ensemble > 1 else 1)
    with ExitStack() as stack:
        dmsp, viirs = tile_readers(stack, spec.dmsp, spec.viirs, extended)
        for k, index in enumerate(chosen):
            jobs = rows[index]
            y = jobs[0].y
            if k == 0:
                accumulator.start_band(y)
            else:
                GenerativeFusion._flush(accumulator, y, dmsp, grid, offset, keep)
            band = Window(0, y + dy, extended.width, t)
            dnc = spec.intercal.apply(dmsp.read(band))
            reference = viirs.read(band) if viirs is not None else None
            reference_dnc = None  # condition v2: the reference simulated to DMSP, as GenerativeFusion.run builds it
            if method.condition_version == 2 and reference is not None:
                reference_dnc = method._reference_dnc(viirs, extended, spec.intercal, y + dy)
                dnc = dnc * np.float32(spec.dmsp_gain)
            for start in range(0, len(jobs), method.batch_size):
                batch = jobs[start : start + method.batch_size]
                cols = [slice(job.x + dx, job.x + dx + t) for job in batch]
                members = method.members(dnc, reference, reference_dnc, cols, batch, spec.seed)
                stacked = np.stack(members)
                mean = stacked.mean(axis=0)
                spread = stacked.std(axis=0) if method.ensemble > 1 else None
                for i, job in enumerate(batch):
                    accumulator.add(job, mean[i][None] if spread is None else np.stack([mean[i], spread[i]]))
        after = chosen[-1] + 1
        upto = rows[after][0].y if after < len(rows) else grid.height + t  # where the full run flushes next
        GenerativeFusion._flush(accumulator, upto, dmsp, grid, offset, keep)
    return out


# -- client side -------------------------------------------------------------------------------------------


@contextmanager
def cluster_client(options: ClusterOptions | None) -> Iterator[Any]:
    """A dask.distributed Client for the options (None: run blocks in this process)."""
    if options is None or not options.uses_dask:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise FusionError(
            "--workers/--scheduler need Dask, which is not installed: "
            "pip install -c constraints.txt -r requirements-dask.txt (the single-process run needs nothing more)."
        ) from exc
    if options.workers is not None and options.workers < 1:
        raise InputError(f"--workers must be at least 1, got {options.workers}.")
    if options.threads < 1:
        raise InputError(f"--threads must be at least 1, got {options.threads}.")
    with ExitStack() as stack:
        if options.scheduler:
            try:
                client = stack.enter_context(Client(options.scheduler, timeout="20s"))
            except (OSError, TimeoutError) as exc:
                raise FusionError(
                    f"Cannot reach the Dask scheduler at {options.scheduler} ({exc}); start it (dask scheduler) "
                    "or check the address (tcp://HOST:8786)."
                ) from exc
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=options.workers,
                    threads_per_worker=options.threads,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=40,
                )
            )
            client = stack.enter_context(Client(cluster))
        yield client


class BlockJournal:
    """The partial GeoTIFF and its sidecar JSON of finished blocks (stable names, so a rerun finds them)."""

    def __init__(self, output: Path, fingerprint: str):
        self.output, self.fingerprint = output, fingerprint
        self.partial = output.with_name(f".{output.name}.partial.tif")
        self.path = output.with_name(f".{output.name}.partial.json")
        self.done: set[int] = set()

    def load(self) -> bool:
        """Finished blocks of an earlier run of the same job; False when there is none to resume."""
        if not (self.path.is_file() and self.partial.is_file()):
            return False
        try:
            data = json.loads(self.path.read_text())
            with rasterio.open(self.partial):
                pass
        except (OSError, ValueError, rasterio.errors.RasterioIOError):
            return False
        if data.get("version") != JOURNAL_VERSION or data.get("fingerprint") != self.fingerprint:
            return False
        self.done = {int(r) for r in data.get("blocks", [])}
        return True

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = {"version": JOURNAL_VERSION, "fingerprint": self.fingerprint, "blocks": sorted(self.done)}
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.path)  # never a half-written journal

    def remove(self) -> None:
        for p in (self.path, self.partial):
            if p.exists():
                p.unlink()


def _create_partial(path: Path, grid: Grid) -> None:
    with rasterio.open(path, "w", crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height, **GTIFF_OPTIONS):
        pass


def _write_rows(path: Path, values: np.ndarray, row0: int) -> None:
    # open-write-close per block: the GeoTIFF's tile index is on disk before the journal names the block,
    # so a killed client never journals a block the file does not hold
    with rasterio.open(path, "r+") as dst:
        dst.write(values.astype(np.float32), 1, window=Window(0, row0, values.shape[1], values.shape[0]))


def _finish(journal: BlockJournal, grid: Grid, tags: dict[str, str], description: str) -> None:
    with rasterio.open(journal.partial, "r+") as dst:
        dst.build_overviews(overview_factors(grid.width, grid.height), Resampling.average)
        dst.update_tags(ns="rio_overview", resampling="average")
        dst.update_tags(**tags)
        dst.set_band_description(1, description)
        dst.set_band_unit(1, "nW/cm2/sr")
    os.replace(journal.partial, journal.output)
    journal.path.unlink()


def _fingerprint(request, spec: BlockSpec, block_rows: int) -> str:
    """What makes blocks interchangeable between runs: inputs (and their sizes/mtimes), grid, method."""

    def stamp(info: RasterInfo | None) -> list:
        if info is None:
            return []
        st = os.stat(info.path)
        return [os.path.abspath(info.path), st.st_size, int(st.st_mtime)]

    keys = dataclasses.asdict(request)
    for k in ("output", "overwrite", "cache_models", "threads", "device", "uncertainty"):
        keys.pop(k, None)
    body = {
        "request": keys,
        "dmsp": stamp(spec.dmsp),
        "viirs": stamp(spec.viirs),
        "grid": [spec.grid.crs.to_wkt(), list(spec.grid.transform)[:6], spec.grid.width, spec.grid.height],
        "model": spec.model.sha256 if spec.model else "baseline",
        "plan": repr(spec.plan),
        "curve": repr(spec.curve),
        "block_rows": block_rows,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class BlockProgress:
    total: int
    already: int
    started: float = field(default_factory=time.perf_counter)
    done: int = 0

    def message(self) -> str:
        finished = self.already + self.done
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - finished) if self.done else float("nan")
        eta = f", {left:.0f} s left" if self.done else ""
        return f"Block {finished}/{self.total}{eta}"


def fuse_blocks(
    request,
    options: ClusterOptions | None = None,
    progress: Callable[[float, str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    client: Any = None,
    fail_after: int | None = None,
):
    """`fuse()` in blocks of rows: on a Dask `client` (or the cluster `options` ask for), else in this process;
    resumable (`options.resume`). The finished raster's band equals `fuse()`'s for the same request.
    `fail_after` (tests): stop as a dying cluster would after that many new blocks."""
    from ..engine.models import model_entry
    from .fuse import prepare

    options = options or ClusterOptions()
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    if request.uncertainty:
        raise InputError("--uncertainty is not available with --workers/--scheduler/--resume yet; run without them for it.")
    if options.block_rows < 1:
        raise InputError(f"--block-rows must be at least 1, got {options.block_rows}.")
    # the same preparation as fuse() (fuse.prepare): inputs, output, grid, mask, checks, intercalibration
    entry = model_entry(request.model, with_reference=bool(request.viirs))
    block_rows = options.block_rows
    if entry.zoo is None:  # whole fuse() read windows (request.block_size rows): every block reads what fuse() reads
        block_rows = max(1, round(block_rows / request.block_size)) * request.block_size
    job = prepare(request)
    dmsp, viirs, output, grid, mask, intercal, result = (
        job.dmsp, job.viirs, job.output, job.grid, job.mask, job.intercal, job.result
    )
    result.tags["NLF_BLOCK_ROWS"] = str(block_rows)
    spec = _block_spec(request, options, entry, dmsp, viirs, grid, intercal, result)

    journal = BlockJournal(output, _fingerprint(request, spec, block_rows))
    blocks = list(range(0, grid.height, block_rows))
    if options.resume and journal.load():
        result.notes.append(f"Resumed: {len(journal.done)}/{len(blocks)} blocks were already done ({journal.path.name}).")
    else:
        if options.resume:
            result.notes.append("Nothing to resume (no journal of this job next to the output): started afresh.")
        journal.remove()
        _create_partial(journal.partial, grid)
        journal.done = set()
        journal.save()
    pending = [r for r in blocks if r not in journal.done]
    where = "in this process" if client is None else f"on {len(client.scheduler_info().get('workers', {}))} Dask worker(s)"
    report(0.0, f"Output grid {grid.width}×{grid.height} px, {len(blocks)} blocks of {block_rows} rows, {where}")
    counter = BlockProgress(len(blocks), len(journal.done))

    def store(row0: int, values: np.ndarray) -> None:
        if mask is not None:
            values = mask.apply(values, Window(0, row0, grid.width, values.shape[0]))
        _write_rows(journal.partial, values, row0)
        journal.done.add(row0)
        journal.save()
        counter.done += 1
        report(0.95 * (counter.already + counter.done) / counter.total, counter.message())

    def check_cancel() -> None:
        if is_cancelled is not None and is_cancelled():
            raise CancelledError(
                f"Cancelled; {len(journal.done)}/{len(blocks)} blocks are kept in {journal.partial.name}: "
                "rerun with --resume to continue."
            )

    def stop_if_told() -> None:
        if fail_after is not None and counter.done >= fail_after:
            raise ConnectionError("simulated loss of the cluster")

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        try:
            if client is None:
                for row0 in pending:
                    check_cancel()
                    stop_if_told()
                    store(row0, run_block(spec, row0, min(row0 + block_rows, grid.height)))
            else:
                _run_on_cluster(client, spec, pending, block_rows, store, check_cancel, stop_if_told)
        except FusionError:
            raise
        except Exception as exc:  # a lost worker/scheduler, a broken connection: the journal keeps what is done
            why = " ".join(str(exc).split())  # dask's messages span lines
            raise FusionError(
                f"The run stopped after {len(journal.done)}/{len(blocks)} blocks ({type(exc).__name__}: {why}). "
                f"Finished blocks are kept next to the output ({journal.path.name}); rerun the same command with "
                "--resume to continue where it stopped."
            ) from exc
        check_cancel()
        report(0.95, "Building overviews")
        _finish(journal, grid, result.tags, "VIIRS-like radiance (nW/cm2/sr)")
    report(1.0, "Done")
    result.seconds = time.perf_counter() - started
    return result


def _block_spec(request, options, entry, dmsp, viirs, grid, intercal, result) -> BlockSpec:
    threads = request.threads or options.threads
    if entry.zoo is None:
        from ..methods.baseline import TraditionalFusion

        method = TraditionalFusion(intercal)
        with ExitStack() as stack:  # the curve is fitted once, on the whole area, as fuse() does
            dmsp_reader = stack.enter_context(AlignedReader(dmsp, grid, Resampling[request.dmsp_resampling]))
            viirs_reader = stack.enter_context(AlignedReader(viirs, grid, Resampling.nearest)) if viirs else None
            method.prepare(dmsp_reader, viirs_reader, grid, request.block_size, lambda f: None, lambda: None)
        result.tags.update(method.tags())
        result.notes.extend(method.notes)
        result.notes.append(f"Calibration: {method.curve.describe()}")
        return BlockSpec(dmsp, viirs, grid, intercal, request.seed, request.dmsp_resampling, request.block_size, method.curve)
    from ..methods.generative import sampling_plan
    from .fuse import record_generative_run

    plan = sampling_plan(entry.zoo, request.sampler, request.steps, request.speed, request.temperature, request.strength)
    ensemble = request.ensemble or 1
    spec = BlockSpec(
        dmsp, viirs, grid, intercal, request.seed, request.dmsp_resampling, request.block_size, None, entry.zoo, plan,
        request.device, threads, ensemble, request.batch_size,
    )  # fmt: skip
    method = _generative_method(spec)  # fails here, not on a worker, when this machine lacks the model
    spec = dataclasses.replace(spec, device=method.device)  # workers run what the client resolved "auto" to
    if viirs is not None and method.condition_version == 2:
        from ..methods.reference_change import reference_dmsp_agreement
        from .fuse import change_prior, scene_dmsp_gain

        agreement = reference_dmsp_agreement(dmsp, viirs, grid, intercal)
        spec = dataclasses.replace(spec, dmsp_gain=scene_dmsp_gain(agreement, result, change_prior(request, result)))
    record_generative_run(result, entry, plan, ensemble, method)
    return spec


def _run_on_cluster(client, spec, pending, block_rows, store, check_cancel, stop_if_told) -> None:
    from dask.distributed import as_completed

    height = spec.grid.height
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * workers  # blocks in flight: keeps workers busy without holding every result in memory
    spec_future = client.scatter(spec, broadcast=True)
    queue = list(pending)
    running = as_completed()
    futures = {}

    def submit() -> None:
        row0 = queue.pop(0)
        future = client.submit(run_block, spec_future, row0, min(row0 + block_rows, height), pure=False)
        futures[future.key] = row0
        running.add(future)

    for _ in range(min(window, len(queue))):
        submit()
    for future in running:
        check_cancel()
        stop_if_told()
        store(futures.pop(future.key), future.result())  # a worker's InputError is re-raised here, as is
        if queue:
            submit()
