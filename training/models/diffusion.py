"""`diffusion` family: conditional DDPM (Ho et al. 2020) on the UNet, epsilon- or v-prediction.

x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t integer in [0, T), fed to the UNet as float t. The
network sees concat(x_t, condition). Betas follow diffusers exactly (schedules.py) and `metadata()` gives
a dict that diffusers' DDPMScheduler / DDIMScheduler accept as config, so exported samplers can be
checked against diffusers. Validation and inference use a deterministic DDIM sampler (eta = 0).

With target "residual_log" x_0 is the residual (base.to_residual: target - reference where the reference mask is
1, the target where it is 0), so pure noise denoised to x_0 = 0 means "nothing changed"; `sample()` / `refine()`
add the reference back (base.from_residual) and return model-space radiance, while `ddim()` and the ONNX export
stay in x_0 space (the engine applies nlf_target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .base import RESIDUAL_SPAN, BackboneConfig, ConditionConfig, ConfigError, Family, choice, masked_mean, randn_like
from .schedules import SCHEDULES, alphas_cumprod, ddim_timesteps, ddpm_betas
from .unet import UNet


@dataclass
class DiffusionConfig(ConditionConfig, BackboneConfig):  # condition_version / target: base.ConditionConfig
    prediction: str = "epsilon"  # "epsilon" or "v_prediction" (diffusers' names)
    schedule: str = "squaredcos_cap_v2"  # or "linear"
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4  # linear schedule only
    beta_end: float = 0.02
    # Clamp the predicted x_0 while sampling. Model space spans [-1.2, 1] (negative VIIRS background down
    # to -0.5 nW maps to -1.2), and diffusers' clip is symmetric, hence 1.25. A residual x_0 (target
    # "residual_log") spans [-2.2007, 2.2007] (base.RESIDUAL_SPAN: a dark -1.2 pixel under a saturated reference, or
    # the reverse), so residual models need >= 2.2007: 2.25 (configs/diffusion_refaware.toml) cuts no valid residual
    # and still stops a runaway x_0 estimate at high t; validate() refuses anything tighter.
    clip_sample_range: float = 1.25
    sample_steps: int = 50  # DDIM steps in validation

    def validate(self) -> None:
        super().validate()
        if self.target in ("residual_log", "residual_traditional") and self.clip_sample_range < RESIDUAL_SPAN:
            raise ConfigError(
                f"[model] clip_sample_range = {self.clip_sample_range} would clip valid residuals (target "
                f"'{self.target}' spans ±{RESIDUAL_SPAN:.4f} in model space); use 2.25"
            )
        choice("prediction", self.prediction, ("epsilon", "v_prediction"))
        choice("schedule", self.schedule, SCHEDULES)
        if self.num_train_timesteps < 2 or not 1 <= self.sample_steps <= self.num_train_timesteps:
            raise ConfigError("[model] need num_train_timesteps >= 2 and 1 <= sample_steps <= num_train_timesteps")


class ConditionalDDPM(Family):
    family = "diffusion"

    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__(config or DiffusionConfig())
        cfg = self.config
        self.net = UNet(1 + self.in_channels, 1, cfg.unet(), time_embedding=True)
        betas = ddpm_betas(cfg.schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)
        # Buffers, not parameters: moved with .to(device) but never trained; non-persistent because they are
        # a pure function of the config (checkpoints stay loadable if the config is the same).
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod(betas), persistent=False)

    def scheduler_config(self) -> dict[str, Any]:
        """Keyword arguments for diffusers' DDPMScheduler / DDIMScheduler reproducing this schedule."""
        cfg = self.config
        return {
            "num_train_timesteps": cfg.num_train_timesteps,
            "beta_start": cfg.beta_start,
            "beta_end": cfg.beta_end,
            "beta_schedule": cfg.schedule,
            "prediction_type": cfg.prediction,
            "clip_sample": True,
            "clip_sample_range": cfg.clip_sample_range,
            "timestep_spacing": "leading",
            "steps_offset": 0,
            "set_alpha_to_one": True,
        }

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "schedule": self.scheduler_config()}

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        self.check_condition(condition)
        return self.net(torch.cat([x_t, condition], dim=1), t)

    def _abar(self, t: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod[t].float()[:, None, None, None]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0)."""
        abar = self._abar(t)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        condition = batch["condition"]
        x0 = self.to_x0(batch["target"], condition)
        t = torch.randint(0, self.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise)
        if self.config.prediction == "epsilon":
            goal = noise
        else:  # v = sqrt(abar) eps - sqrt(1 - abar) x_0 (Salimans & Ho 2022, diffusers get_velocity)
            abar = self._abar(t)
            goal = abar.sqrt() * noise - (1 - abar).sqrt() * x0
        out = self(x_t, t.float(), condition)
        loss = masked_mean((out.float() - goal).square(), batch["valid"])
        return loss, {"loss": float(loss.detach())}

    def _split(self, out: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network output -> (x_0 estimate, epsilon estimate)."""
        if self.config.prediction == "epsilon":
            eps = out
            x0 = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        else:
            x0 = abar.sqrt() * x_t - (1 - abar).sqrt() * out
            eps = abar.sqrt() * out + (1 - abar).sqrt() * x_t
        return x0, eps

    @torch.no_grad()
    def ddim(self, x_t: torch.Tensor, condition: torch.Tensor, timesteps: np.ndarray) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) along descending integer `timesteps`, ending at x_0. Matches
        diffusers' DDIMScheduler.step (clip_sample, use_clipped_model_output=False, set_alpha_to_one).
        Works in x_0 space (the residual for residual models), like the exported network and the engine's sampler."""
        x = x_t
        r = self.config.clip_sample_range
        for i, t in enumerate(timesteps):
            prev = int(timesteps[i + 1]) if i + 1 < len(timesteps) else -1
            abar = self.alphas_cumprod[int(t)].float()
            abar_prev = self.alphas_cumprod[prev].float() if prev >= 0 else torch.ones((), device=x.device)
            tt = torch.full((x.shape[0],), float(t), device=x.device)
            out = self(x, tt, condition).float()
            x0, eps = self._split(out, x, abar)
            x0 = x0.clamp(-r, r)
            x = abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps
        return x

    @torch.no_grad()
    def sample(
        self, condition: torch.Tensor, generator: torch.Generator | None = None, steps: int | None = None, **_: Any
    ) -> torch.Tensor:
        steps = steps or self.config.sample_steps
        x = randn_like(condition[:, :1], generator)
        x0 = self.ddim(x, condition, ddim_timesteps(self.config.num_train_timesteps, steps))
        return self.to_radiance(x0, condition)

    @torch.no_grad()
    def refine(
        self,
        x0_estimate: torch.Tensor,
        condition: torch.Tensor,
        steps: int,
        t_start: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """SDEdit-style warm start: noise an estimate (model-space radiance, e.g. a regression model's sample()) to
        t = t_start·(T-1) in x_0 space and run `steps` DDIM steps; returns model-space radiance."""
        t0 = int(round(float(t_start) * (self.config.num_train_timesteps - 1)))
        steps = max(1, min(steps, t0 + 1))
        timesteps = np.unique(np.round(np.linspace(t0, 0, steps, endpoint=False)).astype(np.int64))[::-1]
        t = torch.full((x0_estimate.shape[0],), timesteps[0], device=x0_estimate.device, dtype=torch.long)
        x_t = self.q_sample(self.to_x0(x0_estimate, condition), t, randn_like(x0_estimate, generator))
        return self.to_radiance(self.ddim(x_t, condition, timesteps.copy()), condition)
