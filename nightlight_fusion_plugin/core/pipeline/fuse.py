"""The fusion pipeline: inputs -> output grid -> method -> windowed write. The one code path behind the
CLI, the Processing algorithm and the dialog."""

from __future__ import annotations

import datetime as _dt
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..engine.models import REFERENCE_CHANGE, ModelEntry, model_entry
from ..errors import CancelledError, InputError
from ..methods.baseline import TraditionalFusion
from ..raster.grids import AlignedReader, Bounds, Grid, RasterInfo, inspect_raster, output_grid, value_range
from ..raster.mask import load_mask
from ..raster.output import RasterWriter, check_output_path
from ..sensor.intercalibration import DN_SATURATED, Intercalibration, intercalibration_for, parse_satellite_year
from .consistency import consistency_input_path, make_consistent
from .scene import construct_for, scene_dmsp_gain, scene_wide, signed_gap_years  # noqa: F401 (scene_dmsp_gain: distributed imports it here)

ProgressCallback = Callable[[float, str], None]
GDAL_CACHE_MB = 64


@dataclass
class FuseRequest:
    dmsp: str
    output: str
    viirs: str | None = None
    model: str | None = None
    extent: Bounds | None = None
    extent_crs: str | None = None
    seed: int = 0
    satellite: str | None = None
    year: int | None = None
    overwrite: bool = False
    block_size: int = 512
    sampler: str | None = None
    steps: int | None = None
    speed: int | None = None
    ensemble: int | None = None
    uncertainty: str | None = None
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 8
    temperature: float = 0.8
    grid_like: str | None = None  # write on this raster's grid (cropped to the inputs) instead of VIIRS's
    strength: float | None = None  # < 1: staged warm start from the regression estimate (its zoo partner)
    dmsp_resampling: str = "bilinear"  # how DMSP is warped to the output grid (evaluation compares cubic)
    cache_models: bool = False  # keep onnxruntime sessions loaded between runs (a QGIS session runs many)
    mask: str | None = None  # GeoJSON polygons (file or text): only pixels inside are written, the rest nodata
    reference_year: int | None = None  # the VIIRS reference's year (default: from its file name)
    reference_gap_years: float | None = None  # reference year - DMSP year (signed), overriding both years
    dmsp_consistency: bool = False  # a last pass: the map re-simulated to DMSP made to match the DMSP (pipeline/consistency.py)
    precision: str = "auto"  # fp32, int8, fp16 or auto (the faster gated variant, measured once per machine)
    precision_cache: str | None = None  # folder of the measured choice (default: engine/precision.default_cache_dir)


@dataclass
class FuseResult:
    output: str
    model: str
    grid: Grid
    seconds: float
    notes: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    sampler: str = ""
    uncertainty: str | None = None


def check_dmsp_values(dmsp: RasterInfo, grid: Grid) -> None:
    """DMSP stable lights are 6-bit DN (0–63): anything else is another product or a swapped input."""
    stats = value_range(dmsp, grid_bounds_in(grid, dmsp.crs))
    if stats.valid_pixels == 0:
        raise InputError(f"The DMSP raster {dmsp.path} has no valid pixels in the chosen area (all nodata); choose another area.")
    if stats.maximum > DN_SATURATED + 0.5 or stats.minimum < -0.5:
        hint = (
            "it looks like a VIIRS radiance raster: pass it as the VIIRS reference instead"
            if stats.maximum > DN_SATURATED + 0.5
            else "DN cannot be negative"
        )
        nodata = (
            ""
            if dmsp.nodata is not None
            else (" If a value marks missing data, set it as the raster's nodata value (gdal_edit.py -a_nodata).")
        )
        raise InputError(
            f"The DMSP raster {dmsp.path} has values from {stats.minimum:g} to {stats.maximum:g}, outside the "
            f"0–63 DN range of DMSP-OLS stable lights; {hint}.{nodata}"
        )


def grid_bounds_in(grid: Grid, crs: CRS) -> Bounds:
    from rasterio.warp import transform_bounds

    return grid.bounds if grid.crs == crs else tuple(transform_bounds(grid.crs, crs, *grid.bounds, densify_pts=21))


@dataclass
class PreparedRun:
    """What every fuse path settles before reading a pixel: the method, inputs, checked output path, output grid,
    polygon mask, intercalibration, and the result (tags, notes) to fill."""

    entry: ModelEntry
    dmsp: RasterInfo
    viirs: RasterInfo | None
    output: Path
    grid: Grid
    mask: object | None
    intercal: Intercalibration
    result: FuseResult


def prepare(request: FuseRequest) -> PreparedRun:
    """Inputs, output, grid, mask, checks and intercalibration of a request: shared by fuse() and the block
    runner (core/distributed.py), so both write the same pixels with the same tags."""
    entry = model_entry(request.model, bool(request.viirs), signed_gap_years(request) if request.viirs else None)
    dmsp = inspect_raster(request.dmsp, "DMSP")
    viirs = inspect_raster(request.viirs, "VIIRS") if request.viirs else None
    output = check_output_path(request.output, [request.dmsp, request.viirs or ""], request.overwrite)
    template = inspect_raster(request.grid_like, "grid template") if request.grid_like else viirs
    polygons = load_mask(request.mask) if request.mask else None
    extent, extent_crs = request.extent, request.extent_crs
    if polygons is not None and extent is None:  # the polygons' extent is the area
        extent, extent_crs = polygons.bounds, polygons.crs.to_wkt()
    grid = output_grid(dmsp, template, extent, extent_crs)
    mask = polygons.on(grid) if polygons is not None else None
    check_dmsp_values(dmsp, grid)
    intercal = resolve_intercalibration(dmsp.path, request.satellite, request.year)
    tags = {
        "NLF_METHOD": entry.id,
        "NLF_MODEL_FAMILY": entry.family,
        "NLF_DMSP": os.path.abspath(dmsp.path),
        "NLF_VIIRS": os.path.abspath(viirs.path) if viirs else "",
        "NLF_SEED": str(request.seed),
        "NLF_CREATED": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "NLF_SOFTWARE": f"Nightlight Fusion {plugin_version()}",
        "NLF_INTERCALIBRATION": intercal.describe(),
    }
    if polygons is not None:
        tags["NLF_MASK"] = f"{len(polygons.geometries)} polygon(s); pixels outside are nodata"
    result = FuseResult(str(output), entry.id, grid, 0.0, [f"Intercalibration: {intercal.describe()}"], tags)
    return PreparedRun(entry, dmsp, viirs, output, grid, mask, intercal, result)


def fuse(
    request: FuseRequest,
    progress: ProgressCallback | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> FuseResult:
    """Fuse DMSP (and optionally a VIIRS reference) into a VIIRS-like radiance GeoTIFF."""
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)

    def check_cancel() -> None:
        if is_cancelled is not None and is_cancelled():
            raise CancelledError("Cancelled by the user; no output was written.")

    job = prepare(request)
    entry, dmsp, viirs, output, grid, mask, intercal, result = (
        job.entry, job.dmsp, job.viirs, job.output, job.grid, job.mask, job.intercal, job.result
    )
    uncertainty = None
    if request.uncertainty:
        uncertainty = check_output_path(request.uncertainty, [request.dmsp, request.viirs or "", str(output)], request.overwrite)
    report(0.0, f"Output grid {grid.width}×{grid.height} px ({grid.crs.to_string()})")
    # GDAL's block cache defaults to 5 % of RAM and fills with every block read: cap it so that memory does
    # not grow with the area (reads are windowed; nothing needs more than a few bands of blocks).
    final = output
    if request.dmsp_consistency:  # the method writes a hidden file, the consistency pass the output from it
        output = consistency_input_path(final)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        prior, agreement = scene_wide(request, job)
        if entry.id == REFERENCE_CHANGE:
            _fuse_reference_change(
                request, dmsp, viirs, grid, intercal, output, result, report, check_cancel, mask, agreement, prior
            )
        elif entry.zoo is None:
            _fuse_traditional(request, dmsp, viirs, grid, intercal, output, result, report, check_cancel, mask)
        else:
            _fuse_generative(
                request, entry, dmsp, viirs, grid, intercal, output, uncertainty, result, report, check_cancel, mask,
                agreement, prior,
            )  # fmt: skip
        if request.dmsp_consistency:
            make_consistent(request, dmsp, output, final, grid, intercal, result, report, check_cancel, mask)
    report(1.0, "Done")
    result.seconds = time.perf_counter() - started
    return result


def _fuse_traditional(request, dmsp, viirs, grid, intercal, output, result, report, check_cancel, mask=None) -> None:
    method = TraditionalFusion(intercal)
    with ExitStack() as stack:
        dmsp_reader = stack.enter_context(AlignedReader(dmsp, grid, Resampling[request.dmsp_resampling]))
        viirs_reader = stack.enter_context(AlignedReader(viirs, grid, Resampling.nearest)) if viirs else None
        fit_share = 0.3 if viirs_reader else 0.0
        method.prepare(
            dmsp_reader,
            viirs_reader,
            grid,
            request.block_size,
            lambda f: report(fit_share * f, "Fitting the calibration"),
            check_cancel,
        )
        result.tags.update(method.tags())
        total = grid.block_count(request.block_size)
        with RasterWriter(output, grid, result.tags, "VIIRS-like radiance (nW/cm2/sr)") as writer:
            for i, window in enumerate(grid.blocks(request.block_size)):
                check_cancel()
                dn = dmsp_reader.read(window)
                reference = viirs_reader.read(window) if viirs_reader else None
                values = method.predict(dn, reference)
                writer.write(mask.apply(values, window) if mask is not None else values, window)
                report(fit_share + (0.95 - fit_share) * (i + 1) / total, f"Block {i + 1}/{total}")
            check_cancel()
            report(0.95, "Building overviews")
            writer.finish()
    result.notes.extend(method.notes)
    result.notes.append(f"Calibration: {method.curve.describe()}")


def _fuse_reference_change(
    request, dmsp, viirs, grid, intercal, output, result, report, check_cancel, mask=None, agreement=None, prior=None
) -> None:
    from ..methods.reference_change import run_reference_change

    def writer(tags: dict[str, str]) -> RasterWriter:
        result.tags.update(tags)
        return RasterWriter(output, grid, result.tags, "VIIRS-like radiance (nW/cm2/sr)")

    method = run_reference_change(
        request, dmsp, viirs, grid, intercal, writer, report, check_cancel, mask, agreement, prior
    )
    result.notes.extend(method.notes)


def _fuse_generative(
    request, entry, dmsp, viirs, grid, intercal, output, uncertainty, result, report, check_cancel, mask=None, agreement=None,
    prior=None,
) -> None:
    from ..engine.tiling import tile_rows
    from ..methods.generative import GenerativeFusion, ensemble_size, prepare_lattice, sampling_plan, tile_readers

    entry = run_precision(request, entry, result)
    plan = sampling_plan(entry.zoo, request.sampler, request.steps, request.speed, request.temperature, request.strength)
    ensemble = ensemble_size(request.ensemble, bool(request.uncertainty), entry.family, entry.id)
    method = GenerativeFusion(
        entry.zoo, plan, request.device, request.threads, ensemble, request.batch_size, request.cache_models
    )
    if viirs is not None and method.condition_version >= 2:
        method.dmsp_gain = scene_dmsp_gain(agreement, result, prior)
    if method.needs_construct():
        method.construct, method.gap_years = construct_for(
            request, dmsp, viirs, grid, intercal, result, report, check_cancel, agreement, prior
        )
    record_generative_run(result, entry, plan, ensemble, method)
    lattice, extended, offset = prepare_lattice(grid, method.tile, method.overlap)
    tiles = sum(len(row) for row in tile_rows(grid, lattice))
    with ExitStack() as stack:
        dmsp_reader, viirs_reader = tile_readers(stack, dmsp, viirs, extended)
        writer = stack.enter_context(RasterWriter(output, grid, result.tags, "VIIRS-like radiance (nW/cm2/sr)"))
        spread = (
            stack.enter_context(
                RasterWriter(uncertainty, grid, result.tags, f"Ensemble standard deviation of {ensemble} samples (nW/cm2/sr)")
            )
            if uncertainty
            else None
        )

        def write(row: int, values) -> None:
            window = Window(0, row, grid.width, values.shape[1])
            if mask is not None:
                values = mask.apply(values, window)
            writer.write(values[0], window)
            if spread is not None:
                spread.write(values[1], window)

        method.run(
            dmsp_reader,
            viirs_reader,
            intercal,
            grid,
            extended,
            offset,
            lattice,
            write,
            request.seed,
            lambda f: report(0.95 * f, f"Tile {round(f * tiles)}/{tiles}"),
            check_cancel,
        )
        check_cancel()
        report(0.95, "Building overviews")
        writer.finish()
        if spread is not None:
            spread.finish()
            result.uncertainty = str(uncertainty)


def run_precision(request: FuseRequest, entry: ModelEntry, result: FuseResult) -> ModelEntry:
    """The entry of the precision variant that runs (engine/precision.py), tagged NLF_PRECISION; a variant whose
    file is corrupt or replaced falls back to fp32 with a note, never a crash."""
    from ..engine.precision import ChoiceCache, choose, variants
    from ..engine.runtime import resolved_device, sha256_of

    device = resolved_device(request.device)
    choice = choose(entry.zoo, request.precision, device, request.threads, ChoiceCache(request.precision_cache))
    chosen, reason = choice.model, choice.reason
    if chosen.precision != "fp32" and (not chosen.path.is_file() or sha256_of(chosen.path) != chosen.sha256):
        root = variants(chosen).get("fp32")
        if root is None:
            raise InputError(f"Model file {chosen.path} is missing or does not match its sha256; reinstall the plugin.")
        result.notes.append(
            f"The {chosen.precision} variant {chosen.file} is missing or does not match its sha256 in the zoo manifest "
            f"(corrupt or replaced): ran the fp32 model {root.id} instead; reinstall the plugin to restore it."
        )
        chosen, reason = root, f"fp32 (the {choice.model.precision} file failed its sha256 check)"
    result.tags["NLF_PRECISION"] = reason
    if chosen.id != entry.id:
        result.notes.append(f"Precision {reason}: model file {chosen.file}")
    return replace(entry, zoo=chosen, precision=chosen.precision)


def record_generative_run(result: FuseResult, entry: ModelEntry, plan, ensemble: int, method) -> None:
    """Notes and tags of a model run (sampler, steps, NFE, device, model file), the same for every fuse path."""
    from ..methods.generative import describe_sampler

    result.device, result.sampler = method.device, describe_sampler(plan)
    result.notes.extend(method.notes)
    result.notes.append(
        f"Model {entry.id} ({entry.family}, {entry.precision}) on {method.device}: {result.sampler}, ensemble {ensemble}"
    )
    result.tags.update(
        {
            "NLF_SAMPLER": plan.sampler or "one pass",
            "NLF_STEPS": str(plan.steps),
            "NLF_NFE": str(plan.nfe),
            "NLF_STRENGTH": f"{plan.strength:g}",
            "NLF_ENSEMBLE": str(ensemble),
            "NLF_DEVICE": method.device,
            "NLF_MODEL_SHA256": entry.zoo.sha256,
        }
    )
    if entry.family == "normalizing_flow":  # its one knob: the latent's scale
        result.tags["NLF_TEMPERATURE"] = f"{plan.temperature:g}"


def plugin_version() -> str:
    metadata = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "metadata.txt")
    try:
        with open(metadata, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def resolve_intercalibration(path: str, satellite: str | None, year: int | None):
    """Explicit satellite/year win over what the file name says (NOAA names like F182013…)."""
    parsed_satellite, parsed_year = parse_satellite_year(path)
    return intercalibration_for(satellite or parsed_satellite, year or parsed_year)
