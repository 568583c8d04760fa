"""torch Datasets over simulated pairs (streamed) and real GeoTIFF pairs; transforms come from core."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from nightlight_fusion_plugin.core.raster.grids import VIIRS_PIXEL_DEG, upsample2_bilinear
from nightlight_fusion_plugin.core.sensor.sensors import pixel_size_km

from ..simulate.pairs import DMSP_YEARS, make_pair
from .tiles import CONDITION_CHANNELS, augment, to_model_space, traditional_input

__all__ = ["CONDITION_CHANNELS", "SyntheticPairs", "augment", "build_dataset", "to_model_space"]


class SyntheticPairs(Dataset):
    """Simulated tiles generated on the fly: item i is always the same tile (seeded by (seed, i)).

    reference_dropout: probability of hiding the reference (models must also work without one).
    spread: width of the sensor-parameter randomisation (1.0 = training range).
    robustness_holdout: sensor parameters outside the training range (the robustness test set).
    reference_gaps: ranges of years [(lo, hi), ...] between target and reference; each tile picks a range, then
    a gap in it, uniformly (None: the reference year is drawn from the VIIRS years after the DMSP year, as in
    make_pair). reference_before: with reference_gaps, the probability that the reference is the earlier year.
    Why: scenes grow over time, so a reference always later than the target teaches a model that the target is
    darker than the reference even where the DMSP cannot see it (saturated cores); drawing the direction both
    ways keeps "nothing changed" the answer when the DMSP shows no change, whatever the gap.
    """

    def __init__(
        self,
        length: int,
        tile: int = 64,
        seed: int = 0,
        reference_dropout: float = 0.3,
        spread: float = 1.0,
        robustness_holdout: bool = False,
        augment: bool = True,
        reference_years: tuple[int, int] | None = None,
        condition_version: int = 1,
        reference_gaps: list[tuple[int, int]] | None = None,
        reference_before: float = 0.5,
        gap_unknown: float = 0.0,
    ):
        self.length, self.tile, self.seed = length, tile, seed
        self.reference_dropout, self.spread = reference_dropout, spread
        self.robustness_holdout, self.augment = robustness_holdout, augment
        self.reference_years = reference_years
        self.condition_version = condition_version
        self.reference_gaps = [(int(lo), int(hi)) for lo, hi in reference_gaps] if reference_gaps else None
        self.reference_before = float(reference_before)
        self.gap_unknown = float(gap_unknown)  # condition v3: the share of tiles whose gap input says "unknown"
        if self.reference_gaps and any(not 0 <= lo <= hi for lo, hi in self.reference_gaps):
            raise ValueError(f"reference_gaps must be [lo, hi] ranges with 0 <= lo <= hi, got {reference_gaps}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index, 7])
        year = reference_year = None
        if self.reference_years is not None:
            reference_year = int(rng.integers(self.reference_years[0], self.reference_years[1] + 1))
        elif self.reference_gaps:
            year = int(rng.integers(DMSP_YEARS[0], DMSP_YEARS[1] + 1))
            lo, hi = self.reference_gaps[int(rng.integers(len(self.reference_gaps)))]
            gap = int(rng.integers(lo, hi + 1))
            reference_year = year - gap if rng.random() < self.reference_before else year + gap
        v3 = self.condition_version == 3
        pair = make_pair(
            int(self.seed * 1_000_003 + index),
            self.tile,
            year=year,
            reference_year=reference_year,
            spread=self.spread,
            robustness_holdout=self.robustness_holdout,
            context=v3,
        )
        dmsp_fine = upsample2_bilinear(pair.dmsp_dn.astype(np.float32))
        reference = None if rng.random() < self.reference_dropout else pair.viirs_reference
        pixel_km = pixel_size_km(pair.latitude, VIIRS_PIXEL_DEG)
        traditional = gap = None
        if v3:  # drawn after the draws above, so versions 1 and 2 keep their tiles
            gap = None if rng.random() < self.gap_unknown else float(pair.reference_year - pair.year)
            context = pair.meta["context"]
            traditional = traditional_input(
                context["dmsp_dn"],
                None if reference is None else context["reference"],
                pair.satellite,
                pair.year,
                pixel_km,
                gap,
                context["crop"],
            )
        arrays = to_model_space(
            dmsp_fine,
            pair.satellite,
            pair.year,
            reference,
            pair.viirs_truth,
            self.condition_version,
            pixel_km=pixel_km,
            traditional=traditional,
            gap_years=gap,
        )
        if self.augment:
            arrays = augment(arrays, rng)
        return {key: torch.from_numpy(value) for key, value in arrays.items()}


def build_dataset(config: dict, split: str) -> Dataset:
    """Dataset from a config's [data] table. split: 'train', 'val' or 'test' (disjoint seeds).

    Keys: kind ('synthetic', 'semi_real', 'mixed' or 'refaware'), tile, length (train), val_length, seed,
    reference_dropout, spread, semi_real_fraction (mixed/refaware: share of semi-real Greece tiles), real_dir,
    condition_version (1: 3 channels; 2: + the reference simulated to DMSP), real_structure_fraction (refaware:
    share of real multi-year pairs, real_structure.py; the rest is synthetic scenes for long gaps/new towns),
    real_regions (refaware: the real pairs' regions, ["sudan"] by default, "kenya" adds the 2020–2023 annuals,
    "nigeria" the 2023 annual as reference-free tiles),
    reference_gaps / reference_before (synthetic scenes: the reference-target gap ranges and direction, see
    SyntheticPairs).
    Semi-real validation/test tiles come from the Greece hold-out region only; real-structure validation tiles
    are drawn with other seeds from the same (non-hold-out) Sudan area.
    """
    known = {
        "kind",
        "tile",
        "length",
        "val_length",
        "seed",
        "reference_dropout",
        "spread",
        "semi_real_fraction",
        "real_dir",
        "condition_version",
        "real_structure_fraction",
        "reference_gaps",
        "reference_before",
        "gap_unknown",
        "real_regions",
    }
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"Unknown key(s) in [data]: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    kind = config.get("kind", "synthetic")
    if kind not in ("synthetic", "semi_real", "mixed", "refaware"):
        raise ValueError(f"Unknown data kind '{kind}' (known: synthetic, semi_real, mixed, refaware)")
    version = int(config.get("condition_version", 1))
    if version not in (1, 2, 3):
        raise ValueError(f"[data] condition_version must be 1, 2 or 3, got {version}")
    offsets = {"train": 0, "val": 10_000, "test": 20_000}
    if split not in offsets:
        raise ValueError(f"Unknown split '{split}'")
    seed = int(config.get("seed", 0)) + offsets[split]
    length = int(config.get("length", 10_000)) if split == "train" else int(config.get("val_length", 64))
    tile, spread = int(config.get("tile", 64)), float(config.get("spread", 1.0))
    dropout = float(config.get("reference_dropout", 0.3)) if split == "train" else 0.0
    gap_unknown = float(config.get("gap_unknown", 0.0)) if split == "train" else 0.0
    synthetic = SyntheticPairs(
        length,
        tile=tile,
        seed=seed,
        reference_dropout=dropout,
        spread=spread,
        augment=split == "train",
        condition_version=version,
        reference_gaps=config.get("reference_gaps"),
        reference_before=float(config.get("reference_before", 0.5)),
        gap_unknown=gap_unknown,
    )
    if kind == "synthetic":
        return synthetic
    from .real import DEFAULT_REAL, SemiRealGreece

    common = dict(  # what the real-raster datasets share
        tile=tile,
        seed=seed,
        real_dir=config.get("real_dir", DEFAULT_REAL),
        spread=spread,
        reference_dropout=dropout,
        augment=split == "train",
        condition_version=version,
    )
    semi = SemiRealGreece("train" if split == "train" else "holdout", length=length, **common)
    if kind == "semi_real":
        return semi
    fraction = float(config.get("semi_real_fraction", 0.3))
    n_semi = int(round(length * fraction))
    if kind == "mixed":
        return ConcatDataset([Subset(synthetic, range(length - n_semi)), Subset(semi, range(n_semi))])
    from .real_structure import RealStructurePairs

    real = RealStructurePairs(length, **common, gap_unknown=gap_unknown, regions=tuple(config.get("real_regions", ["sudan"])))
    n_real = int(round(length * float(config.get("real_structure_fraction", 0.5))))
    n_synthetic = max(length - n_real - n_semi, 0)
    parts = [Subset(synthetic, range(n_synthetic)), Subset(semi, range(n_semi)), Subset(real, range(n_real))]
    return ConcatDataset([p for p in parts if len(p)])
