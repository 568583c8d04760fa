"""What every real-temporal scene is made of (`training.simulate.real_temporal` builds the sets): a real truth
window, a real reference of another date or none, and a DMSP simulated from the truth and the real light around
it by the project's sensor model (`core.dmsp_like.simulate_dmsp_raster`, the command users run), with sensor
parameters drawn from the calibrated range (even scenes) or outside it (odd). Each scene records its truth and
reference years, the signed gap (reference year − truth year; None without a reference) and its gap class.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window, from_bounds

from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.sensor.sensors import DmspParameters

from ..real_sources import REAL_TEMPORAL_HOLDOUT
from .sensors_random import outside_training_range, random_dmsp_parameters

MARGIN = 32  # 15″ pixels of real context around a window, so the DMSP halo comes from real light
DMSP_YEARS = (1992, 2013)
GAP_CLASSES = {"1": "1 year", "2-5": "2–5 years", "6+": "≥ 6 years", "none": "no reference"}
NO_REFERENCE = GAP_CLASSES["none"]


def gap_class(signed_gap_years: float | None) -> str:
    """The gap class of a scene from its signed gap (reference year − DMSP/truth year; None: no reference):
    '1 year' (0–1 years apart, either way), '2–5 years', '≥ 6 years' or 'no reference'."""
    if signed_gap_years is None:
        return NO_REFERENCE
    gap = abs(float(signed_gap_years))
    if not np.isfinite(gap):
        raise ValueError(f"a gap must be a number of years, got {signed_gap_years}")
    if gap < 1.5:
        return GAP_CLASSES["1"]
    return GAP_CLASSES["2-5"] if gap < 5.5 else GAP_CLASSES["6+"]


def scene_years(truth_year: int, reference_year: int | None) -> dict:
    signed = None if reference_year is None else reference_year - truth_year
    return {
        "truth_year": truth_year,
        "reference_year": reference_year,
        "gap_years": None if signed is None else abs(signed),
        "signed_gap_years": signed,
        "gap_class": gap_class(signed),
    }


def _profile(src_profile: dict, width: int, height: int, transform) -> dict:
    return dict(
        driver="GTiff",
        count=1,
        dtype="float32",
        nodata=np.nan,
        crs=src_profile["crs"],
        compress="deflate",
        predictor=3,
        width=width,
        height=height,
        transform=transform,
    )


def draw_sensor(seed: int, index: int) -> DmspParameters:
    rng = np.random.default_rng([seed, index])
    year = int(rng.integers(DMSP_YEARS[0], DMSP_YEARS[1] + 1))
    return random_dmsp_parameters(rng, year) if index % 2 == 0 else outside_training_range(rng, year)


def write_scene(
    out: Path,
    index: int,
    truth: np.ndarray,
    reference: np.ndarray | None,
    context: np.ndarray,
    profile: dict,
    window_transform,
    context_transform,
    params: DmspParameters,
    meta: dict,
) -> dict:
    """One scene's files (no reference file when `reference` is None) and its manifest entry."""
    keys = ("dmsp", "viirs_truth") if reference is None else ("dmsp", "viirs_reference", "viirs_truth")
    names = {key: f"real_{index:03d}_{key}.tif" for key in keys}
    height, width = truth.shape
    for key, data in (("viirs_truth", truth), ("viirs_reference", reference)):
        if data is None:
            continue
        with rasterio.open(out / names[key], "w", **_profile(profile, width, height, window_transform)) as dst:
            dst.write(data.astype(np.float32), 1)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "context.tif"
        with rasterio.open(source, "w", **_profile(profile, context.shape[1], context.shape[0], context_transform)) as dst:
            dst.write(np.nan_to_num(context, nan=0.0).astype(np.float32), 1)
        simulate_dmsp_raster(str(source), str(out / names["dmsp"]), params=params, overwrite=True)
    return {
        "index": index,
        "files": names,
        "year": params.year,
        "satellite": params.satellite,
        "dmsp_parameters": params.to_dict(),
        "sensor_draw": "calibrated range" if index % 2 == 0 else "outside the training range",
        **meta,
    }


def window_with_context(src, window: Window) -> tuple[np.ndarray, Window]:
    context = Window(
        max(window.col_off - MARGIN, 0),
        max(window.row_off - MARGIN, 0),
        min(window.col_off + window.width + MARGIN, src.width) - max(window.col_off - MARGIN, 0),
        min(window.row_off + window.height + MARGIN, src.height) - max(window.row_off - MARGIN, 0),
    )
    return src.read(1, window=context, masked=False).astype(np.float32), context


def holdout_window(src, region: str, margin: int = MARGIN) -> Window:
    """The hold-out region `region` on `src`'s grid (pixels wholly inside it, clipped to the raster), less
    `margin` pixels each side: the window and its DMSP context then lie inside the hold-out."""
    west, south, east, north = REAL_TEMPORAL_HOLDOUT[region]
    full = from_bounds(west, south, east, north, src.transform)
    col0, row0 = int(np.ceil(full.col_off - 1e-6)), int(np.ceil(full.row_off - 1e-6))
    col1 = int(np.floor(full.col_off + full.width + 1e-6))
    row1 = int(np.floor(full.row_off + full.height + 1e-6))
    col0, row0, col1, row1 = max(col0, 0), max(row0, 0), min(col1, src.width), min(row1, src.height)
    return Window(col0 + margin, row0 + margin, col1 - col0 - 2 * margin, row1 - row0 - 2 * margin)
