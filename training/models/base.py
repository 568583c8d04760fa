"""What every model family shares: config parsing with clear errors, masked losses, the Family interface, and the
condition version / target options with the one torch definition of the residual target (core's apply_target)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nightlight_fusion_plugin.core.engine.transforms import (
    CONDITION_CHANNELS,
    RADIANCE_MIN,
    TARGETS,
    TRADITIONAL_CHANNEL,
    radiance_to_model,
)

from .unet import UNetConfig


class ConfigError(ValueError):
    """A config value or key the trainer cannot use; the message names the key."""


@dataclass
class BackboneConfig:
    """UNet keys every UNet-based family accepts in its [model] table."""

    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    blocks_per_level: int = 1
    attention: bool = False
    dropout: float = 0.0
    norm: str = "group"  # "none": the deployment-friendly block (models/unet.py)
    activation: str = "silu"

    def unet(self) -> UNetConfig:
        try:
            return UNetConfig(
                self.base_channels,
                tuple(self.channel_mult),
                self.blocks_per_level,
                self.attention,
                self.dropout,
                self.norm,
                self.activation,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc


def choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"[model] {key} = {value!r} is not one of {', '.join(repr(a) for a in allowed)}")


# Model space spans [radiance_to_model(RADIANCE_MIN), 1] = [-1.2007, 1], so a residual (target - reference) spans
# [-RESIDUAL_SPAN, RESIDUAL_SPAN] with RESIDUAL_SPAN = 2.2007; where the reference is absent x_0 is the target itself,
# inside that range too. Samplers that clip x_0 must not clip tighter than this for residual models.
RESIDUAL_SPAN = float(1.0 - radiance_to_model(np.float32(RADIANCE_MIN)))


@dataclass
class ConditionConfig:
    """[model] keys every family shares: the condition stack version and what the network's output means.

    condition_version 1: [dmsp, reference, mask]; 2: + the reference simulated to DMSP (core/transforms.py).
    target "absolute": model-space radiance; "residual_log": the change relative to the reference in model space
    (to_residual / from_residual below), so an all-zero network output / generative sample means "nothing changed".
    """

    condition_version: int = 1
    target: str = "absolute"

    def validate(self) -> None:
        choice("target", self.target, TARGETS)
        if self.condition_version not in CONDITION_CHANNELS:
            raise ConfigError(f"[model] condition_version = {self.condition_version!r} is not one of 1, 2, 3")
        if (self.condition_version == 3) != (self.target == "residual_traditional"):
            raise ConfigError(
                "[model] target 'residual_traditional' goes with condition_version 3 (the traditional estimate is its input)"
            )

    def input_channels(self) -> int:
        """Condition channels the network takes (3 for version 1, 4 for version 2)."""
        return len(CONDITION_CHANNELS[self.condition_version])


def to_residual(target: torch.Tensor, condition: torch.Tensor, kind: str) -> torch.Tensor:
    """Model-space radiance [B, 1, H, W] -> what the network (or the generative variable x_0) represents:
    itself for "absolute"; for "residual_log" target - reference where the reference mask (condition channel 2)
    is 1, the target itself where it is 0; for "residual_traditional" target - the traditional estimate (condition
    v3's channel TRADITIONAL_CHANNEL) everywhere. The exact inverse of from_residual."""
    if kind == "absolute":
        return target
    if kind == "residual_traditional":
        return target - condition[:, TRADITIONAL_CHANNEL : TRADITIONAL_CHANNEL + 1]
    if kind != "residual_log":
        raise ValueError(f"unknown target {kind!r}")
    return torch.where(condition[:, 2:3] > 0, target - condition[:, 1:2], target)


def from_residual(prediction: torch.Tensor, condition: torch.Tensor, kind: str) -> torch.Tensor:
    """Network output / generative sample -> model-space radiance: core transforms.apply_target in torch
    (reference + prediction where the mask is 1, the prediction where it is 0), so training, validation and
    the ONNX engine agree; residual_traditional: the traditional estimate + prediction everywhere)."""
    if kind == "absolute":
        return prediction
    if kind == "residual_traditional":
        return condition[:, TRADITIONAL_CHANNEL : TRADITIONAL_CHANNEL + 1] + prediction
    if kind != "residual_log":
        raise ValueError(f"unknown target {kind!r}")
    return torch.where(condition[:, 2:3] > 0, condition[:, 1:2] + prediction, prediction)


def parse_config(cls: type, table: dict[str, Any], family: str) -> Any:
    """Build the dataclass `cls` from a [model] table (without 'family'): unknown keys and wrong types are
    errors that name the key, so a typo never silently falls back to a default."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(
            f"Unknown key(s) in [model] for family '{family}': {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    values: dict[str, Any] = {}
    defaults = cls()
    for key, value in table.items():
        default = getattr(defaults, key)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"[model] {key} must be a list, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"[model] {key} must be true or false, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"[model] {key} must be a number, got {value!r}")
            value = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"[model] {key} must be an integer, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"[model] {key} must be a string, got {value!r}")
        values[key] = value
    config = cls(**values)
    if hasattr(config, "validate"):
        config.validate()
    return config


def config_dict(config: Any) -> dict[str, Any]:
    """Dataclass -> plain dict (tuples as lists) for checkpoints and JSON."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over valid pixels ([B, C, H, W] with valid broadcastable); 0 if nothing is valid."""
    weight = valid.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


class Family(nn.Module):
    """A model family: loss(batch) for training and sample(condition) for validation and inference.

    batch: dict with condition [B, C, H, W] (C = 3, or 4 for condition v2), target [B, 1, H, W], valid [B, 1, H, W]
    (model space). sample(condition, generator=None, ...) -> [B, 1, H, W] model-space radiance (residual models
    add the reference back); `generator` keeps validation from consuming the global RNG (a resumed run must
    draw the same training noise). Every family's config is a ConditionConfig: `in_channels` follows from it.
    """

    family: ClassVar[str] = ""
    supports_bf16: ClassVar[bool] = True

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.in_channels = config.input_channels()

    def check_condition(self, condition: torch.Tensor) -> None:
        """A clear error for a condition stack of the wrong version (skipped while tracing for ONNX export)."""
        if not torch.jit.is_tracing() and condition.shape[1] != self.in_channels:
            raise ValueError(
                f"condition has {condition.shape[1]} channels; this model (condition_version "
                f"{self.config.condition_version}) takes {self.in_channels}"
            )

    def to_x0(self, target: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Model-space target -> the variable the network predicts / generates (the residual for residual_log)."""
        return to_residual(target, condition, self.config.target)

    def to_radiance(self, x0: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The network's / sampler's variable -> model-space radiance (adds the reference for residual_log)."""
        return from_residual(x0, condition, self.config.target)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def sample(self, condition: torch.Tensor, generator: torch.Generator | None = None, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """Family, config, condition version and target (export writes them as nlf_condition_version /
        nlf_target) and, for generative families, the noise schedule; recorded in checkpoints."""
        return {
            "family": self.family,
            "config": config_dict(self.config),
            "condition_version": self.config.condition_version,
            "target": self.config.target,
        }


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """torch.randn_like that honours a generator (randn_like itself takes none)."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
