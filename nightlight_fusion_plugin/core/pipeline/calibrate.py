"""The other DMSP commands: intercalibrate a DMSP raster on its own grid, fit a DN->radiance curve against VIIRS
(`make default-curve`), and the satellite-year a file stands for. Share fuse's checks and output."""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import ExitStack
from typing import Callable

from rasterio.enums import Resampling

from ..errors import CancelledError, InputError
from ..methods.baseline import TraditionalFusion
from ..raster.grids import AlignedReader, Grid, MeanReader, inspect_raster, output_grid
from ..raster.output import RasterWriter, check_output_path
from ..sensor.calibration import RadianceCurve
from .fuse import FuseResult, ProgressCallback, check_dmsp_values, plugin_version, resolve_intercalibration


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
