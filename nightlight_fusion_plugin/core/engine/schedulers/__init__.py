"""Numpy noise schedulers for the sampling engine: diffusers' schedulers, re-done without torch.

One small class per scheduler, used like diffusers::

    sched = DDIMScheduler(SchedulerConfig(beta_schedule="squaredcos_cap_v2"))
    sched.set_timesteps(20)                      # or set_timesteps(20, strength=0.4): warm start, 8 steps
    x = sched.start_from(x0_hat, noise)          # pure noise * init_noise_sigma when strength == 1
    for t in sched.timesteps:
        out = model(sched.scale_model_input(x, t), t)
        x = sched.step(out, t, x, rng=rng).prev_sample

Every class reproduces its diffusers namesake (timesteps, sigmas, update rule) with the default options our
models use; the options diffusers offers that we never need (Karras sigmas, thresholding, learned variances,
SDE variants, dynamic shifting) are left out. Scalar coefficients are computed in float32 in diffusers' order of
operations, not in float64: several updates are ill-conditioned (x0 = (x - sqrt(1 - ab) eps) / sqrt(ab) with
ab ~ 1e-9 at the end of the cosine schedule, Euler samples of size sigma_max ~ 2e4), and agreeing with diffusers
to 1e-5 there needs the same roundings, not only the same formulas. (torch's pow(x, 0.5) is not always
correctly rounded, so a sigma or init_noise_sigma may still differ from diffusers' by one float32 ulp.)
Never imports torch.
"""

from .base import (
    DIFFUSION,
    FLOW_MATCHING,
    Scheduler,
    SchedulerConfig,
    StepOutput,
    alphas_cumprod,
    betas_for_alpha_bar,
    heun_step,
    make_betas,
    torch_linspace,
)
from .ddim import DDIMScheduler
from .ddpm import DDPMScheduler
from .dpm_solver import DPMSolverPP2MScheduler
from .euler import EulerScheduler
from .flow_match import FlowMatchEulerScheduler, FlowMatchHeunScheduler
from .heun import HeunScheduler

__all__ = [
    "DIFFUSION",
    "FLOW_MATCHING",
    "DDIMScheduler",
    "DDPMScheduler",
    "DPMSolverPP2MScheduler",
    "EulerScheduler",
    "FlowMatchEulerScheduler",
    "FlowMatchHeunScheduler",
    "HeunScheduler",
    "Scheduler",
    "SchedulerConfig",
    "StepOutput",
    "alphas_cumprod",
    "betas_for_alpha_bar",
    "heun_step",
    "make_betas",
    "torch_linspace",
]
