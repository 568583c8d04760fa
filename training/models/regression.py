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

from .base import BackboneConfig, ConditionConfig, Family, choice, masked_mean
from .unet import UNet


@dataclass
class RegressionConfig(ConditionConfig, BackboneConfig):  # condition_version / target: base.ConditionConfig
    loss: str = "l1"  # "l1" (median: sharper on skewed radiance) or "l2" (mean)

    def validate(self) -> None:
        super().validate()
        choice("loss", self.loss, ("l1", "l2"))


class RegressionUNet(Family):
    family = "unet"

    def __init__(self, config: RegressionConfig | None = None):
        super().__init__(config or RegressionConfig())
        self.net = UNet(self.in_channels, 1, self.config.unet())

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        """The raw network output (absolute model-space radiance, or the residual for target residual_log)."""
        self.check_condition(condition)
        return self.net(condition)

    def absolute(self, prediction: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Network output -> model-space radiance (transforms.apply_target in torch: base.from_residual)."""
        return self.to_radiance(prediction, condition)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        condition = batch["condition"]
        error = self.absolute(self(condition), condition) - batch["target"]
        error = error.abs() if self.config.loss == "l1" else error.square()
        loss = masked_mean(error.float(), batch["valid"])
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
        return self.absolute(self(condition), condition)
