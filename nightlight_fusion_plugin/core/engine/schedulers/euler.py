"""Euler on the variance-exploding ODE: diffusers' EulerDiscreteScheduler."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import (
    F,
    Scheduler,
    StepOutput,
    _final_sigma,
    _spaced_timesteps,
    _train_sigmas,
)


class EulerScheduler(Scheduler):
    """Euler on the variance-exploding ODE dx/dsigma = (x - x0) / sigma (Karras et al. 2022), diffusers'
    EulerDiscreteScheduler. Samples live at scale x0 + sigma eps, so the model input is rescaled by
    1 / sqrt(sigma^2 + 1) (scale_model_input) and timesteps are fractional (sigma interpolated in t).
    """

    def _sigmas_and_timesteps(self, n: int, final_sigma: float) -> tuple[np.ndarray, np.ndarray]:
        T = self.config.num_train_timesteps
        if self.spacing == "linspace":
            ts = np.linspace(0, T - 1, n, dtype=np.float32)[::-1].copy()
        else:
            ts = _spaced_timesteps(self.spacing, T, n, self.config.steps_offset).astype(np.float32)
        sigmas = np.interp(ts, np.arange(T), _train_sigmas(self.alphas_cumprod))
        return np.concatenate([sigmas, [final_sigma]]).astype(np.float32), ts

    def _full_schedule(self, n: int) -> np.ndarray:
        self.sigmas, ts = self._sigmas_and_timesteps(n, _final_sigma(self))
        return ts

    @property
    def init_noise_sigma(self) -> float:
        max_sigma = self.sigmas.max()
        if self.spacing in ("linspace", "trailing"):
            return float(max_sigma)
        return float(np.sqrt(np.square(max_sigma) + F(1)))

    def scale_model_input(self, sample: np.ndarray, timestep: float) -> np.ndarray:
        sigma = self.sigmas[self.step_index]
        return sample / np.sqrt(np.square(sigma) + F(1))

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        return x0 + noise * self.sigmas[index]

    def _x0_from_ve(self, model_output, sample, sigma) -> np.ndarray:
        if self.config.prediction_type == "epsilon":
            return sample - sigma * model_output
        if self.config.prediction_type == "v_prediction":
            return model_output * (-sigma / np.sqrt(np.square(sigma) + F(1))) + sample / (np.square(sigma) + F(1))
        raise ValueError(f"Unsupported prediction_type '{self.config.prediction_type}' (epsilon, v_prediction).")

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        noise: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> StepOutput:
        sigma = self.sigmas[self.step_index]
        x0 = self._x0_from_ve(model_output, sample, sigma)
        derivative = (sample - x0) / sigma
        prev = sample + derivative * (self.sigmas[self.step_index + 1] - sigma)
        self.step_index += 1
        return StepOutput(prev, x0)
