"""The real-temporal evaluation set: truth and reference are both *real* VIIRS of different dates; only the
DMSP is simulated, from the truth, by the project's sensor model (`core.dmsp_like.simulate_dmsp_raster`, the
command users run), with sensor parameters drawn from the calibrated range (even scenes) and outside it (odd).

python -m training.simulate real-temporal --region sudan --out DIR          # Black Marble Feb 2024, ref Feb 2023
python -m training.simulate real-temporal --region mumbai --gap 5 --out DIR  # annual medians 5 years apart

Scenes come only from `training.real_sources.REAL_TEMPORAL_HOLDOUT` (never trained on):
- sudan: four 768² windows of tile 20–30N/30–40E chosen by their light (the two brightest: Jeddah/Mecca and the
  Nile at Cairo's edge; the median; the darkest mostly-valid one: desert), and the Libyan flare field
  (704², tile 20–30N/20–30E); 2.9 Mpx. A one-year gap (truth Feb 2024, reference Feb 2023).
- mumbai: the whole 48×101 clip (the cube is no bigger), truth 2013 with the reference 2013+gap and truth 2022
  with 2022−gap, each with two sensor draws: 4 scenes, 19 kpx per gap.
NaN fill stays NaN in truth and reference (excluded from scoring; a reference hole is a hole for the engine);
the DMSP simulation counts truth fill as dark, as the real DMSP would see the sea or a masked pixel.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.sensor.sensors import DmspParameters

from ..real_sources import REAL_TEMPORAL_HOLDOUT
from .sensors_random import outside_training_range, random_dmsp_parameters

SUDAN_FILE = "sudan_blackmarble/vnp46a3_{date}_02_{tile}.tif"
SUDAN_TILE, FLARE_TILE = "20N30N_30E40E", "20N30N_20E30E"
SUDAN_TRUTH_DATE, SUDAN_REFERENCE_DATE = 2024, 2023
WINDOW, FLARE_WINDOW = 768, 704
MARGIN = 32  # 15″ pixels of real context around a window, so the DMSP halo comes from real light
MUMBAI_FILE = "mumbai/viirs_dnb_annual_median_{year}.tif"
MUMBAI_YEARS = (2013, 2022)
MUMBAI_GAPS = (1, 3, 5, 9)
DMSP_YEARS = (1992, 2013)


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


def _sensor(seed: int, index: int) -> DmspParameters:
    rng = np.random.default_rng([seed, index])
    year = int(rng.integers(DMSP_YEARS[0], DMSP_YEARS[1] + 1))
    return random_dmsp_parameters(rng, year) if index % 2 == 0 else outside_training_range(rng, year)


def _write_scene(
    out: Path,
    index: int,
    truth: np.ndarray,
    reference: np.ndarray,
    context: np.ndarray,
    profile: dict,
    window_transform,
    context_transform,
    params: DmspParameters,
    meta: dict,
) -> dict:
    names = {key: f"real_{index:03d}_{key}.tif" for key in ("dmsp", "viirs_reference", "viirs_truth")}
    height, width = truth.shape
    for key, data in (("viirs_truth", truth), ("viirs_reference", reference)):
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


def _window_with_context(src, window: Window) -> tuple[np.ndarray, Window]:
    context = Window(
        max(window.col_off - MARGIN, 0),
        max(window.row_off - MARGIN, 0),
        min(window.col_off + window.width + MARGIN, src.width) - max(window.col_off - MARGIN, 0),
        min(window.row_off + window.height + MARGIN, src.height) - max(window.row_off - MARGIN, 0),
    )
    return src.read(1, window=context, masked=False).astype(np.float32), context


def sudan_windows(truth_path: Path) -> list[tuple[str, Window]]:
    """Four windows of the hold-out tile chosen by light: brightest two, median, darkest (≥ 60 % valid)."""
    offsets = (48, 48 + WINDOW, 48 + 2 * WINDOW)
    candidates = []
    with rasterio.open(truth_path) as src:
        data = src.read(1).astype(np.float32)
    for row in offsets:
        for col in offsets:
            block = data[row : row + WINDOW, col : col + WINDOW]
            valid = float(np.isfinite(block).mean())
            if valid >= 0.6:
                candidates.append((float(np.nansum(block)), Window(col, row, WINDOW, WINDOW)))
    candidates.sort(key=lambda c: c[0])
    picks = [("bright core", candidates[-1][1]), ("bright core", candidates[-2][1])]
    picks += [("median light", candidates[len(candidates) // 2][1]), ("dark", candidates[0][1])]
    return picks


def write_real_temporal(
    real_dir: Path, out: Path, region: str, gap: int | None = None, seed: int = 0, overwrite: bool = False
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not overwrite:
        raise FileExistsError(f"{manifest_path} exists; choose another --out or pass --overwrite")
    scenes: list[dict] = []
    if region == "sudan":
        jobs = [
            (SUDAN_TILE, kind, w)
            for kind, w in sudan_windows(real_dir / SUDAN_FILE.format(date=SUDAN_TRUTH_DATE, tile=SUDAN_TILE))
        ]
        jobs.append((FLARE_TILE, "flares", Window(MARGIN, MARGIN, FLARE_WINDOW, FLARE_WINDOW)))
        for tile, kind, window in jobs:
            truth_path = real_dir / SUDAN_FILE.format(date=SUDAN_TRUTH_DATE, tile=tile)
            reference_path = real_dir / SUDAN_FILE.format(date=SUDAN_REFERENCE_DATE, tile=tile)
            with rasterio.open(truth_path) as src, rasterio.open(reference_path) as ref:
                truth = src.read(1, window=window).astype(np.float32)
                reference = ref.read(1, window=window).astype(np.float32)
                context, context_window = _window_with_context(src, window)
                index = len(scenes)
                scenes.append(
                    _write_scene(
                        out,
                        index,
                        truth,
                        reference,
                        context,
                        src.profile,
                        rasterio.windows.transform(window, src.transform),
                        rasterio.windows.transform(context_window, src.transform),
                        _sensor(seed, index),
                        {
                            "region": "sudan",
                            "kind": kind,
                            "tile": tile,
                            "window": [window.col_off, window.row_off, window.width, window.height],
                            "truth_date": f"{SUDAN_TRUTH_DATE}-02",
                            "reference_date": f"{SUDAN_REFERENCE_DATE}-02",
                            "gap_years": 1,
                        },
                    )
                )
    elif region == "mumbai":
        if gap not in MUMBAI_GAPS:
            raise ValueError(f"--gap must be one of {MUMBAI_GAPS} for mumbai, got {gap}")
        for truth_year, reference_year in ((MUMBAI_YEARS[0], MUMBAI_YEARS[0] + gap), (MUMBAI_YEARS[1], MUMBAI_YEARS[1] - gap)):
            with (
                rasterio.open(real_dir / MUMBAI_FILE.format(year=truth_year)) as src,
                rasterio.open(real_dir / MUMBAI_FILE.format(year=reference_year)) as ref,
            ):
                truth = src.read(1).astype(np.float32)
                reference = ref.read(1).astype(np.float32)
                for _draw in range(2):
                    index = len(scenes)
                    scenes.append(
                        _write_scene(
                            out,
                            index,
                            truth,
                            reference,
                            truth,
                            src.profile,
                            src.transform,
                            src.transform,
                            _sensor(seed + 1000 * gap, index),
                            {
                                "region": "mumbai",
                                "kind": "megacity",
                                "truth_date": str(truth_year),
                                "reference_date": str(reference_year),
                                "gap_years": gap,
                            },
                        )
                    )
    else:
        raise ValueError(f"unknown region '{region}': sudan or mumbai")
    pixels = 0
    for scene in scenes:
        with rasterio.open(out / scene["files"]["viirs_truth"]) as src:
            pixels += src.width * src.height
    manifest = {
        "generator": "training.simulate real-temporal",
        "region": region,
        "gap_years": 1 if region == "sudan" else gap,
        "seed": seed,
        "holdout_regions": REAL_TEMPORAL_HOLDOUT,
        "pixels": pixels,
        "count": len(scenes),
        "scenes": scenes,
        "note": "truth and reference = real VIIRS of different dates; DMSP simulated from the truth",
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest_path
