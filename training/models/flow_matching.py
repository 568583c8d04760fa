"""`flow_matching` family: rectified flow (Liu et al. 2022; Lipman et al. 2022) on the UNet, in diffusers'
FlowMatchEulerDiscreteScheduler convention (shift = 1):

x_sigma = (1 - sigma) x_0 + sigma noise, sigma in [0, 1]; the network predicts v = noise - x_0 and sees
timestep sigma · num_train_timesteps. Sampling integrates dx/dsigma = v with Euler from sigma = 1 to 0.
With target "residual_log" x_0 is the residual relative to the reference (base.to_residual), so noise -> x_0 = 0
means "nothing changed"; `sample()` / `refine()` add the reference back and return model-space radiance, while
`euler()` and the ONNX export stay in x_0 space (the engine applies nlf_target). No clipping: nothing to widen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .base import BackboneConfig, ConditionConfig, ConfigError, Family, choice, masked_mean, randn_like
from .schedules import flow_match_sigmas
from .unet import UNet


@dataclass
class FlowMatchingConfig(ConditionConfig, BackboneConfig):  # condition_version / target: base.ConditionConfig
    num_train_timesteps: int = 1000  # timestep scale: the network sees sigma * this
    # How training draws sigma: "uniform", or "logit_normal" (SD3; more weight on mid sigmas).
    sigma_sampling: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    sample_steps: int = 20  # Euler steps in validation

    def validate(self) -> None:
        super().validate()
        choice("sigma_sampling", self.sigma_sampling, ("uniform", "logit_normal"))
        if self.sample_steps < 1:
            raise ConfigError("[model] sample_steps must be >= 1")


class RectifiedFlow(Family):
    family = "flow_matching"

    def __init__(self, config: FlowMatchingConfig | None = None):
        super().__init__(config or FlowMatchingConfig())
        self.net = UNet(1 + self.in_channels, 1, self.config.unet(), time_embedding=True)

    def scheduler_config(self) -> dict[str, Any]:
        """Keyword arguments for diffusers' FlowMatchEulerDiscreteScheduler reproducing the sampler."""
        return {"num_train_timesteps": self.config.num_train_timesteps, "shift": 1.0, "use_dynamic_shifting": False}

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "schedule": self.scheduler_config()}

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        self.check_condition(condition)
        return self.net(torch.cat([x, condition], dim=1), sigma * self.config.num_train_timesteps)

    def _draw_sigma(self, n: int, device: torch.device) -> torch.Tensor:
        if self.config.sigma_sampling == "uniform":
            return torch.rand(n, device=device)
        return torch.sigmoid(self.config.logit_mean + self.config.logit_std * torch.randn(n, device=device))

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        condition = batch["condition"]
        x0 = self.to_x0(batch["target"], condition)
        sigma = self._draw_sigma(x0.shape[0], x0.device)
        noise = torch.randn_like(x0)
        s = sigma[:, None, None, None]
        x = (1 - s) * x0 + s * noise
        out = self(x, sigma, condition)
        loss = masked_mean((out.float() - (noise - x0)).square(), batch["valid"])
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def euler(self, x: torch.Tensor, condition: torch.Tensor, sigmas: np.ndarray) -> torch.Tensor:
        """Euler steps x += (sigma_next - sigma) v along descending `sigmas` (last one 0)."""
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
            s = torch.full((x.shape[0],), float(sigma), device=x.device)
            x = x + float(sigma_next - sigma) * self(x, s, condition).float()
        return x

    @torch.no_grad()
    def sample(
        self, condition: torch.Tensor, generator: torch.Generator | None = None, steps: int | None = None, **_: Any
    ) -> torch.Tensor:
        sigmas = flow_match_sigmas(steps or self.config.sample_steps, self.config.num_train_timesteps)
        return self.to_radiance(self.euler(randn_like(condition[:, :1], generator), condition, sigmas), condition)

    @torch.no_grad()
    def refine(
        self,
        x0_estimate: torch.Tensor,
        condition: torch.Tensor,
        steps: int,
        t_start: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Warm start: x_sigma = (1 - sigma) estimate + sigma noise at sigma = t_start in x_0 space (the estimate is
        model-space radiance, e.g. a regression model's sample()), then `steps` Euler steps; returns radiance."""
        sigma0 = float(t_start)
        x = (1 - sigma0) * self.to_x0(x0_estimate, condition) + sigma0 * randn_like(x0_estimate, generator)
        x0 = self.euler(x, condition, np.linspace(sigma0, 0.0, max(1, steps) + 1, dtype=np.float32))
        return self.to_radiance(x0, condition)
