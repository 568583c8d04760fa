"""Datasets over real rasters: real DMSP/VIIRS GeoTIFF pairs, and semi-real pairs (real VIIRS truth, DMSP
simulated from it) over Greece with a geographic hold-out region.

Real pairs are read with rasterio window by window, warped onto the VIIRS grid by core's AlignedReader (the
same code the plugin's engine uses), with nodata kept as masks. Semi-real pairs need the whole 12-month
Greece mean (2465×1667, 16 MB) for cheap random tiles, so it is read once per process and cached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rasterio.enums import Resampling
from rasterio.windows import Window
from torch.utils.data import Dataset

from nightlight_fusion_plugin.core.raster.grids import (
    VIIRS_PIXEL_DEG,
    AlignedReader,
    MeanReader,
    inspect_raster,
    output_grid,
    upsample2_bilinear,
)
from nightlight_fusion_plugin.core.sensor.intercalibration import parse_satellite_year
from nightlight_fusion_plugin.core.sensor.sensors import pixel_size_km, simulate_dmsp

from ..real_sources import DEFAULT_REAL, GREECE_HOLDOUT, greece_mean
from ..simulate.pairs import MARGIN_PX
from ..simulate.scenes import smooth_noise
from ..simulate.sensors_random import outside_training_range, random_dmsp_parameters
from .tiles import augment, to_model_space

__all__ = ["DEFAULT_REAL", "GREECE_HOLDOUT", "RealPairs", "SemiRealGreece", "greece_mean"]


def _overlaps(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class RealPairs(Dataset):
    """Random tiles of a real DMSP raster with a real VIIRS truth (and optionally a reference), on the
    truth's grid. truth/reference may be several files (e.g. monthly composites): their mean is used."""

    def __init__(
        self,
        dmsp: str,
        truth: list[str],
        reference: list[str] | None = None,
        tile: int = 64,
        length: int = 100,
        seed: int = 0,
        satellite: str | None = None,
        year: int | None = None,
        exclude: tuple[float, float, float, float] | None = None,
        reference_dropout: float = 0.0,
        augment: bool = False,
        min_valid: float = 0.5,
    ):
        self.dmsp = inspect_raster(dmsp, "DMSP")
        self.truth = [inspect_raster(p, "VIIRS") for p in truth]
        self.reference = [inspect_raster(p, "VIIRS") for p in reference] if reference else None
        self.grid = output_grid(self.dmsp, self.truth[0])
        if self.grid.width < tile or self.grid.height < tile:
            raise ValueError(f"the DMSP/VIIRS overlap ({self.grid.width}×{self.grid.height}) is smaller than one tile ({tile})")
        parsed = parse_satellite_year(dmsp)
        self.satellite, self.year = satellite or parsed[0], year or parsed[1]
        self.tile, self.length, self.seed = tile, length, seed
        self.exclude, self.reference_dropout, self.augment = exclude, reference_dropout, augment
        self.min_valid = min_valid
        self._readers = None  # opened lazily: file handles cannot cross DataLoader worker processes

    def __len__(self) -> int:
        return self.length

    def _open(self):
        if self._readers is None:
            dmsp = AlignedReader(self.dmsp, self.grid).__enter__()
            truth = MeanReader([AlignedReader(t, self.grid, Resampling.nearest).__enter__() for t in self.truth])
            reference = (
                MeanReader([AlignedReader(r, self.grid, Resampling.bilinear).__enter__() for r in self.reference])
                if self.reference
                else None
            )
            self._readers = (dmsp, truth, reference)
        return self._readers

    def _window(self, rng: np.random.Generator) -> Window:
        for _ in range(1000):
            row = int(rng.integers(0, self.grid.height - self.tile + 1))
            col = int(rng.integers(0, self.grid.width - self.tile + 1))
            t = self.grid.transform
            bounds = (t.c + col * t.a, t.f + (row + self.tile) * t.e, t.c + (col + self.tile) * t.a, t.f + row * t.e)
            if self.exclude is None or not _overlaps(bounds, self.exclude):
                return Window(col, row, self.tile, self.tile)
        raise ValueError("no tile position outside the excluded region")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index, 11])
        dmsp, truth, reference = self._open()
        for _ in range(50):  # tiles mostly in nodata (outside a country, at sea) teach nothing
            window = self._window(rng)
            dmsp_dn, target = dmsp.read(window), truth.read(window)
            if (np.isfinite(dmsp_dn) & np.isfinite(target)).mean() >= self.min_valid:
                break
        ref = reference.read(window) if reference is not None and rng.random() >= self.reference_dropout else None
        arrays = to_model_space(dmsp_dn, self.satellite, self.year, ref, target)
        if self.augment:
            arrays = augment(arrays, rng)
        return {key: torch.from_numpy(value) for key, value in arrays.items()}


class SemiRealGreece(Dataset):
    """Greece VIIRS 2017 (12-month mean) as truth, DMSP simulated from it with randomised sensor parameters,
    and a reference made by perturbing the truth with the temporal model's kind of change (growth, dimming,
    new lights) — no second real VIIRS year is available here, so the reference is semi-synthetic.

    split: 'train' (tiles outside GREECE_HOLDOUT) or 'holdout' (tiles inside it).
    """

    def __init__(
        self,
        split: str = "train",
        tile: int = 64,
        length: int = 1000,
        seed: int = 0,
        real_dir: str | Path = DEFAULT_REAL,
        spread: float = 1.0,
        robustness_holdout: bool = False,
        reference_dropout: float = 0.3,
        augment: bool = True,
        dmsp_year: int = 2005,
        condition_version: int = 1,
    ):
        if split not in ("train", "holdout"):
            raise ValueError(f"split must be 'train' or 'holdout', got {split!r}")
        self.mean, self.grid = greece_mean(str(real_dir))
        self.split, self.tile, self.length, self.seed = split, tile, length, seed
        self.spread, self.robustness_holdout = spread, robustness_holdout
        self.reference_dropout, self.augment, self.dmsp_year = reference_dropout, augment, dmsp_year
        self.condition_version = condition_version

    def __len__(self) -> int:
        return self.length

    def _position(self, rng: np.random.Generator) -> tuple[int, int]:
        full = self.tile + 2 * MARGIN_PX
        t = self.grid.transform
        for _ in range(10_000):
            row = int(rng.integers(0, self.grid.height - full + 1)) // 2 * 2
            col = int(rng.integers(0, self.grid.width - full + 1)) // 2 * 2
            r0, c0 = row + MARGIN_PX, col + MARGIN_PX
            bounds = (t.c + c0 * t.a, t.f + (r0 + self.tile) * t.e, t.c + (c0 + self.tile) * t.a, t.f + r0 * t.e)
            # training tiles keep their whole context (the DMSP halo margin) out of the hold-out too
            context = (t.c + col * t.a, t.f + (row + full) * t.e, t.c + (col + full) * t.a, t.f + row * t.e)
            inside = _overlaps(context, GREECE_HOLDOUT)
            if self.split == "holdout":
                inside = (
                    bounds[0] >= GREECE_HOLDOUT[0]
                    and bounds[2] <= GREECE_HOLDOUT[2]
                    and bounds[1] >= GREECE_HOLDOUT[1]
                    and bounds[3] <= GREECE_HOLDOUT[3]
                )
            if inside != (self.split == "holdout"):
                continue
            window = self.mean[r0 : r0 + self.tile, c0 : c0 + self.tile]
            if np.isfinite(window).mean() >= 0.8:
                return row, col
        raise ValueError("no valid tile position found")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index, 13, self.split == "holdout"])
        row, col = self._position(rng)
        full = self.tile + 2 * MARGIN_PX
        radiance = self.mean[row : row + full, col : col + full]
        latitude = self.grid.transform.f + (row + full / 2) * self.grid.transform.e
        params = (
            outside_training_range(rng, self.dmsp_year)
            if self.robustness_holdout
            else random_dmsp_parameters(rng, self.dmsp_year, spread=self.spread)
        )
        dmsp = simulate_dmsp(np.nan_to_num(radiance), pixel_size_km(latitude, VIIRS_PIXEL_DEG), params, rng)
        crop, half = slice(MARGIN_PX, MARGIN_PX + self.tile), slice(MARGIN_PX // 2, (MARGIN_PX + self.tile) // 2)
        truth = radiance[crop, crop]
        dmsp_fine = upsample2_bilinear(dmsp[half, half].astype(np.float32))
        dmsp_fine[~np.isfinite(truth)] = np.nan
        reference = None
        if rng.random() >= self.reference_dropout:
            change = np.exp(0.25 * smooth_noise(rng, self.tile, self.tile / 6) + rng.normal(0.15, 0.15))
            reference = (truth * change).astype(np.float32)
        pixel_km = pixel_size_km(latitude, VIIRS_PIXEL_DEG)
        arrays = to_model_space(
            dmsp_fine, params.satellite, params.year, reference, truth, self.condition_version, pixel_km=pixel_km
        )
        if self.augment:
            arrays = augment(arrays, rng)
        return {key: torch.from_numpy(value) for key, value in arrays.items()}
