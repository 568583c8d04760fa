"""The scheduler configuration, noise schedules and the base class every scheduler extends."""


from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, NamedTuple, Optional

import numpy as np

F = np.float32  # numpy 1.x promotes float32 scalar (op) Python scalar to float64 (x**2 too); torch stays float32

DIFFUSION = "diffusion"
FLOW_MATCHING = "flow_matching"


@dataclass(frozen=True)
class SchedulerConfig:
    """Training-time noise process plus sampler options; field names and defaults follow diffusers.

    ``timestep_spacing=None`` means each scheduler's diffusers default ("leading" for DDPM and DDIM,
    "linspace" for the others). ``clip_sample`` defaults to False (diffusers: True for DDPM/DDIM) because our
    normalised radiance spans about [-1.2, 1]. Flow-matching schedulers only read ``num_train_timesteps`` and
    ``shift``.
    """

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"  # "linear" | "scaled_linear" | "squaredcos_cap_v2"
    prediction_type: str = "epsilon"  # "epsilon" | "v_prediction" (diffusion models only)
    timestep_spacing: Optional[str] = None  # "linspace" | "leading" | "trailing" | None (scheduler default)
    steps_offset: int = 0
    clip_sample: bool = False
    clip_sample_range: float = 1.0
    set_alpha_to_one: bool = True  # DDIM
    eta: float = 0.0  # DDIM: 0 deterministic, 1 DDPM-like ancestral noise
    final_sigmas_type: str = "zero"  # DPM-Solver++, Euler: "zero" | "sigma_min"
    shift: float = 1.0  # flow matching: sigma -> shift * sigma / (1 + (shift - 1) * sigma)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SchedulerConfig:
        """From a model's metadata or a diffusers scheduler_config.json; keys this class lacks are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


class StepOutput(NamedTuple):
    prev_sample: np.ndarray
    pred_original_sample: Optional[np.ndarray]


# --- noise schedules ---------------------------------------------------------------------------------------


def torch_linspace(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(start, end, steps, dtype=float32) bit for bit.

    torch fills the first half forwards and the second half backwards from a float32 step, each value one fused
    multiply-add; numpy's float64 linspace rounds differently in about a third of the entries.
    """
    start32, end32 = F(start), F(end)
    step = float((end32 - start32) / F(steps - 1)) if steps > 1 else 0.0
    i = np.arange(steps, dtype=np.float64)
    forward = float(start32) + step * i
    backward = float(end32) - step * (steps - 1 - i)
    return np.where(i < steps // 2, forward, backward).astype(np.float32)


def betas_for_alpha_bar(num_diffusion_timesteps: int, max_beta: float = 0.999) -> np.ndarray:
    """Cosine schedule (Nichol & Dhariwal 2021), betas capped at max_beta so the last step stays invertible."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    n = num_diffusion_timesteps
    betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)]
    return np.array(betas, dtype=np.float32)


def make_betas(config: SchedulerConfig) -> np.ndarray:
    n = config.num_train_timesteps
    if config.beta_schedule == "linear":
        return torch_linspace(config.beta_start, config.beta_end, n)
    if config.beta_schedule == "scaled_linear":
        return torch_linspace(config.beta_start**0.5, config.beta_end**0.5, n) ** 2
    if config.beta_schedule == "squaredcos_cap_v2":
        return betas_for_alpha_bar(n)
    raise ValueError(f"Unknown beta_schedule '{config.beta_schedule}' (linear, scaled_linear, squaredcos_cap_v2).")


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """Cumulative product of 1 - beta in float32; accumulated in float64 like torch.cumprod on CPU."""
    return np.cumprod((F(1) - betas).astype(np.float64)).astype(np.float32)


def _spaced_timesteps(spacing: str, num_train: int, n: int, steps_offset: int) -> np.ndarray:
    """The three spacings of diffusers' DDPM/DDIM/Euler/Heun set_timesteps (descending, float64)."""
    if spacing == "linspace":
        return np.linspace(0, num_train - 1, n)[::-1].copy()
    if spacing == "leading":
        return (np.arange(0, n) * (num_train // n)).round()[::-1].astype(np.float64) + steps_offset
    if spacing == "trailing":
        return np.round(np.arange(num_train, 0, -num_train / n)) - 1
    raise ValueError(f"Unknown timestep_spacing '{spacing}' (linspace, leading, trailing).")


def _noise(shape: tuple, noise: Optional[np.ndarray], rng: Optional[np.random.Generator]) -> np.ndarray:
    if noise is not None:
        return np.asarray(noise, dtype=np.float32)
    if rng is None:
        raise ValueError("This step adds fresh noise: pass noise= or rng=.")
    return rng.standard_normal(shape, dtype=np.float32)


# --- base class --------------------------------------------------------------------------------------------


class Scheduler:
    """Common life cycle: set_timesteps -> start_from -> step for every t in timesteps (one model call each)."""

    family: ClassVar[str] = DIFFUSION
    order: ClassVar[int] = 1  # model evaluations per solver step (Heun: 2); diffusers' img2img slices by it
    default_spacing: ClassVar[str] = "linspace"

    def __init__(self, config: Optional[SchedulerConfig] = None) -> None:
        self.config = config or SchedulerConfig()
        if self.family == DIFFUSION:
            self.betas = make_betas(self.config)
            self.alphas_cumprod = alphas_cumprod(self.betas)
        self.num_inference_steps: Optional[int] = None
        self.all_timesteps = np.empty(0, dtype=np.float32)  # the whole schedule of n steps
        self.timesteps = self.all_timesteps  # the part to run: all of it, or its tail for a warm start
        self.begin_index = 0
        self.step_index = 0

    @property
    def spacing(self) -> str:
        return self.config.timestep_spacing or self.default_spacing

    @property
    def init_noise_sigma(self) -> float:
        return 1.0

    def set_timesteps(self, num_inference_steps: int, strength: float = 1.0) -> None:
        """Build the schedule of ``num_inference_steps`` steps and keep the last ``int(n * strength)`` of them.

        strength < 1 is the staged warm start (SDEdit): sampling begins at an intermediate noise level from a
        noised estimate (:meth:`start_from`). The slicing is diffusers' img2img pipelines' (at least one step).
        """
        if num_inference_steps < 1:
            raise ValueError("num_inference_steps must be at least 1.")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}.")
        self.num_inference_steps = num_inference_steps
        full = self._full_schedule(num_inference_steps)
        run = max(1, min(int(num_inference_steps * strength), num_inference_steps))
        self.begin_index = (num_inference_steps - run) * self.order
        self.all_timesteps = full
        self.timesteps = full[self.begin_index :]
        self.step_index = self.begin_index
        self._reset()

    @classmethod
    def nfe(cls, num_inference_steps: int, strength: float = 1.0) -> int:
        """Model evaluations of a full run (= len(timesteps)): a 2nd-order step's last one is a plain Euler step."""
        run = max(1, min(int(num_inference_steps * strength), num_inference_steps))
        return run * cls.order - (cls.order - 1)

    def start_from(self, x0_hat: Optional[np.ndarray], noise: np.ndarray) -> np.ndarray:
        """The first sample: pure noise for a full run, else x0_hat noised to the first remaining timestep."""
        noise = np.asarray(noise, dtype=np.float32)
        if self.begin_index == 0:
            return noise * F(self.init_noise_sigma)
        if x0_hat is None:
            raise ValueError("A warm start (strength < 1) needs the estimate x0_hat.")
        return self.add_noise(np.asarray(x0_hat, dtype=np.float32), noise, self.begin_index)

    def scale_model_input(self, sample: np.ndarray, timestep: float) -> np.ndarray:
        return sample

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        """Forward process to the noise level of all_timesteps[index], in this scheduler's parametrisation."""
        raise NotImplementedError

    def step(
        self,
        model_output: np.ndarray,
        timestep: float,
        sample: np.ndarray,
        noise: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> StepOutput:
        """One update from ``sample`` at ``timestep`` to the next entry of ``timesteps``.

        Call it once per entry of ``timesteps``, in order: DDPM/DDIM read ``timestep``, the others (multistep and
        Heun state, sigma tables) follow their own step counter. ``noise`` (or else a draw from ``rng``) is used
        only by steps that add fresh noise (DDPM; DDIM with eta > 0).
        """
        raise NotImplementedError

    def _full_schedule(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget multistep / Heun state (called by set_timesteps)."""

    # diffusion parametrisation helpers

    def _x0_from(self, model_output: np.ndarray, sample: np.ndarray, ab: np.float32) -> np.ndarray:
        beta_prod = F(1) - ab
        if self.config.prediction_type == "epsilon":
            return (sample - np.sqrt(beta_prod) * model_output) / np.sqrt(ab)
        if self.config.prediction_type == "v_prediction":
            return np.sqrt(ab) * sample - np.sqrt(beta_prod) * model_output
        raise ValueError(f"Unsupported prediction_type '{self.config.prediction_type}' (epsilon, v_prediction).")

    def _clip(self, x0: np.ndarray) -> np.ndarray:
        if self.config.clip_sample:
            r = self.config.clip_sample_range
            return np.clip(x0, -r, r)
        return x0

    def _add_noise_vp(self, x0: np.ndarray, noise: np.ndarray, ab: np.float32) -> np.ndarray:
        return np.sqrt(ab) * x0 + np.sqrt(F(1) - ab) * noise


def _train_sigmas(ab: np.ndarray) -> np.ndarray:
    """sigma_t = sqrt((1 - ab) / ab): the noise level of x / sqrt(ab) = x0 + sigma eps (variance exploding)."""
    return np.sqrt((F(1) - ab) / ab)


def _final_sigma(scheduler: Scheduler) -> float:
    """The sigma the last step lands on: 0 (clean sample) or the smallest training sigma."""
    kind = scheduler.config.final_sigmas_type
    if kind == "zero":
        return 0.0
    if kind == "sigma_min":
        return float(_train_sigmas(scheduler.alphas_cumprod[:1])[0])
    raise ValueError(f"Unknown final_sigmas_type '{kind}' (zero, sigma_min).")


def heun_step(scheduler: Scheduler, sample: np.ndarray, x0_of: Callable[[np.ndarray, np.float32], np.ndarray]) -> StepOutput:
    """One call of Heun's method (Karras et al. Alg. 1) as diffusers' Heun schedulers make it: the first call
    of a step is an Euler predictor to the next sigma, the second a corrector averaging both slopes.
    `x0_of(sample, sigma)` is the model's clean estimate (it differs between diffusion and flow matching)."""
    i = scheduler.step_index
    if scheduler._predictor is None:
        sigma = scheduler.sigmas[i]
        x0 = x0_of(sample, sigma)
        derivative = (sample - x0) / sigma
        dt = scheduler.sigmas[i + 1] - sigma
        scheduler._predictor = (derivative, dt, sample)
        prev = sample + derivative * dt
    else:
        sigma_next = scheduler.sigmas[i]
        x0 = x0_of(sample, sigma_next)
        first, dt, start = scheduler._predictor
        scheduler._predictor = None
        derivative = (first + (sample - x0) / sigma_next) / F(2)
        prev = start + derivative * dt
    scheduler.step_index += 1
    return StepOutput(prev, x0)
