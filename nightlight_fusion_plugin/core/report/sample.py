"""A small synthetic DMSP/VIIRS sample the project owns (no network, no real data), for the demo and tests.

It is a toy version of the training simulator: Zipf-sized settlements with bright cores and radial
decay, road corridors, rural scatter, a coast with dark sea and an offshore gas flare, grown from the
DMSP year to the VIIRS reference year. DMSP is made from the target-year radiance with a wide PSF and
blooming halo, 30″ aggregation, a saturating gain, background removal, 6-bit quantisation and the
inverse of the F15 2005 intercalibration. Placed at 0–1°E, 0–1°N (open ocean) so it is never mistaken
for a real place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from ..raster.grids import DMSP_PIXEL_DEG, VIIRS_PIXEL_DEG
from ..sensor.intercalibration import intercalibration_for

SAMPLE_FILES = {
    "dmsp": "dmsp_F15_2005_sample.tif",
    "reference": "viirs_2015_reference_sample.tif",
    "truth": "viirs_2005_truth_sample.tif",
}
ORIGIN = (0.0, 1.0)  # west, north (degrees)


@dataclass
class Settlement:
    row: float
    col: float
    peak: float  # nW/cm²/sr at the core
    radius: float  # pixels
    born: int  # year it first shows lights


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflected borders; conserves the total (the kernel sums to 1)."""
    radius = max(1, int(round(4 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, radius, mode="reflect")
    rows = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), 0, padded)
    return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), 1, rows)


def _settlements(rng: np.random.Generator, size: int, land: np.ndarray) -> list[Settlement]:
    out: list[Settlement] = []
    while len(out) < 40:
        row, col = rng.uniform(8, size - 8, 2)
        if not land[int(row), int(col)]:
            continue
        rank = len(out) + 1
        born = 2005 if rank <= 34 else int(rng.integers(2007, 2015))
        out.append(Settlement(row, col, 6 + 110 * rank**-0.8, 1.2 + 9 * rank**-0.6, born))
    return out


def _segment_distance(rows, cols, a: Settlement, b: Settlement) -> np.ndarray:
    d = np.array([b.row - a.row, b.col - a.col])
    t = np.clip(((rows - a.row) * d[0] + (cols - a.col) * d[1]) / max(d @ d, 1e-9), 0, 1)
    return np.hypot(rows - (a.row + t * d[0]), cols - (a.col + t * d[1]))


def radiance_field(year: int, size: int = 240, seed: int = 7) -> np.ndarray:
    """True radiance (nW/cm²/sr) on the 15″ grid for `year`; same seed -> same landscape, grown over time."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    land = cols + 12 * np.sin(rows / 25.0) < 0.82 * size
    towns = _settlements(rng, size, land)
    growth = rng.uniform(1.0, 1.05, len(towns))  # per-year growth factor of each town's peak
    scatter_seed = rng.integers(1 << 31)
    field = np.zeros((size, size))
    for i, town in enumerate(towns):
        if town.born > year:
            continue
        g = growth[i] ** (year - max(town.born, 2005))
        dist = np.hypot(rows - town.row, cols - town.col)
        field += town.peak * g * np.exp(-((dist / (town.radius * np.sqrt(g))) ** 1.3))
        if i > 0:  # a lit road to the nearest bigger town
            target = min(towns[:i], key=lambda t: np.hypot(t.row - town.row, t.col - town.col))
            field += 1.2 * g * np.exp(-0.5 * (_segment_distance(rows, cols, town, target) / 0.8) ** 2)
    scatter_rng = np.random.default_rng(scatter_seed)
    rural = scatter_rng.lognormal(0.0, 0.6, field.shape) * (scatter_rng.random(field.shape) < 0.015 * (1 + (year - 2005) / 10))
    field = (field + rural) * land
    field[int(0.3 * size), int(0.93 * size)] += 400.0  # offshore gas flare
    return field.astype(np.float32)


def viirs_composite(radiance: np.ndarray, seed: int) -> np.ndarray:
    """VIIRS DNB annual composite: mild PSF, noise with a low-light floor, slightly negative background."""
    rng = np.random.default_rng(seed)
    observed = gaussian_blur(radiance, 0.6) + rng.normal(-0.03, 0.08, radiance.shape)
    return observed.astype(np.float32)


def dmsp_stable_lights(radiance: np.ndarray, satellite: str = "F15", year: int = 2005) -> np.ndarray:
    """DMSP-OLS stable lights DN (uint8, 30″) from 15″ radiance."""
    blurred = 0.75 * gaussian_blur(radiance, 2.5) + 0.25 * gaussian_blur(radiance, 8.0)  # footprint + halo
    coarse = blurred.reshape(blurred.shape[0] // 2, 2, blurred.shape[1] // 2, 2).mean(axis=(1, 3))
    reference_dn = np.clip(4.0 * coarse**0.75, 0, 63)
    reference_dn[reference_dn < 3.0] = 0.0  # background removal of the stable-lights product
    raw = intercalibration_for(satellite, year).invert(reference_dn)
    return np.clip(np.rint(raw), 0, 63).astype(np.uint8)


def write_sample(out_dir: str | os.PathLike, size: int = 240, seed: int = 7, overwrite: bool = False) -> dict[str, Path]:
    """Write the three sample GeoTIFFs (DMSP 2005, VIIRS 2015 reference, VIIRS 2005 truth) into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in SAMPLE_FILES.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"Sample files already exist: {', '.join(existing)}; pass --overwrite to replace them.")
    truth = viirs_composite(radiance_field(2005, size, seed), seed + 1)
    reference = viirs_composite(radiance_field(2015, size, seed), seed + 2)
    dmsp = dmsp_stable_lights(radiance_field(2005, size, seed))
    common = dict(driver="GTiff", count=1, crs="EPSG:4326", compress="deflate")
    tags = {"NLF_SYNTHETIC": f"Nightlight Fusion synthetic sample, seed {seed}; not a real place"}
    viirs_transform = from_origin(*ORIGIN, VIIRS_PIXEL_DEG, VIIRS_PIXEL_DEG)
    for key, data in (("truth", truth), ("reference", reference)):
        with rasterio.open(
            paths[key],
            "w",
            width=size,
            height=size,
            dtype="float32",
            nodata=np.nan,
            transform=viirs_transform,
            predictor=3,
            **common,
        ) as dst:
            dst.write(data, 1)
            dst.update_tags(**tags, NLF_CONTENT=f"VIIRS-like radiance nW/cm2/sr, year {2005 if key == 'truth' else 2015}")
    with rasterio.open(
        paths["dmsp"],
        "w",
        width=size // 2,
        height=size // 2,
        dtype="uint8",
        nodata=255,
        transform=from_origin(*ORIGIN, DMSP_PIXEL_DEG, DMSP_PIXEL_DEG),
        **common,
    ) as dst:
        dst.write(dmsp, 1)
        dst.update_tags(**tags, NLF_CONTENT="DMSP-OLS-like stable lights DN, F15 2005")
    return paths
