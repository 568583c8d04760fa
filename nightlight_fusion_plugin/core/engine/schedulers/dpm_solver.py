"""DPM-Solver++(2M): diffusers' DPMSolverMultistepScheduler."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .base import (
    F,
    Scheduler,
    StepOutput,
    _final_sigma,
    _train_sigmas,
)


class DPMSolverPP2MScheduler(Scheduler):
    """DPM-Solver++(2M) (Lu et al. 2022): diffusers' DPMSolverMultistepScheduler with algorithm_type
    "dpmsolver++", solver_order=2, solver_type "midpoint", lower_order_final=True.

    Multistep: the second-order update reuses the previous step's x0 prediction, so it costs one model call
    per step; the first step (no history) and the last one (to sigma 0) are first order.
    """

    def _full_schedule(self, n: int) -> np.ndarray:
        T = self.config.num_train_timesteps
        if self.spacing == "linspace":
            ts = np.linspace(0, T - 1, n + 1).round()[::-1][:-1]
        elif self.spacing == "leading":
            ts = (np.arange(0, n + 1) * (T // (n + 1))).round()[::-1][:-1] + self.config.steps_offset
        elif self.spacing == "trailing":
            ts = np.arange(T, 0, -T / n).round() - 1
        else:
            raise ValueError(f"Unknown timestep_spacing '{self.spacing}'.")
        ts = ts.astype(np.int64)
        sigmas = np.interp(ts, np.arange(T), _train_sigmas(self.alphas_cumprod))
        self.sigmas = np.concatenate([sigmas, [_final_sigma(self)]]).astype(np.float32)
        return ts

    def _reset(self) -> None:
        self.prev_x0: Optional[np.ndarray] = None
        self.lower_order_nums = 0

    @staticmethod
    def _alpha_sigma(sigma: np.float32) -> tuple[np.float32, np.float32]:
        alpha = F(1) / np.sqrt(np.square(sigma) + F(1))
        return alpha, sigma * alpha

    @staticmethod
    def _lambda(alpha: np.float32, sigma: np.float32) -> np.float32:
        # float64 log rounded once = glibc's (near correctly rounded) logf that torch calls for 0-d tensors
        return F(math.log(alpha)) - F(math.log(sigma))

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        alpha, sigma = self._alpha_sigma(self.sigmas[index])
        return alpha * x0 + sigma * noise

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        noise: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> StepOutput:
        i = self.step_index
        last = i == len(self.all_timesteps) - 1
        lower_order_final = last and (len(self.all_timesteps) < 15 or self.config.final_sigmas_type == "zero")

        alpha_s0, sigma_s0 = self._alpha_sigma(self.sigmas[i])
        x0 = self._x0_from_vp(model_output, sample, alpha_s0, sigma_s0)
        prev_x0, self.prev_x0 = self.prev_x0, x0

        sigma_next = self.sigmas[i + 1]
        if sigma_next == 0:
            prev = x0  # lambda = +inf: the exponential integrator lands exactly on the x0 prediction
        else:
            alpha_t, sigma_t = self._alpha_sigma(sigma_next)
            h = self._lambda(alpha_t, sigma_t) - self._lambda(alpha_s0, sigma_s0)
            phi = alpha_t * (F(math.exp(-h)) - F(1))
            prev = (sigma_t / sigma_s0) * sample - phi * x0
            if self.lower_order_nums >= 1 and not lower_order_final:
                alpha_s1, sigma_s1 = self._alpha_sigma(self.sigmas[i - 1])
                r0 = (self._lambda(alpha_s0, sigma_s0) - self._lambda(alpha_s1, sigma_s1)) / h
                d1 = (F(1) / r0) * (x0 - prev_x0)
                prev = prev - (F(0.5) * phi) * d1  # midpoint correction from the previous x0 prediction
        self.lower_order_nums = min(self.lower_order_nums + 1, 2)
        self.step_index += 1
        return StepOutput(prev, x0)

    def _x0_from_vp(self, model_output, sample, alpha, sigma) -> np.ndarray:
        if self.config.prediction_type == "epsilon":
            x0 = (sample - sigma * model_output) / alpha
        elif self.config.prediction_type == "v_prediction":
            x0 = alpha * sample - sigma * model_output
        else:
            raise ValueError(f"Unsupported prediction_type '{self.config.prediction_type}' (epsilon, v_prediction).")
        return x0
