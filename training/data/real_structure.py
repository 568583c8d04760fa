"""Training pairs from real structure: Sudan Black Marble VIIRS (VNP46A3, February 2023 and 2024) and, with
`regions` including "kenya", Kenya's Black Marble annual composites (VNP46A4, 2020–2023) as real reference/target
pairs in both directions, DMSP simulated from the target with randomised sensor parameters.

The years are real temporal pairs (Sudan 1 year apart, Kenya 1–3 years: real small changes, real growth, real
noise, real dark desert and real bright cores), which synthetic scenes cannot give; long gaps and new towns come
from the synthetic scenes mixed in by `build_dataset` (kind "refaware"). Every context window (the tile plus the
DMSP halo margin) that touches a region of `real_sources.REAL_TEMPORAL_HOLDOUT` is refused, so the real-temporal
evaluation stays unseen; the tile 20–30N/30–40E is a hold-out region as a whole and is never opened.

Augmentation: flips/rot90 (tiles.augment), a common gain on target and reference (brighter or dimmer
scenes), a small relative gain on the reference (inter-year calibration differences), reference dropout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from nightlight_fusion_plugin.core.engine.transforms import reference_dmsp
from nightlight_fusion_plugin.core.raster.grids import VIIRS_PIXEL_DEG, upsample2_bilinear
from nightlight_fusion_plugin.core.sensor.intercalibration import intercalibration_for
from nightlight_fusion_plugin.core.sensor.sensors import pixel_size_km, simulate_dmsp

from ..real_sources import DEFAULT_REAL, SUDAN_YEARS, overlaps_holdout, real_pair_sources, sudan_tiles
from ..simulate.pairs import MARGIN_PX
from ..simulate.sensors_random import random_dmsp_parameters
from .tiles import augment, to_model_space, traditional_input

__all__ = ["SUDAN_YEARS", "RealStructurePairs", "overlaps_holdout", "sudan_tiles", "window_bounds"]

DMSP_YEARS = (1992, 2013)


def window_bounds(transform, row: int, col: int, size: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a size×size window at (row, col) of a north-up grid."""
    return (
        transform.c + col * transform.a,
        transform.f + (row + size) * transform.e,
        transform.c + (col + size) * transform.a,
        transform.f + row * transform.e,
    )


class RealStructurePairs(Dataset):
    """Item i is always the same tile (seeded by (seed, i)); files are opened lazily (once per worker)."""

    def __init__(
        self,
        length: int = 1000,
        tile: int = 64,
        seed: int = 0,
        real_dir: str | Path | None = None,
        spread: float = 1.0,
        reference_dropout: float = 0.3,
        augment: bool = True,
        condition_version: int = 2,
        gain_sigma: float = 0.3,
        reference_gain_sigma: float = 0.1,
        dark_keep: float = 0.2,
        gap_unknown: float = 0.0,
        regions: tuple[str, ...] | list[str] = ("sudan",),
    ):
        self.tiles = real_pair_sources(real_dir or DEFAULT_REAL, tuple(regions))
        self.keys = sorted(self.tiles)
        self.length, self.tile, self.seed, self.spread = length, tile, seed, spread
        self.reference_dropout, self.augment, self.condition_version = reference_dropout, augment, condition_version
        self.gain_sigma, self.reference_gain_sigma, self.dark_keep = gain_sigma, reference_gain_sigma, dark_keep
        self.gap_unknown = gap_unknown
        self._sources: dict[tuple[str, int], rasterio.io.DatasetReader] | None = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self):  # open file handles never cross into DataLoader workers
        state = dict(self.__dict__)
        state["_sources"] = None
        return state

    def _source(self, key: str, year: int):
        if self._sources is None:
            self._sources = {}
        if (key, year) not in self._sources:
            self._sources[(key, year)] = rasterio.open(self.tiles[key][year])
        return self._sources[(key, year)]

    def position(self, rng: np.random.Generator) -> tuple[str, int, int, tuple[float, float, float, float]]:
        """A (tile key, row, col, context bounds) whose whole context (tile + margin) avoids every hold-out."""
        full = self.tile + 2 * MARGIN_PX
        for _ in range(1000):
            key = self.keys[int(rng.integers(len(self.keys)))]
            src = self._source(key, min(self.tiles[key]))
            row = int(rng.integers(0, src.height - full + 1)) // 2 * 2
            col = int(rng.integers(0, src.width - full + 1)) // 2 * 2
            bounds = window_bounds(src.transform, row, col, full)
            if overlaps_holdout(bounds) is None:
                return key, row, col, bounds
        raise ValueError("no tile position outside the hold-out regions")

    def years(self, key: str, rng: np.random.Generator) -> tuple[int, int | None]:
        """(target year, reference year): any ordered pair of the source's years, both directions (a two-year
        source takes one draw, as Sudan always did, so its tiles stay what they were); a one-year source has no
        reference (None)."""
        years = sorted(self.tiles[key])
        target = years[int(rng.integers(len(years)))]
        others = [y for y in years if y != target]
        if not others:
            return target, None
        return target, others[0] if len(others) == 1 else others[int(rng.integers(len(others)))]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index, 17])
        full, t = self.tile + 2 * MARGIN_PX, self.tile
        crop, half = slice(MARGIN_PX, MARGIN_PX + t), slice(MARGIN_PX // 2, (MARGIN_PX + t) // 2)
        for _ in range(50):
            key, row, col, bounds = self.position(rng)
            target_year, reference_year = self.years(key, rng)
            window = Window(col, row, full, full)
            target = self._source(key, target_year).read(1, window=window, masked=True).filled(np.nan).astype(np.float32)
            if np.isfinite(target[crop, crop]).mean() < 0.8:
                continue
            lit = (np.nan_to_num(target[crop, crop]) > 2.0).mean() > 0.002
            if lit or rng.random() < self.dark_keep:  # Sudan is mostly dark desert: keep only some dark tiles
                break
        gain = float(np.exp(rng.normal(0.0, self.gain_sigma)))
        target = target * np.float32(gain)
        reference_gain = np.float32(gain * float(np.exp(rng.normal(0.0, self.reference_gain_sigma))))
        reference = None
        if reference_year is not None:  # a one-year source (Nigeria 2023) gives reference-free tiles only
            reference = self._source(key, reference_year).read(1, window=window, masked=True).filled(np.nan)
            reference = reference.astype(np.float32) * reference_gain
        latitude = (bounds[1] + bounds[3]) / 2
        pixel_km = pixel_size_km(latitude, VIIRS_PIXEL_DEG)
        params = random_dmsp_parameters(rng, int(rng.integers(DMSP_YEARS[0], DMSP_YEARS[1] + 1)), spread=self.spread)
        dmsp = simulate_dmsp(np.clip(np.nan_to_num(target), 0.0, None), pixel_km, params, rng)
        truth = target[crop, crop]
        dmsp_fine = upsample2_bilinear(dmsp[half, half].astype(np.float32))
        dmsp_fine[~np.isfinite(truth)] = np.nan
        ref, ref_dnc = None, None
        if rng.random() >= self.reference_dropout and reference is not None:
            ref = reference[crop, crop]
            if self.condition_version >= 2:  # simulated on the whole context (its halo), then cropped
                intercal = intercalibration_for(params.satellite, params.year)
                ref_dnc = reference_dmsp(reference, pixel_km, intercal)[crop, crop]
        traditional = gap = None
        if self.condition_version == 3:  # the traditional estimate on the whole context, then cropped
            unknown = rng.random() < self.gap_unknown
            gap = None if unknown or reference_year is None else float(reference_year - target_year)
            context_reference = None if ref is None else reference
            traditional = traditional_input(
                dmsp, context_reference, params.satellite, params.year, pixel_km, gap, (crop, crop)
            )
        arrays = to_model_space(
            dmsp_fine, params.satellite, params.year, ref, truth, self.condition_version, ref_dnc, pixel_km, traditional, gap
        )
        if self.augment:
            arrays = augment(arrays, rng)
        return {key: torch.from_numpy(value) for key, value in arrays.items()}
