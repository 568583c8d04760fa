"""VIIRS radiance raster -> DMSP-OLS-like stable-lights DN raster (the sensor model applied to real data).

This is how harmonised DMSP/VIIRS series extend DMSP past 2013 (Li et al. 2020), and how the training
package makes semi-real pairs. The output is on a 30″ EPSG:4326 grid on the DMSP product lattice covering
the input; the radiance is first warped onto the nested 15″ grid, then blurred, aggregated, put through
the saturating response and digitised (sensors.py), block by block with a margin wide enough for the
blooming halo, so memory does not grow with the area. Deterministic: no geolocation jitter.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Callable

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from ..errors import CancelledError, InputError
from ..raster.grids import (
    DMSP_LATTICE_ORIGIN,
    DMSP_PIXEL_DEG,
    WGS84,
    AlignedReader,
    Grid,
    _snap,
    inspect_raster,
    lattice,
    value_range,
)
from ..raster.output import RasterWriter, check_output_path
from ..sensor.sensors import DmspParameters, aggregate, dmsp_blur, dmsp_digitise, dmsp_response, fwhm_to_sigma, pixel_size_km
from .fuse import FuseResult, ProgressCallback, plugin_version

DMSP_NODATA = 255
BLOCK = 256  # output (30″) pixels per block side
RADIANCE_PLAUSIBLE = (-50.0, 1e6)  # nW/cm²/sr; VIIRS composites stay well inside


def check_radiance_values(info) -> None:
    stats = value_range(info)
    if stats.valid_pixels == 0:
        raise InputError(f"The VIIRS raster {info.path} has no valid pixels (all nodata); nothing to simulate.")
    if stats.minimum < RADIANCE_PLAUSIBLE[0] or stats.maximum > RADIANCE_PLAUSIBLE[1]:
        raise InputError(
            f"The VIIRS raster {info.path} has values from {stats.minimum:g} to {stats.maximum:g}, not radiance in "
            "nW/cm²/sr. Use a VIIRS DNB radiance composite (avg_rade9h)."
        )
    coarse = info.crs.is_geographic and abs(info.transform.a) > 0.9 * DMSP_PIXEL_DEG
    if coarse and np.dtype(info.dtype).kind in "ui" and stats.maximum <= 63:
        raise InputError(
            f"The raster {info.path} looks like DMSP-OLS stable lights (30″ grid, integer DN 0–63), not VIIRS "
            "radiance; give a VIIRS DNB radiance raster (15″, nW/cm²/sr)."
        )


def fine_resampling(info) -> Resampling:
    """How radiance is read onto the 15″ grid nested in the DMSP lattice: averaged from finer rasters,
    interpolated from 15″ ones (a half-pixel shift is common between products' lattices)."""
    return Resampling.average if abs(info.transform.a) < DMSP_PIXEL_DEG / 2 * 0.75 else Resampling.bilinear


def dmsp_grid_covering(info) -> Grid:
    bounds = info.bounds_in(WGS84)
    base = lattice(DMSP_PIXEL_DEG, DMSP_LATTICE_ORIGIN)
    col0, col1, row0, row1 = _snap(bounds, base, None)
    return Grid(WGS84, base * Affine.translation(col0, row0), col1 - col0, row1 - row0)


def simulate_dmsp_raster(
    viirs_path: str,
    output: str,
    satellite: str | None = None,
    year: int | None = None,
    params: DmspParameters | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> FuseResult:
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    info = inspect_raster(viirs_path, "VIIRS")
    path = check_output_path(output, [viirs_path], overwrite)
    check_radiance_values(info)
    params = (params or DmspParameters.calibrated()).with_satellite(satellite, year)
    params = replace(params, geolocation_sigma_km=0.0)
    out_grid = dmsp_grid_covering(info)
    # Margin (in 15″ pixels, even) wide enough for the halo: 4σ at the equator's pixel size.
    sigma_px = fwhm_to_sigma(params.halo_fwhm_km) / pixel_size_km(0.0, DMSP_PIXEL_DEG / 2)[1]
    margin = int(np.ceil(4 * sigma_px / 2)) * 2 + 2
    fine = Grid(
        WGS84,
        out_grid.transform * Affine.scale(0.5) * Affine.translation(-margin, -margin),
        out_grid.width * 2 + 2 * margin,
        out_grid.height * 2 + 2 * margin,
    )
    resampling = fine_resampling(info)
    tags = {
        "NLF_METHOD": "simulate_dmsp",
        "NLF_VIIRS": os.path.abspath(viirs_path),
        "NLF_DMSP_SENSOR": repr(params.to_dict()),
        "NLF_SOFTWARE": f"Nightlight Fusion {plugin_version()}",
    }
    total = out_grid.block_count(BLOCK)
    with (
        AlignedReader(info, fine, resampling) as reader,
        RasterWriter(
            path,
            out_grid,
            tags,
            f"DMSP-OLS-like stable lights DN ({params.satellite} {params.year})",
            units="DN",
            dtype="uint8",
            nodata=DMSP_NODATA,
        ) as writer,
    ):
        for i, window in enumerate(out_grid.blocks(BLOCK)):
            if is_cancelled is not None and is_cancelled():
                raise CancelledError("Cancelled by the user; no output was written.")
            radiance = reader.read(
                Window(
                    2 * window.col_off,
                    2 * window.row_off,
                    2 * window.width + 2 * margin,
                    2 * window.height + 2 * margin,
                )
            )
            top = out_grid.transform.f + out_grid.transform.e * (window.row_off + window.height / 2)
            pixel_km = pixel_size_km(top, DMSP_PIXEL_DEG / 2)
            blurred = aggregate(dmsp_blur(radiance, pixel_km, params))
            observed = aggregate(np.where(np.isfinite(radiance), 1.0, np.nan).astype(np.float32))
            crop = (slice(margin // 2, margin // 2 + window.height), slice(margin // 2, margin // 2 + window.width))
            dn = dmsp_digitise(dmsp_response(blurred[crop], params), params)
            dn[~np.isfinite(observed[crop])] = DMSP_NODATA
            writer.write(dn, window)
            report(0.95 * (i + 1) / total, f"Block {i + 1}/{total}")
        writer.finish()
    report(1.0, "Done")
    return FuseResult(
        str(path), "simulate_dmsp", out_grid, time.perf_counter() - started, [f"DMSP sensor: {params.to_dict()}"], tags
    )
