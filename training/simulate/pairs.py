"""One simulated scene: DMSP of year t, VIIRS reference of year t_ref, VIIRS truth of year t."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nightlight_fusion_plugin.core.raster.grids import VIIRS_PIXEL_DEG
from nightlight_fusion_plugin.core.sensor.sensors import (
    DmspParameters,
    ViirsParameters,
    pixel_size_km,
    simulate_dmsp,
    simulate_viirs,
)

from .scenes import plan_scene, render
from .sensors_random import outside_training_range, random_dmsp_parameters, random_viirs_parameters

DMSP_YEARS = (1992, 2013)
VIIRS_YEARS = (2012, 2024)
# The halo of the DMSP blur reaches ~3σ ≈ 12 km: render this much beyond the tile so borders are right.
MARGIN_PX = 32


@dataclass
class ScenePair:
    dmsp_dn: np.ndarray  # uint8, 30″ (half the VIIRS size), raw DN of `satellite` `year`
    viirs_reference: np.ndarray  # float32, 15″, year reference_year
    viirs_truth: np.ndarray  # float32, 15″, year `year`
    year: int
    reference_year: int
    satellite: str
    latitude: float
    dmsp_parameters: DmspParameters
    viirs_parameters: ViirsParameters
    meta: dict = field(default_factory=dict)


def make_pair(
    seed: int,
    size: int,
    year: int | None = None,
    reference_year: int | None = None,
    spread: float = 1.0,
    robustness_holdout: bool = False,
    min_gap: int = 1,
    context: bool = False,
) -> ScenePair:
    """Simulate one aligned scene of size×size VIIRS pixels (size even). Same arguments -> same arrays.
    context: also keep the DMSP and the reference with their MARGIN_PX margin (meta["context"]; the arrays and
    random draws are the same either way), for inputs computed like the engine computes them, with a halo."""
    if size % 2:
        raise ValueError(f"size must be even (DMSP pixels are 2×2 VIIRS pixels), got {size}")
    rng = np.random.default_rng([seed, 1])
    year = int(rng.integers(DMSP_YEARS[0], DMSP_YEARS[1] + 1)) if year is None else year
    if reference_year is None:
        reference_year = int(rng.integers(min(max(VIIRS_YEARS[0], year + min_gap), VIIRS_YEARS[1]), VIIRS_YEARS[1] + 1))
    full = size + 2 * MARGIN_PX
    plan = plan_scene(seed, full, base_year=year)
    pixel_km = pixel_size_km(plan.latitude, VIIRS_PIXEL_DEG)
    dmsp_params = outside_training_range(rng, year) if robustness_holdout else random_dmsp_parameters(rng, year, spread=spread)
    viirs_params = random_viirs_parameters(rng, spread=spread)
    stable_t, ephemeral_t = render(plan, year)
    stable_ref, ephemeral_ref = render(plan, reference_year)
    crop = slice(MARGIN_PX, MARGIN_PX + size)
    half = slice(MARGIN_PX // 2, (MARGIN_PX + size) // 2)
    dmsp_context = simulate_dmsp(stable_t, pixel_km, dmsp_params, rng)  # stable lights: no ephemeral
    truth = simulate_viirs(stable_t + ephemeral_t, pixel_km, viirs_params, rng)[crop, crop]
    reference_context = simulate_viirs(stable_ref + ephemeral_ref, pixel_km, viirs_params, rng)
    dmsp, reference = dmsp_context[half, half], reference_context[crop, crop]
    meta = {"seed": seed, "settlements": len(plan.settlements)}
    if context:
        meta["context"] = {"dmsp_dn": dmsp_context, "reference": reference_context, "crop": (crop, crop)}
    return ScenePair(
        dmsp,
        reference,
        truth,
        year,
        reference_year,
        dmsp_params.satellite,
        plan.latitude,
        dmsp_params,
        viirs_params,
        meta=meta,
    )
