"""Semi-real evaluation scenes from the Greece hold-out region (training.real_sources.GREECE_HOLDOUT).

Truth: the 12-month 2017 Greece VIIRS mean. DMSP: simulated from it by the calibrated sensor model (the
same `simulate_dmsp_raster` the users' command runs), for a DMSP-era satellite-year. Reference: the truth
changed the way the temporal model changes scenes (smooth growth/dimming field and an overall trend) —
no second real VIIRS year is available here, so the reference is semi-synthetic, and said so in the report.
Scenes are written in the same layout as `simulate pairs` (GeoTIFFs + manifest.json).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster

from ..real_sources import GREECE_HOLDOUT, greece_mean
from .scenes import smooth_noise

SATELLITE, YEAR, REFERENCE_YEAR = "F15", 2005, 2017
MARGIN = 32  # 15″ pixels of context around each scene so the DMSP halo comes from real light


def write_greece_holdout(real_dir: Path, out: Path, size: int = 96, seed: int = 0, overwrite: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not overwrite:
        raise FileExistsError(f"{manifest_path} exists; choose another --out or pass --overwrite")
    mean, grid = greece_mean(str(real_dir))
    t = grid.transform
    col0 = int(np.ceil((GREECE_HOLDOUT[0] - t.c) / t.a))
    col1 = int(np.floor((GREECE_HOLDOUT[2] - t.c) / t.a))
    row0 = int(np.ceil((GREECE_HOLDOUT[3] - t.f) / t.e))
    row1 = int(np.floor((GREECE_HOLDOUT[1] - t.f) / t.e))
    rng = np.random.default_rng(seed)
    scenes = []
    for row in range(row0, row1 - size + 1, size):
        for col in range(col0, col1 - size + 1, size):
            truth = mean[row : row + size, col : col + size]
            if np.isfinite(truth).mean() < 0.8:
                continue
            index = len(scenes)
            names = {key: f"greece_{index:03d}_{key}.tif" for key in ("dmsp", "viirs_reference", "viirs_truth")}
            window_transform = rasterio.windows.transform(Window(col, row, size, size), t)
            profile = dict(
                driver="GTiff",
                count=1,
                dtype="float32",
                nodata=np.nan,
                crs=grid.crs,
                compress="deflate",
                predictor=3,
                width=size,
                height=size,
                transform=window_transform,
            )
            with rasterio.open(out / names["viirs_truth"], "w", **profile) as dst:
                dst.write(truth, 1)
            change = np.exp(0.25 * smooth_noise(rng, size, size / 6) + rng.normal(0.15, 0.15))
            with rasterio.open(out / names["viirs_reference"], "w", **profile) as dst:
                dst.write((truth * change).astype(np.float32), 1)
            with tempfile.TemporaryDirectory() as tmp:  # DMSP sees the light around the scene too
                context = Window(col - MARGIN, row - MARGIN, size + 2 * MARGIN, size + 2 * MARGIN)
                source = Path(tmp) / "context.tif"
                with rasterio.open(
                    source,
                    "w",
                    **{
                        **profile,
                        "width": context.width,
                        "height": context.height,
                        "transform": rasterio.windows.transform(context, t),
                    },
                ) as dst:
                    dst.write(
                        mean[
                            context.row_off : context.row_off + context.height, context.col_off : context.col_off + context.width
                        ],
                        1,
                    )
                simulate_dmsp_raster(str(source), str(out / names["dmsp"]), SATELLITE, YEAR, overwrite=True)
            scenes.append(
                {
                    "index": index,
                    "files": names,
                    "year": YEAR,
                    "reference_year": REFERENCE_YEAR,
                    "satellite": SATELLITE,
                    "window": [col, row, size, size],
                }
            )
    manifest = {
        "generator": "training.simulate greece",
        "size": size,
        "seed": seed,
        "holdout_bounds": GREECE_HOLDOUT,
        "count": len(scenes),
        "scenes": scenes,
        "note": "truth = real VIIRS 2017 mean; DMSP simulated; reference = truth with simulated change",
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest_path
