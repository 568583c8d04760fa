"""`unet` family: deterministic regression UNet, condition [3, H, W] (v2: [4, H, W]) -> target [1, H, W].

condition_version 2 adds the reference simulated to DMSP as a 4th channel (core/transforms.py). target
"residual_log" makes the network predict the change relative to the reference in model space: forward() is the
raw network output (what the ONNX file computes), `absolute()` adds the reference back where the mask is 1 —
so an all-zero network output means "nothing changed". The engine applies the same inverse (nlf_target).

The baseline every generative family must beat, and the first stage of staged sampling (staged.py):
it predicts the conditional mean (L2) or median (L1), which is blurry but unbiased.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nightlight_fusion_plugin.core.transforms import CONDITION_CHANNELS, TARGETS

from .base import BackboneConfig, ConfigError, Family, choice, masked_mean
from .unet import UNet


@dataclass
class RegressionConfig(BackboneConfig):
    loss: str = "l1"  # "l1" (median: sharper on skewed radiance) or "l2" (mean)
    condition_version: int = 1  # 1: [dmsp, reference, mask]; 2: + the reference simulated to DMSP
    target: str = "absolute"  # "absolute" or "residual_log" (change relative to the reference)

    def validate(self) -> None:
        choice("loss", self.loss, ("l1", "l2"))
        choice("target", self.target, TARGETS)
        if self.condition_version not in CONDITION_CHANNELS:
            raise ConfigError(f"[model] condition_version = {self.condition_version!r} is not one of 1, 2")


class RegressionUNet(Family):
    family = "unet"

    def __init__(self, config: RegressionConfig | None = None):
        super().__init__(config or RegressionConfig())
        self.in_channels = len(CONDITION_CHANNELS[self.config.condition_version])
        self.net = UNet(self.in_channels, 1, self.config.unet())

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        """The raw network output (absolute model-space radiance, or the residual for target residual_log)."""
        if not torch.jit.is_tracing() and condition.shape[1] != self.in_channels:
            raise ValueError(
                f"condition has {condition.shape[1]} channels; this model (condition_version "
                f"{self.config.condition_version}) takes {self.in_channels}"
            )
        return self.net(condition)

    def absolute(self, prediction: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Network output -> model-space radiance (transforms.apply_target in torch)."""
        if self.config.target == "absolute":
            return prediction
        mask = condition[:, 2:3]
        return torch.where(mask > 0, condition[:, 1:2] + prediction, prediction)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        condition = batch["condition"]
        error = self.absolute(self(condition), condition) - batch["target"]
        error = error.abs() if self.config.loss == "l1" else error.square()
        loss = masked_mean(error.float(), batch["valid"])
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
        return self.absolute(self(condition), condition)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "condition_version": self.config.condition_version, "target": self.config.target}
