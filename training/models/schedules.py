"""Noise schedules, defined exactly as HuggingFace diffusers defines them, so that a numpy or ONNX sampler
can be checked against diffusers' DDPMScheduler / DDIMScheduler / FlowMatchEulerDiscreteScheduler.

The betas are float32 tensors computed the way diffusers computes them (torch.linspace in float32 for
"linear"; `betas_for_alpha_bar` in Python floats then float32 for "squaredcos_cap_v2"), and the cumulative
product is torch.cumprod in float32, as in diffusers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SCHEDULES = ("linear", "squaredcos_cap_v2")


def betas_for_alpha_bar(num_diffusion_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) cosine schedule, diffusers' `betas_for_alpha_bar(alpha_transform_type="cosine")`."""

    def alpha_bar_fn(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = []
    for i in range(num_diffusion_timesteps):
        t1 = i / num_diffusion_timesteps
        t2 = (i + 1) / num_diffusion_timesteps
        betas.append(min(1 - alpha_bar_fn(t2) / alpha_bar_fn(t1), max_beta))
    return torch.tensor(betas, dtype=torch.float32)


def ddpm_betas(schedule: str, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Betas [T] as diffusers' DDPMScheduler(beta_schedule=schedule) builds them."""
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    if schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(num_train_timesteps)
    raise ValueError(f"Unknown noise schedule {schedule!r} (known: {', '.join(SCHEDULES)})")


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(num_train_timesteps: int, steps: int) -> np.ndarray:
    """diffusers DDIMScheduler.set_timesteps with timestep_spacing="leading", steps_offset=0 (descending)."""
    step_ratio = num_train_timesteps // steps
    return (np.arange(0, steps) * step_ratio).round()[::-1].copy().astype(np.int64)


def flow_match_sigmas(steps: int, num_train_timesteps: int = 1000) -> np.ndarray:
    """diffusers FlowMatchEulerDiscreteScheduler.set_timesteps (shift=1, no dynamic shifting): steps sigmas
    from 1 to 1/T, then a final 0 (length steps + 1). The network sees timestep = sigma * T."""
    # diffusers: sigma_max = 1, sigma_min = the last training sigma, float32(1 / T); linspace in float64.
    sigma_min = float(np.float32(1.0) / np.float32(num_train_timesteps))
    timesteps = np.linspace(num_train_timesteps * 1.0, sigma_min * num_train_timesteps, steps)
    sigmas = (timesteps / num_train_timesteps).astype(np.float32)
    return np.append(sigmas, np.float32(0.0)).astype(np.float32)
