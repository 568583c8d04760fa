"""Model families of the training package; every one is conditioned on the same stack (DMSP, VIIRS reference,
reference mask; condition_version 2 adds the reference simulated to DMSP) and predicts VIIRS radiance in model
space, directly or (target "residual_log") as the change relative to the reference (base.ConditionConfig).

  unet              regression.RegressionUNet     deterministic regression (L1/L2)
  diffusion         diffusion.ConditionalDDPM     DDPM, epsilon / v-prediction, DDIM sampler
  flow_matching     flow_matching.RectifiedFlow   rectified flow, Euler sampler
  normalizing_flow  normalizing_flow.ConditionalGlow  conditional Glow, exact likelihood
staged.staged_sample warm-starts diffusion / flow matching from a regression estimate.
"""

from __future__ import annotations

from typing import Any

from .base import ConfigError, Family, config_dict, parse_config
from .diffusion import ConditionalDDPM, DiffusionConfig
from .flow_matching import FlowMatchingConfig, RectifiedFlow
from .normalizing_flow import ConditionalGlow, FlowConfig
from .regression import RegressionConfig, RegressionUNet
from .staged import StagedSampler, staged_sample

FAMILIES: dict[str, tuple[type, type]] = {
    "unet": (RegressionUNet, RegressionConfig),
    "diffusion": (ConditionalDDPM, DiffusionConfig),
    "flow_matching": (RectifiedFlow, FlowMatchingConfig),
    "normalizing_flow": (ConditionalGlow, FlowConfig),
}


def build_model(table: dict[str, Any]) -> Family:
    """Model from a [model] table: `family` picks the class, the other keys are its config."""
    table = dict(table)
    family = table.pop("family", None)
    if family is None:
        raise ConfigError(f"[model] needs a 'family' key (one of: {', '.join(FAMILIES)})")
    if family not in FAMILIES:
        raise ConfigError(f"Unknown model family [model] family = {family!r} (known: {', '.join(FAMILIES)})")
    model_cls, config_cls = FAMILIES[family]
    return model_cls(parse_config(config_cls, table, family))


__all__ = ["FAMILIES", "ConfigError", "Family", "StagedSampler", "build_model", "config_dict", "staged_sample"]
