"""The sampling loop over any denoiser callable, and the registry of samplers the engine offers.

``denoiser(x, t, condition) -> model_output`` is whatever runs the network (the ONNX session wrapper): ``x`` is
the float32 [B, C, H, W] model input (already passed through the scheduler's ``scale_model_input``), ``t`` a
float32 [B] array holding the scheduler's timestep (integer-valued for DDPM/DDIM/DPM-Solver++, fractional for
Euler/Heun, sigma * num_train_timesteps for flow matching), ``condition`` is passed through untouched. The
model output is what the model family predicts: epsilon or v for diffusion (``SchedulerConfig.prediction_type``),
the velocity noise - x0 for flow matching.

Never imports torch; the schedulers are in :mod:`.schedulers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np

from .schedulers import (
    DIFFUSION,
    FLOW_MATCHING,
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverPP2MScheduler,
    EulerScheduler,
    FlowMatchEulerScheduler,
    FlowMatchHeunScheduler,
    HeunScheduler,
    Scheduler,
    SchedulerConfig,
)

Denoiser = Callable[[np.ndarray, np.ndarray, Any], np.ndarray]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    scheduler: type[Scheduler]
    family: str  # DIFFUSION or FLOW_MATCHING: which models the sampler can drive
    label: str
    stochastic: bool = False  # draws fresh noise at every step (DDIM only with eta > 0)

    def nfe(self, num_steps: int, strength: float = 1.0) -> int:
        """Model evaluations for ``num_steps`` steps (of which int(num_steps * strength) are run)."""
        return self.scheduler.nfe(num_steps, strength)

    def steps_for_nfe(self, budget: int) -> int:
        """The most steps a full run can take within ``budget`` model evaluations (at least 1)."""
        order = self.scheduler.order
        return max(1, (budget + order - 1) // order)


SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        SamplerSpec("ddpm", DDPMScheduler, DIFFUSION, "DDPM (ancestral)", stochastic=True),
        SamplerSpec("ddim", DDIMScheduler, DIFFUSION, "DDIM"),
        SamplerSpec("dpmpp_2m", DPMSolverPP2MScheduler, DIFFUSION, "DPM-Solver++ 2M"),
        SamplerSpec("euler", EulerScheduler, DIFFUSION, "Euler"),
        SamplerSpec("heun", HeunScheduler, DIFFUSION, "Heun (2nd order)"),
        SamplerSpec("flow_euler", FlowMatchEulerScheduler, FLOW_MATCHING, "Flow Euler"),
        SamplerSpec("flow_heun", FlowMatchHeunScheduler, FLOW_MATCHING, "Flow Heun (2nd order)"),
    )
}


def sampler_spec(name: str) -> SamplerSpec:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"Unknown sampler '{name}'. Known samplers: {', '.join(SAMPLERS)}.") from None


def samplers_for(family: str) -> list[str]:
    """Sampler names usable with a model family ("diffusion" or "flow_matching"), registry order."""
    return [name for name, spec in SAMPLERS.items() if spec.family == family]


def make_scheduler(name: str, config: Optional[SchedulerConfig] = None) -> Scheduler:
    return sampler_spec(name).scheduler(config)


def nfe(name: str, num_steps: int, strength: float = 1.0) -> int:
    return sampler_spec(name).nfe(num_steps, strength)


def steps_for_nfe(name: str, budget: int) -> int:
    return sampler_spec(name).steps_for_nfe(budget)


def sample(
    denoiser: Denoiser,
    condition: Any,
    scheduler: Scheduler,
    num_steps: int,
    rng: Union[np.random.Generator, int, None],
    x_init: Optional[np.ndarray] = None,
    strength: float = 1.0,
    *,
    shape: Optional[tuple[int, ...]] = None,
    progress: Optional[Progress] = None,
) -> np.ndarray:
    """Run ``scheduler`` for ``num_steps`` steps and return the float32 [B, C, H, W] sample.

    strength = 1 samples from pure noise (``x_init`` ignored). strength < 1 is the staged warm start: ``x_init``
    (the regression model's estimate x0_hat) is noised to the level of the first remaining step and only the last
    int(num_steps * strength) steps are run. ``shape`` defaults to x_init's, else one channel at the condition's
    batch and size. All randomness (the start noise, then any per-step noise, in that order) comes from ``rng``,
    so a seed reproduces a run exactly. ``progress(done, total)`` is called after each model evaluation; raise
    from it to cancel.
    """
    # any object with standard_normal(shape, dtype) will do (the engine passes per-tile noise sources)
    rng = rng if hasattr(rng, "standard_normal") else np.random.default_rng(rng)
    scheduler.set_timesteps(num_steps, strength)
    if shape is None:
        if x_init is not None:
            shape = tuple(np.shape(x_init))
        else:
            cond = np.shape(condition)
            shape = (cond[0], 1, *cond[2:])
    x = scheduler.start_from(x_init, rng.standard_normal(shape, dtype=np.float32))
    total = len(scheduler.timesteps)
    for done, t in enumerate(scheduler.timesteps, start=1):
        t_batch = np.full((shape[0],), t, dtype=np.float32)
        out = denoiser(scheduler.scale_model_input(x, t), t_batch, condition)
        x = scheduler.step(np.asarray(out, dtype=np.float32), t, x, rng=rng).prev_sample
        if progress is not None:
            progress(done, total)
    return x
