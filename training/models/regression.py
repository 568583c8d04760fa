"""`unet` family: deterministic regression UNet, condition [3, H, W] -> target [1, H, W].

The baseline every generative family must beat, and the first stage of staged sampling (staged.py):
it predicts the conditional mean (L2) or median (L1), which is blurry but unbiased.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .base import BackboneConfig, Family, choice, masked_mean
from .unet import UNet


@dataclass
class RegressionConfig(BackboneConfig):
    loss: str = "l1"  # "l1" (median: sharper on skewed radiance) or "l2" (mean)

    def validate(self) -> None:
        choice("loss", self.loss, ("l1", "l2"))


class RegressionUNet(Family):
    family = "unet"

    def __init__(self, config: RegressionConfig | None = None):
        super().__init__(config or RegressionConfig())
        self.net = UNet(3, 1, self.config.unet())

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return self.net(condition)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        error = self(batch["condition"]) - batch["target"]
        error = error.abs() if self.config.loss == "l1" else error.square()
        loss = masked_mean(error.float(), batch["valid"])
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
        return self(condition)
