"""The fusion pipeline: inputs -> output grid -> method -> windowed write. The one code path behind the
CLI, the Processing algorithm and the dialog."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from rasterio.crs import CRS
from rasterio.enums import Resampling

from .baseline import TraditionalFusion
from .calibration import RadianceCurve
from .errors import CancelledError, InputError
from .grids import AlignedReader, Bounds, Grid, MeanReader, RasterInfo, inspect_raster, output_grid, value_range
from .intercalibration import DN_SATURATED, intercalibration_for, parse_satellite_year
from .models import model_entry
from .output import RasterWriter, check_output_path

ProgressCallback = Callable[[float, str], None]


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


@dataclass
class FuseResult:
    output: str
    model: str
    grid: Grid
    seconds: float
    notes: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


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

    entry = model_entry(request.model)
    dmsp = inspect_raster(request.dmsp, "DMSP")
    viirs = inspect_raster(request.viirs, "VIIRS") if request.viirs else None
    output = check_output_path(request.output, [request.dmsp, request.viirs or ""], request.overwrite)
    grid = output_grid(dmsp, viirs, request.extent, request.extent_crs)
    check_dmsp_values(dmsp, grid)

    intercal = resolve_intercalibration(dmsp.path, request.satellite, request.year)
    method = TraditionalFusion(intercal)
    notes = [f"Intercalibration: {intercal.describe()}"]

    report(0.0, f"Output grid {grid.width}×{grid.height} px ({grid.crs.to_string()})")
    with ExitStack() as stack:
        dmsp_reader = stack.enter_context(AlignedReader(dmsp, grid))
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
        tags = {
            "NLF_METHOD": entry.id,
            "NLF_MODEL_FAMILY": entry.family,
            "NLF_DMSP": os.path.abspath(dmsp.path),
            "NLF_VIIRS": os.path.abspath(viirs.path) if viirs else "",
            "NLF_SEED": str(request.seed),
            "NLF_CREATED": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "NLF_SOFTWARE": f"Nightlight Fusion {plugin_version()}",
            **method.tags(),
        }
        total = grid.block_count(request.block_size)
        with RasterWriter(output, grid, tags, "VIIRS-like radiance (nW/cm2/sr)") as writer:
            for i, window in enumerate(grid.blocks(request.block_size)):
                check_cancel()
                dn = dmsp_reader.read(window)
                reference = viirs_reader.read(window) if viirs_reader else None
                writer.write(method.predict(dn, reference), window)
                report(fit_share + (0.95 - fit_share) * (i + 1) / total, f"Block {i + 1}/{total}")
            check_cancel()
            report(0.95, "Building overviews")
            writer.finish()
    notes.extend(method.notes)
    notes.append(f"Calibration: {method.curve.describe()}")
    report(1.0, "Done")
    return FuseResult(str(output), entry.id, grid, time.perf_counter() - started, notes, tags)


def plugin_version() -> str:
    metadata = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "metadata.txt")
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


def intercalibrate(
    dmsp_path: str,
    output: str,
    satellite: str | None = None,
    year: int | None = None,
    overwrite: bool = False,
    block_size: int = 512,
    progress: ProgressCallback | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> FuseResult:
    """Write the intercalibrated DMSP (DNc, F12 1999 scale) on the DMSP's own grid."""
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    dmsp = inspect_raster(dmsp_path, "DMSP")
    path = check_output_path(output, [dmsp_path], overwrite)
    grid = Grid(dmsp.crs, dmsp.transform, dmsp.width, dmsp.height)
    check_dmsp_values(dmsp, grid)
    intercal = resolve_intercalibration(dmsp_path, satellite, year)
    tags = {
        "NLF_METHOD": "intercalibrate",
        "NLF_DMSP": os.path.abspath(dmsp_path),
        "NLF_INTERCALIBRATION": intercal.describe(),
        "NLF_SOFTWARE": f"Nightlight Fusion {plugin_version()}",
    }
    total = grid.block_count(block_size)
    with (
        AlignedReader(dmsp, grid, Resampling.nearest) as reader,
        RasterWriter(path, grid, tags, "Intercalibrated DMSP DN (F12 1999 scale)", units="DN") as writer,
    ):
        for i, window in enumerate(grid.blocks(block_size)):
            if is_cancelled is not None and is_cancelled():
                raise CancelledError("Cancelled by the user; no output was written.")
            writer.write(intercal.apply(reader.read(window)), window)
            report(0.95 * (i + 1) / total, f"Block {i + 1}/{total}")
        writer.finish()
    report(1.0, "Done")
    return FuseResult(
        str(path),
        "intercalibrate",
        grid,
        time.perf_counter() - started,
        [f"Intercalibration: {intercal.describe()}"],
        tags,
    )


def fit_calibration(
    dmsp_path: str, viirs_paths: list[str], satellite: str | None = None, year: int | None = None
) -> RadianceCurve:
    """Fit the DN->radiance curve of DMSP against the mean of one or more VIIRS rasters on one grid."""
    dmsp = inspect_raster(dmsp_path, "DMSP")
    viirs = [inspect_raster(p, "VIIRS") for p in viirs_paths]
    grid = output_grid(dmsp, viirs[0])
    check_dmsp_values(dmsp, grid)
    method = TraditionalFusion(resolve_intercalibration(dmsp_path, satellite, year))
    with ExitStack() as stack:
        dmsp_reader = stack.enter_context(AlignedReader(dmsp, grid))
        readers = [stack.enter_context(AlignedReader(v, grid, Resampling.nearest)) for v in viirs]
        method.prepare(dmsp_reader, MeanReader(readers), grid, 512, lambda f: None, lambda: None)
    if method.notes:
        raise InputError(method.notes[-1])
    names = ", ".join(os.path.basename(p) for p in viirs_paths)
    source = (
        f"fitted on {method.curve.lit_pairs} lit pixels of {os.path.basename(dmsp_path)} "
        f"against the mean of {len(viirs_paths)} VIIRS raster(s) ({names})"
    )
    return dataclasses.replace(method.curve, source=source)
