"""Writing simulated pairs as GeoTIFFs with a manifest (`python -m training.simulate pairs`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from nightlight_fusion_plugin.core.raster.grids import DMSP_LATTICE_ORIGIN, DMSP_PIXEL_DEG, VIIRS_PIXEL_DEG

from .pairs import ScenePair, make_pair

FILES = ("dmsp", "viirs_reference", "viirs_truth")


def scene_origin(index: int, size: int, latitude: float) -> tuple[float, float]:
    """Where scene `index` is placed: on the DMSP product lattice at its latitude, side by side in longitude
    (synthetic scenes are not real places; distinct positions keep them apart in a GIS)."""
    span = size * VIIRS_PIXEL_DEG
    west = DMSP_LATTICE_ORIGIN[0] + 1.0 + (index * (span + 0.1)) % 350.0
    north = latitude + span / 2
    snap = DMSP_PIXEL_DEG
    return (
        DMSP_LATTICE_ORIGIN[0] + round((west - DMSP_LATTICE_ORIGIN[0]) / snap) * snap,
        DMSP_LATTICE_ORIGIN[1] - round((DMSP_LATTICE_ORIGIN[1] - north) / snap) * snap,
    )


def write_pair(pair: ScenePair, directory: Path, index: int) -> dict:
    size = pair.viirs_truth.shape[0]
    west, north = scene_origin(index, size, pair.latitude)
    stem = f"scene_{index:05d}"
    names = {key: f"{stem}_{key}.tif" for key in FILES}
    common = dict(driver="GTiff", count=1, crs="EPSG:4326", compress="deflate", tiled=False)
    with rasterio.open(
        directory / names["dmsp"],
        "w",
        width=size // 2,
        height=size // 2,
        dtype="uint8",
        nodata=255,
        transform=from_origin(west, north, DMSP_PIXEL_DEG, DMSP_PIXEL_DEG),
        **common,
    ) as dst:
        dst.write(pair.dmsp_dn, 1)
        dst.update_tags(NLF_CONTENT=f"simulated DMSP-OLS stable lights DN, {pair.satellite} {pair.year}")
    for key, data, year in (
        ("viirs_reference", pair.viirs_reference, pair.reference_year),
        ("viirs_truth", pair.viirs_truth, pair.year),
    ):
        with rasterio.open(
            directory / names[key],
            "w",
            width=size,
            height=size,
            dtype="float32",
            nodata=np.nan,
            transform=from_origin(west, north, VIIRS_PIXEL_DEG, VIIRS_PIXEL_DEG),
            predictor=3,
            **common,
        ) as dst:
            dst.write(data, 1)
            dst.update_tags(NLF_CONTENT=f"simulated VIIRS DNB radiance nW/cm2/sr, year {year}")
    return {
        "index": index,
        "files": names,
        "year": pair.year,
        "reference_year": pair.reference_year,
        "satellite": pair.satellite,
        "latitude": round(pair.latitude, 4),
        **pair.meta,
        "dmsp_parameters": pair.dmsp_parameters.to_dict(),
        "viirs_parameters": {k: v for k, v in pair.viirs_parameters.__dict__.items()},
    }


def write_pairs(
    out: Path,
    count: int,
    size: int,
    seed: int,
    spread: float = 1.0,
    robustness_holdout: bool = False,
    overwrite: bool = False,
    min_gap: int = 1,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not overwrite:
        raise FileExistsError(f"{manifest_path} exists; choose another --out or pass --overwrite")
    scenes = [
        write_pair(
            make_pair(seed * 1_000_003 + i, size, spread=spread, robustness_holdout=robustness_holdout, min_gap=min_gap), out, i
        )
        for i in range(count)
    ]
    manifest = {
        "generator": "training.simulate pairs",
        "count": count,
        "size": size,
        "seed": seed,
        "spread": spread,
        "robustness_holdout": robustness_holdout,
        "min_gap": min_gap,
        "scenes": scenes,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest_path
