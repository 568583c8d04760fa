"""`fuse_blocks`: `fuse()` as blocks, on a Dask cluster or in this process, resumable.

The client does everything scene-wide once, on the whole area, exactly as `fuse()` does (the same `prepare`,
`scene_wide`, curve fit, scene gain, sampling plan and tags), puts the results in a `BlockSpec`, and hands the
blocks to the workers; it writes each finished block into the journal's partial raster(s). A method that cannot run
in blocks is refused, never replaced by another."""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable

import rasterio
from rasterio.enums import Resampling

from ...errors import CancelledError, FusionError, InputError
from ...raster.grids import AlignedReader
from ...raster.output import check_output_path
from .blocks import GDAL_CACHE_MB, REFERENCE_CHANGE, TRADITIONAL, ZOO, Block, BlockSpec, plan_blocks, run_block
from .cluster import ClusterOptions, check_workers, run_on_cluster, worker_count
from .journal import BlockJournal, describe_job, refuse_stale

BLOCK_FAMILIES = ("unet", "diffusion", "flow_matching", "normalizing_flow")
BLOCK_CONDITIONS = (1, 2, 3)  # condition versions whose every channel is computed per tile or in fixed chunks


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
    """`fuse()` in blocks: on a Dask `client`, else in this process; resumable (`options.resume`). The finished
    raster (and uncertainty layer) equals `fuse()`'s for the same request, pixels and tags (but NLF_CREATED and
    NLF_BLOCKS). `fail_after` (tests): stop as a dying cluster would after that many new blocks."""
    from ..fuse import prepare, scene_wide

    options = options or ClusterOptions()
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    if options.block_rows < 1 or options.block_cols < 1:
        raise InputError(f"--block-rows and --block-cols must be at least 1, got {options.block_rows}, {options.block_cols}.")
    if request.dmsp_consistency:
        raise InputError(
            "--dmsp-consistency is a second pass over the whole map and does not run in blocks yet: run without "
            "--workers/--scheduler/--resume for it."
        )
    job = prepare(request)
    output, grid, mask, result = job.output, job.grid, job.mask, job.result
    uncertainty = None
    if request.uncertainty:
        inputs = [request.dmsp, request.viirs or "", str(output)]
        uncertainty = check_output_path(request.uncertainty, inputs, request.overwrite)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        prior, agreement = scene_wide(request, job)
        spec, closing = block_spec(request, options, job, prior, agreement)
    blocks = plan_blocks(spec, options.block_rows, options.block_cols)
    rows, cols = max(b.row1 - b.row0 for b in blocks), max(b.col1 - b.col0 for b in blocks)
    result.tags["NLF_BLOCKS"] = f"{len(blocks)} blocks of up to {rows}×{cols} px"
    if client is not None:
        check_workers(client, spec)  # before anything is written

    journal = BlockJournal(output, describe_job(request, spec, options.block_rows, options.block_cols), uncertainty)
    if options.resume and journal.load():
        result.notes.append(f"Resumed: {len(journal.done)}/{len(blocks)} blocks were already done ({journal.path.name}).")
    else:
        if options.resume:
            result.notes.append("Nothing to resume (no journal of this job next to the output): started afresh.")
        refuse_stale(journal, request.overwrite)
        journal.start(grid)
    pending = [b for b in blocks if b.key not in journal.done]
    where = "in this process" if client is None else f"on {worker_count(client)} Dask worker(s)"
    report(0.0, f"Output grid {grid.width}×{grid.height} px, {len(blocks)} blocks of up to {rows}×{cols} px, {where}")
    counter = BlockProgress(len(blocks), len(journal.done))

    def store(block: Block, done) -> None:
        values = mask.apply(done.values, block.window) if mask is not None else done.values
        journal.record(block, values, done.counts)
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
                for block in pending:
                    check_cancel()
                    stop_if_told()
                    store(block, run_block(spec, block.row0, block.row1, block.col0, block.col1))
            else:
                run_on_cluster(client, spec, pending, store, check_cancel, stop_if_told)
        except FusionError:
            raise
        except Exception as exc:  # a lost scheduler, a broken connection: the journal keeps what is done
            why = " ".join(str(exc).split())  # dask's messages span lines
            raise FusionError(
                f"The run stopped after {len(journal.done)}/{len(blocks)} blocks ({type(exc).__name__}: {why}). "
                f"Finished blocks are kept next to the output ({journal.path.name}); rerun the same command with "
                "--resume to continue where it stopped."
            ) from exc
        check_cancel()
        report(0.95, "Building overviews")
        descriptions = ["VIIRS-like radiance (nW/cm2/sr)", f"Ensemble standard deviation of {spec.ensemble} samples (nW/cm2/sr)"]
        journal.finish(grid, result.tags, descriptions)
    result.notes.extend(closing(journal.counts()))
    result.uncertainty = str(uncertainty) if uncertainty else None
    report(1.0, "Done")
    result.seconds = time.perf_counter() - started
    return result


def block_spec(request, options: ClusterOptions, job, prior, agreement) -> tuple[BlockSpec, Callable[[dict], list[str]]]:
    """The BlockSpec of a prepared request, with every scene-wide value measured here, once (tags and notes go to
    job.result as fuse() writes them), and the notes fuse() adds after its run (from the blocks' pixel counts)."""
    entry, dmsp, viirs, grid, intercal, result = job.entry, job.dmsp, job.viirs, job.grid, job.intercal, job.result
    base = BlockSpec(dmsp, viirs, grid, intercal, request.seed, TRADITIONAL, request.dmsp_resampling, request.block_size)
    if entry.id == REFERENCE_CHANGE:
        from ...methods.reference_change import closing_notes, prepare_reference_change

        method = prepare_reference_change(request, dmsp, viirs, grid, intercal, lambda f, m: None, lambda: None, agreement, prior)
        result.tags.update(method.tags())

        def after(counts: dict) -> list[str]:
            method.valid_pixels, method.fallback_pixels = counts.get("valid", 0), counts.get("fallback", 0)
            return method.notes + closing_notes(method)

        spec = dataclasses.replace(
            base, kind=REFERENCE_CHANGE, curve=method.traditional.curve, dmsp_gain=method.dmsp_gain,
            change_weight=method.change_weight,
        )  # fmt: skip
        return spec, after
    if entry.zoo is None and entry.id == TRADITIONAL:
        from ...methods.baseline import TraditionalFusion

        method = TraditionalFusion(intercal)
        with ExitStack() as stack:  # the curve is fitted once, on the whole area, as fuse() does
            dmsp_reader = stack.enter_context(AlignedReader(dmsp, grid, Resampling[request.dmsp_resampling]))
            viirs_reader = stack.enter_context(AlignedReader(viirs, grid, Resampling.nearest)) if viirs else None
            method.prepare(dmsp_reader, viirs_reader, grid, request.block_size, lambda f: None, lambda: None)
        result.tags.update(method.tags())
        notes = method.notes + [f"Calibration: {method.curve.describe()}"]
        return dataclasses.replace(base, curve=method.curve), lambda counts: notes
    if entry.zoo is None or entry.family not in BLOCK_FAMILIES:
        raise refusal(entry.id, f"its family ({entry.family}) has no block runner")
    return _generative_spec(request, options, job, prior, agreement, base), lambda counts: []


def _generative_spec(request, options, job, prior, agreement, base: BlockSpec) -> BlockSpec:
    from ...methods.generative import GenerativeFusion, ensemble_size, sampling_plan
    from ..fuse import record_generative_run, run_precision, scene_dmsp_gain
    from ..scene import construct_for

    entry, result = job.entry, job.result
    entry = run_precision(request, entry, result)  # chosen once by the client: every block runs the same file
    plan = sampling_plan(entry.zoo, request.sampler, request.steps, request.speed, request.temperature, request.strength)
    ensemble = ensemble_size(request.ensemble, bool(request.uncertainty), entry.family, entry.id)
    threads = request.threads or options.threads
    # loaded here too: fails on this machine first when the model is missing or another version, and resolves
    # the device ("auto") and the condition version the workers then use
    method = GenerativeFusion(entry.zoo, plan, request.device, threads, ensemble, request.batch_size)
    if method.condition_version not in BLOCK_CONDITIONS:
        raise refusal(entry.id, f"its condition version {method.condition_version} has channels not yet computed per block")
    files = [(str(entry.zoo.path), entry.zoo.sha256)]
    if method.regression is not None:
        from ...engine.zoo import load_manifest

        partner = {m.id: m for m in load_manifest(entry.zoo.zoo_dir)}[entry.zoo.regression_model]
        files.append((str(partner.path), partner.sha256))
    spec = dataclasses.replace(
        base, kind=ZOO, model=entry.zoo, plan=plan, device=method.device, threads=threads, ensemble=ensemble,
        batch_size=method.batch_size, tile=method.tile, overlap=method.overlap, files=tuple(files),
    )  # fmt: skip
    if job.viirs is not None and method.condition_version >= 2:
        spec = dataclasses.replace(spec, dmsp_gain=scene_dmsp_gain(agreement, result, prior))
    if method.needs_construct():  # the traditional estimate's scene-wide part, once, as fuse() measures it
        construct, gap = construct_for(
            request, job.dmsp, job.viirs, job.grid, job.intercal, result, lambda f, m: None, lambda: None, agreement, prior
        )
        spec = dataclasses.replace(spec, construct=construct, gap_years=gap)
    record_generative_run(result, entry, plan, ensemble, method)
    return spec


def refusal(model_id: str, why: str) -> InputError:
    return InputError(
        f"Model {model_id} cannot run in blocks yet ({why}): run it without --workers/--scheduler/--resume "
        "(the single process computes it)."
    )
