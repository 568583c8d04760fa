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

import numpy as np
import torch
import torch.nn.functional as F

from nightlight_fusion_plugin.core.engine.transforms import RADIANCE_MAX, RADIANCE_MIN

from .base import BackboneConfig, ConditionConfig, Family, choice, masked_mean
from .unet import UNet


@dataclass
class RegressionConfig(ConditionConfig, BackboneConfig):  # condition_version / target: base.ConditionConfig
    loss: str = "l1"  # "l1" (median: sharper on skewed radiance) or "l2" (mean)
    # Weight of the local light-sum term (block_sum_error): an L1 in log space predicts the median, which sums to
    # less light than the truth wherever radiance is skewed (bright cores under a saturated DMSP); this term ties
    # the radiance summed over SUM_BLOCK² blocks (about a DMSP footprint) to the truth's. 0: off (older configs).
    sum_weight: float = 0.0

    def validate(self) -> None:
        super().validate()
        choice("loss", self.loss, ("l1", "l2"))
        if not self.sum_weight >= 0.0:
            raise ValueError(f"[model] sum_weight must be >= 0, got {self.sum_weight}")


SUM_BLOCK = 8  # pixels (15″): 2 km blocks, about the DMSP's footprint


def radiance_from_model(y: torch.Tensor) -> torch.Tensor:
    """core engine/transforms.radiance_from_model in torch (differentiable), for losses on radiance."""
    log_max = float(np.log1p(RADIANCE_MAX))
    return torch.expm1(((y + 1.0) * (log_max / 2.0)).clamp(float(np.log1p(RADIANCE_MIN)), log_max))


def block_sum_error(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |log1p(Σ predicted radiance) − log1p(Σ true radiance)| over the SUM_BLOCK² blocks of valid pixels
    (model space in, nW/cm²/sr summed): what a map's sum of lights needs, locally, and what a median does not."""
    pool = lambda x: F.avg_pool2d(x, SUM_BLOCK, ceil_mode=True) * SUM_BLOCK**2  # noqa: E731
    sums = [pool(radiance_from_model(y) * valid).clamp_min(0) for y in (prediction, target)]
    weight = (pool(valid) > 0).float()
    error = (torch.log1p(sums[0]) - torch.log1p(sums[1])).abs()
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


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
        prediction = self.absolute(self(condition), condition)
        error = prediction - batch["target"]
        error = error.abs() if self.config.loss == "l1" else error.square()
        loss = masked_mean(error.float(), batch["valid"])
        logs = {"loss": float(loss.detach())}
        if self.config.sum_weight > 0:
            sums = block_sum_error(prediction.float(), batch["target"].float(), batch["valid"].float())
            logs["pixel_loss"], logs["sum_loss"] = logs["loss"], float(sums.detach())
            loss = loss + self.config.sum_weight * sums
            logs["loss"] = float(loss.detach())
        return loss, logs

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
        return self.absolute(self(condition), condition)
