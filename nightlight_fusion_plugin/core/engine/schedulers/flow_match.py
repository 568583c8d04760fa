"""Flow matching (rectified flow): diffusers' FlowMatchEulerDiscreteScheduler and FlowMatchHeunDiscreteScheduler."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .base import (
    FLOW_MATCHING,
    F,
    Scheduler,
    StepOutput,
    heun_step,
)


class FlowMatchEulerScheduler(Scheduler):
    """Rectified flow / flow matching (diffusers' FlowMatchEulerDiscreteScheduler convention):
    x_sigma = (1 - sigma) x0 + sigma noise, the model predicts the velocity v = noise - x0 at
    timestep sigma * num_train_timesteps, and Euler integrates dx/dsigma = v from sigma ~ 1 to 0.
    """

    family = FLOW_MATCHING

    def _shifted(self, sigmas):
        # larger shift spends more steps at high noise (SD3); shift 1 is the identity
        shift = self.config.shift
        return shift * sigmas / (1 + (shift - 1) * sigmas)

    def _flow_sigmas(self, n: int) -> np.ndarray:
        T = self.config.num_train_timesteps
        # diffusers shifts the training sigmas once in __init__ and the inference ones again here: kept for parity
        train = self._shifted(np.linspace(1, T, T, dtype=np.float32)[::-1] / F(T))
        ts = np.linspace(float(train[0]) * T, float(train[-1]) * T, n)
        return self._shifted(ts / T).astype(np.float32)

    def _full_schedule(self, n: int) -> np.ndarray:
        sigmas = self._flow_sigmas(n)
        self.sigmas = np.append(sigmas, F(0))
        return sigmas * F(self.config.num_train_timesteps)

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        sigma = self.sigmas[index]
        return sigma * noise + (F(1) - sigma) * x0

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        noise: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> StepOutput:
        sigma = self.sigmas[self.step_index]
        prev = sample + (self.sigmas[self.step_index + 1] - sigma) * model_output
        self.step_index += 1
        return StepOutput(prev, sample - sigma * model_output)


class FlowMatchHeunScheduler(FlowMatchEulerScheduler):
    """Heun's 2nd-order method for the flow ODE (diffusers' FlowMatchHeunDiscreteScheduler): timesteps
    [t0, t1, t1, ..., t_{n-1}, t_{n-1}], 2n - 1 model calls, the last step plain Euler to sigma 0.
    """

    order = 2

    def _full_schedule(self, n: int) -> np.ndarray:
        sigmas = self._flow_sigmas(n)
        ts = sigmas * F(self.config.num_train_timesteps)
        self.sigmas = np.concatenate([sigmas[:1], np.repeat(sigmas[1:], 2), [F(0)]]).astype(np.float32)
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
        return heun_step(self, sample, lambda x, sigma: x - model_output * sigma)
