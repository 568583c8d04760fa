"""Measure the prior of core/scene_gain.py on training regions only: how far the scene-wide DMSP/reference log
gain g moves because of the sensor, and how far because of real change.

python -m training.simulate change-prior    # writes nightlight_fusion_plugin/core/sensor/data/reference_change_prior.json

Scenes: 512² windows of the Sudan Black Marble tiles that are not hold-out (`training.data.holdout`; the Libyan
flare box is skipped window by window), kept when ≥ 60 % valid and lit. For each window and draw:
- σ_cal: the DMSP simulated from the Feb 2024 truth with sensor parameters drawn as training draws them
  (`random_dmsp_parameters`, spread 1) against the same truth as reference: no real change, so g is the
  sensor's alone. RMS over windows and draws (a bias counts: the prior is centred on 0).
- σ_change: the DMSP simulated with core's calibrated sensor against the Feb 2023 reference, minus the same
  against the truth itself: the real one-year change as the sensor sees it. RMS over windows, then grown as
  a random walk to ASSUMED_GAP_YEARS, because the engine is not told the gap (DMSP years end in 2013, VIIRS
  starts in 2012: most requests are years apart).
- The same two splits pixel by pixel for reference-change's Wiener weight: σ_local_noise, the spread of the
  local log ratio (scene median removed) of the drawn sensors against the unchanged truth; σ_local_change,
  that of the model sensor's log ratio against the reference minus against the truth, grown the same way.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from nightlight_fusion_plugin.core.methods.reference_change import (
    EPSILON_DN,
    ReferenceChangeFusion,
    expanded,
    grid_pixel_km,
    reference_dmsp_agreement,
)
from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.pipeline.fuse import resolve_intercalibration
from nightlight_fusion_plugin.core.raster.grids import AlignedReader, Grid, inspect_raster
from nightlight_fusion_plugin.core.sensor.calibration import SATURATION_THRESHOLD, default_curve
from nightlight_fusion_plugin.core.sensor.scene_gain import PRIOR_JSON
from nightlight_fusion_plugin.core.sensor.sensors import DmspParameters

from ..real_sources import overlaps_holdout, sudan_tiles
from .sensors_random import random_dmsp_parameters

WINDOW = 512
MARGIN = 32
DRAWS = 4
ASSUMED_GAP_YEARS = 5
MIN_LIT_SUM = 2000.0  # nW/cm²/sr summed over the window: a window with a town or more


def _windows(path: Path) -> list[Window]:
    with rasterio.open(path) as src:
        data = src.read(1).astype(np.float32)
        transform = src.transform
    out = []
    for row in range(MARGIN, data.shape[0] - WINDOW - MARGIN + 1, WINDOW):
        for col in range(MARGIN, data.shape[1] - WINDOW - MARGIN + 1, WINDOW):
            block = data[row : row + WINDOW, col : col + WINDOW]
            w = Window(col, row, WINDOW, WINDOW)
            if np.isfinite(block).mean() < 0.6 or np.nansum(np.clip(block, 0, None)) < MIN_LIT_SUM:
                continue
            if overlaps_holdout(rasterio.windows.bounds(w, transform)[:4]) is not None:
                continue
            out.append(w)
    return out


def _write(path: Path, data: np.ndarray, profile: dict, transform) -> None:
    p = {
        **profile,
        "width": data.shape[1],
        "height": data.shape[0],
        "transform": transform,
        "count": 1,
        "dtype": "float32",
        "driver": "GTiff",
        "nodata": None,
    }
    p.pop("blockxsize", None), p.pop("blockysize", None), p.pop("tiled", None)
    with rasterio.open(path, "w", **p) as dst:
        dst.write(np.nan_to_num(data, nan=0.0).astype(np.float32) if "context" in path.name else data.astype(np.float32), 1)


def _local_log_ratio(dmsp: Path, reference: Path, params: DmspParameters) -> np.ndarray:
    """reference-change's local log ratio on the reference's grid, over lit pixels unsaturated on both sides, as
    the engine reads it (the margin read beyond the window's edges, mirrored), scene-wide gain uncorrected."""
    ref_info = inspect_raster(str(reference), "reference")
    grid = Grid(ref_info.crs, ref_info.transform, ref_info.width, ref_info.height)
    intercal = resolve_intercalibration(str(dmsp), params.satellite, params.year)
    method = ReferenceChangeFusion(intercal)
    method.traditional.curve = default_curve()  # only for holes and new light, which the ratio does not use
    margin = method.margin(grid)
    wide = expanded(grid, margin)
    with (
        AlignedReader(inspect_raster(str(dmsp), "dmsp"), wide, Resampling.bilinear) as dmsp_reader,
        AlignedReader(ref_info, wide, Resampling.nearest) as ref_reader,
    ):
        window = Window(0, 0, wide.width, wide.height)
        dn, radiance = dmsp_reader.read(window), ref_reader.read(window)
    fields = method.change_fields(dn, radiance, grid_pixel_km(grid, grid.height / 2))
    crop = (slice(margin, margin + grid.height), slice(margin, margin + grid.width))
    dnc_s, sim_s = fields["dnc_s"][crop], fields["sim_s"][crop]
    lit = (dnc_s >= method.detect_dn()) | (sim_s >= method.detect_dn())
    ok = lit & (dn[crop] < SATURATION_THRESHOLD) & (fields["sim_raw"][crop] < SATURATION_THRESHOLD)
    ok &= np.isfinite(dnc_s) & fields["has_ref"][crop]
    ratio = np.log((dnc_s + EPSILON_DN) / (sim_s + EPSILON_DN))
    return np.where(ok, ratio, np.nan)


def _centred(values: np.ndarray) -> np.ndarray:
    """Finite values minus their median: the local part, the scene-wide level removed."""
    v = values[np.isfinite(values)]
    return v - np.median(v) if v.size else v


def _subsample(values: np.ndarray, rng: np.random.Generator, size: int = 20000) -> np.ndarray:
    return values if values.size <= size else rng.choice(values, size, replace=False)


def robust_sigma(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if values.size else float("nan")


def _log_gain(dmsp: Path, reference: Path, params: DmspParameters) -> float | None:
    ref_info = inspect_raster(str(reference), "reference")
    grid = Grid(ref_info.crs, ref_info.transform, ref_info.width, ref_info.height)
    intercal = resolve_intercalibration(str(dmsp), params.satellite, params.year)
    return reference_dmsp_agreement(inspect_raster(str(dmsp), "dmsp"), ref_info, grid, intercal).log_gain


def measure(real_dir: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    calibration, change, windows_used = [], [], []
    local_noise, local_change = [], []  # the centred local log ratios, subsampled
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for key, years in sorted(sudan_tiles(real_dir).items()):
            for window in _windows(years[2024]):
                context = Window(window.col_off - MARGIN, window.row_off - MARGIN, WINDOW + 2 * MARGIN, WINDOW + 2 * MARGIN)
                with rasterio.open(years[2024]) as src, rasterio.open(years[2023]) as ref:
                    truth = src.read(1, window=window).astype(np.float32)
                    reference = ref.read(1, window=window).astype(np.float32)
                    wide = src.read(1, window=context).astype(np.float32)
                    profile = src.profile
                    wt, ct = rasterio.windows.transform(window, src.transform), rasterio.windows.transform(context, src.transform)
                _write(tmp / "truth.tif", truth, profile, wt)
                _write(tmp / "reference.tif", reference, profile, wt)
                _write(tmp / "context.tif", wide, profile, ct)
                year = int(rng.integers(1992, 2014))
                nominal = replace(
                    random_dmsp_parameters(rng, year),
                    **{k: v for k, v in DmspParameters.calibrated().to_dict().items() if k not in ("satellite", "year")},
                )
                simulate_dmsp_raster(str(tmp / "context.tif"), str(tmp / "dmsp.tif"), params=nominal, overwrite=True)
                seen, still = (
                    _log_gain(tmp / "dmsp.tif", tmp / "reference.tif", nominal),
                    _log_gain(tmp / "dmsp.tif", tmp / "truth.tif", nominal),
                )
                if seen is not None and still is not None:
                    change.append(seen - still)
                # Real local change as the model sensor sees it: its log ratio against the reference minus its
                # log ratio against the truth itself (which removes what the model sensor alone makes).
                moved = _local_log_ratio(tmp / "dmsp.tif", tmp / "reference.tif", nominal)
                moved -= _local_log_ratio(tmp / "dmsp.tif", tmp / "truth.tif", nominal)
                local_change.append(_subsample(_centred(moved), rng))
                for _ in range(DRAWS):
                    params = random_dmsp_parameters(rng, int(rng.integers(1992, 2014)))
                    simulate_dmsp_raster(str(tmp / "context.tif"), str(tmp / "dmsp.tif"), params=params, overwrite=True)
                    g = _log_gain(tmp / "dmsp.tif", tmp / "truth.tif", params)
                    if g is not None:
                        calibration.append(g)
                    local_noise.append(_subsample(_centred(_local_log_ratio(tmp / "dmsp.tif", tmp / "truth.tif", params)), rng))
                windows_used.append([key, window.col_off, window.row_off])
    rms = lambda v: float(np.sqrt(np.mean(np.square(v)))) if v else float("nan")  # noqa: E731
    sigma_year = rms(change)
    # Robust spreads (1.4826 × median absolute deviation): Black Marble monthlies carry fires, flares and
    # cloud edges whose one-month log ratios of ±3 would set an RMS on their own.
    local_year = robust_sigma(np.concatenate(local_change))
    return {
        "sigma_local_noise": robust_sigma(np.concatenate(local_noise)),
        "sigma_local_noise_rms": float(np.sqrt(np.mean(np.concatenate(local_noise) ** 2))),
        "sigma_local_change_one_year_rms": float(np.sqrt(np.mean(np.concatenate(local_change) ** 2))),
        "sigma_local_change": local_year * float(np.sqrt(ASSUMED_GAP_YEARS)),
        "sigma_local_change_one_year": local_year,
        "sigma_calibration": rms(calibration),
        "sigma_change": sigma_year * float(np.sqrt(ASSUMED_GAP_YEARS)),
        "sigma_change_one_year": sigma_year,
        "assumed_gap_years": ASSUMED_GAP_YEARS,
        "calibration_mean": float(np.mean(calibration)) if calibration else None,
        "calibration_samples": len(calibration),
        "change_samples": len(change),
        "windows": windows_used,
        "seed": seed,
        "command": "python -m training.simulate change-prior",
    }


def write_prior(real_dir: Path, out: Path = PRIOR_JSON, seed: int = 0) -> dict:
    payload = measure(real_dir, seed)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    return payload
