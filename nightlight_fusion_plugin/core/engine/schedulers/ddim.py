"""DDIM (Song et al. 2021): diffusers' DDIMScheduler."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import (
    F,
    StepOutput,
    _noise,
)
from .ddpm import _IntegerTimestepScheduler


class DDIMScheduler(_IntegerTimestepScheduler):
    """DDIM (Song et al. 2021); eta=0 is the deterministic probability-flow sampler, eta > 0 needs noise."""

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        noise: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> StepOutput:
        t = int(timestep)
        # diffusers assumes a uniform stride even for linspace/trailing spacings; kept for parity
        prev_t = t - self.config.num_train_timesteps // self.num_inference_steps
        ab_t = self.alphas_cumprod[t]
        if prev_t >= 0:
            ab_prev = self.alphas_cumprod[prev_t]
        else:
            ab_prev = F(1) if self.config.set_alpha_to_one else self.alphas_cumprod[0]
        beta_prod_t = F(1) - ab_t

        x0 = self._x0_from(model_output, sample, ab_t)
        if self.config.prediction_type == "epsilon":
            eps = model_output
        else:
            eps = np.sqrt(ab_t) * model_output + np.sqrt(beta_prod_t) * sample
        x0 = self._clip(x0)

        eta = self.config.eta
        variance = ((F(1) - ab_prev) / beta_prod_t) * (F(1) - ab_t / ab_prev)
        std = F(eta) * np.sqrt(variance)
        direction = np.sqrt(F(1) - ab_prev - np.square(std)) * eps
        prev = np.sqrt(ab_prev) * x0 + direction
        self.step_index += 1
        if eta > 0:
            prev = prev + std * _noise(sample.shape, noise, rng)
        return StepOutput(prev, x0)
