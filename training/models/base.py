"""What every model family shares: config parsing with clear errors, masked losses, the Family interface."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

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

    def unet(self) -> UNetConfig:
        return UNetConfig(self.base_channels, tuple(self.channel_mult), self.blocks_per_level, self.attention, self.dropout)


def choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"[model] {key} = {value!r} is not one of {', '.join(repr(a) for a in allowed)}")


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

    batch: dict with condition [B, 3, H, W], target [B, 1, H, W], valid [B, 1, H, W] (model space).
    sample(condition, generator=None, ...) -> [B, 1, H, W] in model space; `generator` keeps validation
    from consuming the global RNG (a resumed run must draw the same training noise).
    """

    family: ClassVar[str] = ""
    supports_bf16: ClassVar[bool] = True

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def sample(self, condition: torch.Tensor, generator: torch.Generator | None = None, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """Family, config and (for generative families) the noise schedule, recorded in checkpoints."""
        return {"family": self.family, "config": config_dict(self.config)}


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """torch.randn_like that honours a generator (randn_like itself takes none)."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
