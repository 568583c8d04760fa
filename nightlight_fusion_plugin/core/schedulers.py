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


# --- DDPM / DDIM: integer timesteps, alphas_cumprod directly -----------------------------------------------


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


# --- sigma-parametrised diffusion schedulers ---------------------------------------------------------------


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


# --- flow matching ------------------------------------------------------------------------------------------


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
