"""Heun's method: diffusers' HeunDiscreteScheduler."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import (
    StepOutput,
    heun_step,
)
from .euler import EulerScheduler


class HeunScheduler(EulerScheduler):
    """Heun's 2nd-order method on the same ODE (diffusers' HeunDiscreteScheduler, Karras et al. Alg. 1).

    Each step is an Euler predictor plus a corrector at the next sigma, so timesteps repeat every interior
    timestep once: [t0, t1, t1, t2, t2, ..., t_{n-1}, t_{n-1}], 2n - 1 model calls (the last step, to sigma 0,
    is plain Euler).
    """

    order = 2

    def _full_schedule(self, n: int) -> np.ndarray:
        sigmas, ts = self._sigmas_and_timesteps(n, 0.0)
        self.sigmas = np.concatenate([sigmas[:1], np.repeat(sigmas[1:-1], 2), sigmas[-1:]])
        return np.concatenate([ts[:1], np.repeat(ts[1:], 2)])

    def _reset(self) -> None:
        self._predictor: Optional[tuple[np.ndarray, np.float32, np.ndarray]] = None  # derivative, dt, sample

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        noise: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> StepOutput:
        return heun_step(self, sample, lambda x, sigma: self._clip(self._x0_from_ve(model_output, x, sigma)))
