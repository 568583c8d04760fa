"""DDPM (Ho et al. 2020): diffusers' DDPMScheduler, and the integer-timestep base DDIM shares."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import (
    F,
    Scheduler,
    StepOutput,
    _noise,
    _spaced_timesteps,
)


class _IntegerTimestepScheduler(Scheduler):
    default_spacing = "leading"

    def _full_schedule(self, n: int) -> np.ndarray:
        if n > self.config.num_train_timesteps:
            raise ValueError("num_inference_steps cannot exceed num_train_timesteps.")
        ts = _spaced_timesteps(self.spacing, self.config.num_train_timesteps, n, self.config.steps_offset)
        if self.spacing == "linspace":
            ts = ts.round()
        return ts.astype(np.int64)

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        return self._add_noise_vp(x0, noise, self.alphas_cumprod[int(self.all_timesteps[index])])


class DDPMScheduler(_IntegerTimestepScheduler):
    """Ancestral sampling (Ho et al. 2020), variance 'fixed_small'. Needs fresh noise at every step but the last."""

    def _prev_timestep(self, t: int) -> int:
        # diffusers looks the previous timestep up in the schedule (custom spacings are not uniform)
        idx = int(np.nonzero(self.all_timesteps == t)[0][0])
        return int(self.all_timesteps[idx + 1]) if idx + 1 < len(self.all_timesteps) else -1

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        noise: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> StepOutput:
        t = int(timestep)
        prev_t = self._prev_timestep(t)
        ab_t = self.alphas_cumprod[t]
        ab_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else F(1)
        beta_prod_t, beta_prod_prev = F(1) - ab_t, F(1) - ab_prev
        alpha_t = ab_t / ab_prev
        beta_t = F(1) - alpha_t

        x0 = self._clip(self._x0_from(model_output, sample, ab_t))
        # posterior q(x_{t-1} | x_t, x0) mean, eq. 7 of Ho et al.
        x0_coeff = (np.sqrt(ab_prev) * beta_t) / beta_prod_t
        xt_coeff = np.sqrt(alpha_t) * beta_prod_prev / beta_prod_t
        prev = x0_coeff * x0 + xt_coeff * sample
        self.step_index += 1
        if t > 0:
            variance = max(beta_prod_prev / beta_prod_t * beta_t, F(1e-20))
            prev = prev + np.sqrt(variance) * _noise(sample.shape, noise, rng)
        return StepOutput(prev, x0)
