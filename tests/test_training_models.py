"""Model families of the training package: schedules, shapes on odd tiles, conditioning, samplers, flow
invertibility and exact likelihood, losses that go down. CPU, tiny models, seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from training.data import build_dataset
from training.models import FAMILIES, ConfigError, StagedSampler, build_model, staged_sample
from training.models.diffusion import ConditionalDDPM, DiffusionConfig
from training.models.flow_matching import FlowMatchingConfig, RectifiedFlow
from training.models.normalizing_flow import ConditionalGlow, FlowConfig, squeeze, unsqueeze
from training.models.schedules import alphas_cumprod, ddim_timesteps, ddpm_betas, flow_match_sigmas
from training.models.unet import UNet, UNetConfig

TINY_UNET = {"base_channels": 8, "channel_mult": [1, 2, 2]}
TINY = {
    "unet": {"family": "unet", **TINY_UNET},
    "diffusion": {"family": "diffusion", **TINY_UNET, "sample_steps": 3},
    "diffusion_v": {"family": "diffusion", **TINY_UNET, "sample_steps": 3, "prediction": "v_prediction", "schedule": "linear"},
    "flow_matching": {"family": "flow_matching", **TINY_UNET, "sample_steps": 3},
    "normalizing_flow": {
        "family": "normalizing_flow",
        "levels": 2,
        "steps_per_level": 2,
        "hidden_channels": 16,
        "condition_channels": 8,
    },
}


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    ds = build_dataset({"tile": 16, "length": 8, "seed": 3}, "train")
    return default_collate([ds[i] for i in range(4)])


def tiny(name: str, batch: dict[str, torch.Tensor] | None = None, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(TINY[name])
    if batch is not None and hasattr(model, "data_init"):
        model.data_init(batch)
    return model


# ------------------------------------------------------------------------------------------ schedules


@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
def test_q_sample_statistics_match_alpha_bar(schedule: str) -> None:
    """x_t | x_0 has mean sqrt(abar_t) x_0 and variance 1 - abar_t."""
    model = ConditionalDDPM(DiffusionConfig(schedule=schedule, base_channels=8, channel_mult=(1, 2)))
    abar = model.alphas_cumprod
    n = 200_000
    x0 = torch.full((n, 1, 1, 1), 0.7)
    gen = torch.Generator().manual_seed(0)
    for t in (0, 10, 250, 500, 999):
        noise = torch.randn(x0.shape, generator=gen)
        xt = model.q_sample(x0, torch.full((n,), t), noise).flatten().double()
        mean, var = 0.7 * abar[t].sqrt().item(), 1 - abar[t].item()
        assert abs(xt.mean().item() - mean) < 5 * math.sqrt(var / n) + 1e-6
        assert abs(xt.var().item() - var) < 5 * var * math.sqrt(2 / n) + 1e-7


def test_betas_follow_the_diffusers_formulas() -> None:
    linear = ddpm_betas("linear", 1000, 1e-4, 0.02)
    assert linear.dtype == torch.float32 and linear.shape == (1000,)
    np.testing.assert_allclose(linear.numpy(), np.linspace(1e-4, 0.02, 1000), rtol=1e-6, atol=1e-9)

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    cosine = ddpm_betas("squaredcos_cap_v2", 1000).double().numpy()
    expected = [min(1 - alpha_bar((i + 1) / 1000) / alpha_bar(i / 1000), 0.999) for i in range(1000)]
    np.testing.assert_allclose(cosine, expected, rtol=1e-6, atol=1e-9)
    assert cosine[-1] == pytest.approx(0.999)  # the cap
    # alpha_bar telescopes: cumprod(1 - beta) = alpha_bar(t + 1) / alpha_bar(0) where the cap is not hit.
    abar = alphas_cumprod(ddpm_betas("squaredcos_cap_v2", 1000)).double().numpy()
    np.testing.assert_allclose(abar[:990], [alpha_bar((i + 1) / 1000) / alpha_bar(0) for i in range(990)], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="Unknown noise schedule"):
        ddpm_betas("scaled_linear")


def test_samplers_match_diffusers_when_installed() -> None:
    diffusers = pytest.importorskip("diffusers")
    for schedule in ("linear", "squaredcos_cap_v2"):
        model = ConditionalDDPM(DiffusionConfig(schedule=schedule, base_channels=8, channel_mult=(1, 2)))
        reference = diffusers.DDPMScheduler(
            **{k: v for k, v in model.scheduler_config().items() if k not in ("set_alpha_to_one",)}
        )
        np.testing.assert_allclose(model.betas.numpy(), reference.betas.numpy(), rtol=0, atol=1e-7)
        np.testing.assert_allclose(model.alphas_cumprod.numpy(), reference.alphas_cumprod.numpy(), rtol=0, atol=1e-6)
        ddim = diffusers.DDIMScheduler(**model.scheduler_config())
        ddim.set_timesteps(25)
        np.testing.assert_array_equal(ddim.timesteps.numpy(), ddim_timesteps(1000, 25))
    flow = diffusers.FlowMatchEulerDiscreteScheduler(**RectifiedFlow(FlowMatchingConfig(base_channels=8)).scheduler_config())
    flow.set_timesteps(20)
    np.testing.assert_allclose(flow.sigmas.numpy(), flow_match_sigmas(20), rtol=0, atol=1e-6)
    np.testing.assert_allclose(flow.timesteps.numpy(), flow_match_sigmas(20)[:-1] * 1000, rtol=1e-6)


def fake_network(x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """A smooth deterministic stand-in for a trained net (depends on x, t and the condition)."""
    return torch.tanh(0.8 * x + 0.3 * condition[:, :1]) * (0.5 + t[:, None, None, None] / 1000)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_loop_matches_diffusers(prediction: str, monkeypatch) -> None:
    diffusers = pytest.importorskip("diffusers")
    model = ConditionalDDPM(DiffusionConfig(prediction=prediction, base_channels=8, channel_mult=(1, 2)))
    monkeypatch.setattr(model, "forward", fake_network)
    cond = torch.rand(2, 3, 8, 8) * 2 - 1
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = model.ddim(x, cond, ddim_timesteps(1000, 10))
    scheduler = diffusers.DDIMScheduler(**model.scheduler_config())
    scheduler.set_timesteps(10)
    ref = x
    for t in scheduler.timesteps:
        ref = scheduler.step(fake_network(ref, t.float().expand(2), cond), t, ref, eta=0.0).prev_sample
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_euler_loop_matches_diffusers(monkeypatch) -> None:
    diffusers = pytest.importorskip("diffusers")
    model = RectifiedFlow(FlowMatchingConfig(base_channels=8, channel_mult=(1, 2)))
    monkeypatch.setattr(model, "forward", lambda x, s, c: fake_network(x, s * 1000, c))
    cond = torch.rand(2, 3, 8, 8) * 2 - 1
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = model.euler(x, cond, flow_match_sigmas(8))
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(**model.scheduler_config())
    scheduler.set_timesteps(8)
    ref = x
    for t in scheduler.timesteps:
        ref = scheduler.step(fake_network(ref, t.expand(2), cond), t, ref).prev_sample
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_ddim_and_flow_schedules() -> None:
    assert list(ddim_timesteps(1000, 4)) == [750, 500, 250, 0]
    sigmas = flow_match_sigmas(5)
    assert len(sigmas) == 6 and sigmas[0] == 1.0 and sigmas[-1] == 0.0
    assert sigmas[-2] == pytest.approx(1e-3) and np.all(np.diff(sigmas) < 0)


# -------------------------------------------------------------------------------- samplers with oracles


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_with_a_perfect_denoiser_returns_x0(prediction: str, monkeypatch) -> None:
    """If the network's output were exact for a known x_0, DDIM must land on x_0 (checks the algebra of
    both parametrisations and of the sampler)."""
    model = ConditionalDDPM(DiffusionConfig(prediction=prediction, base_channels=8, channel_mult=(1, 2)))
    x0 = torch.linspace(-1.1, 0.9, 2 * 11 * 13).reshape(2, 1, 11, 13)

    def oracle(x_t, t, condition):
        abar = model.alphas_cumprod[t.long()][:, None, None, None]
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()
        return eps if prediction == "epsilon" else abar.sqrt() * eps - (1 - abar).sqrt() * x0

    monkeypatch.setattr(model, "forward", oracle)
    cond = torch.zeros(2, 3, 11, 13)
    out = model.sample(cond, generator=torch.Generator().manual_seed(0), steps=10)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)
    out = model.refine(x0 + 0.3, cond, steps=5, t_start=0.4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_flow_matching_euler_with_exact_velocity_returns_x0(monkeypatch) -> None:
    model = RectifiedFlow(FlowMatchingConfig(base_channels=8, channel_mult=(1, 2)))
    x0 = torch.linspace(-1.1, 0.9, 2 * 9 * 7).reshape(2, 1, 9, 7)
    # On the straight path x = (1 - s) x0 + s n the velocity is n - x0 = (x - x0) / s.
    monkeypatch.setattr(model, "forward", lambda x, sigma, c: (x - x0) / sigma[:, None, None, None])
    out = model.sample(torch.zeros(2, 3, 9, 7), generator=torch.Generator().manual_seed(0), steps=4)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- shapes and conditioning


@pytest.mark.parametrize("size", [(36, 52), (37, 53), (5, 3)])
@pytest.mark.parametrize("time_embedding", [False, True])
def test_unet_any_size(size: tuple[int, int], time_embedding: bool) -> None:
    net = UNet(4, 1, UNetConfig(8, (1, 2, 2, 2), attention=True), time_embedding=time_embedding)
    x = torch.randn(2, 4, *size)
    out = net(x, torch.tensor([3.0, 500.0]) if time_embedding else None)
    assert out.shape == (2, 1, *size)


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("size", [(36, 52), (37, 53)])
def test_family_sample_shape_and_conditioning(name: str, size: tuple[int, int]) -> None:
    """All families accept odd tiles (the UNet pads internally; the flow pads to a multiple of 2**levels)
    and their samples depend on the condition and, for a fixed generator, on nothing else."""
    model = tiny(name).eval()
    # A trained-looking model: untrained generative nets have zero-init output layers, so randomise weights.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cond = torch.rand(2, 3, *size) * 2 - 1
    other = cond.clone()
    other[:, 0] = -other[:, 0]

    def draw(c: torch.Tensor) -> torch.Tensor:
        return model.sample(c, generator=torch.Generator().manual_seed(7))

    out = draw(cond)
    assert out.shape == (2, 1, *size) and out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(draw(cond), out, atol=0, rtol=0)
    assert (draw(other) - out).abs().max() > 1e-4


@pytest.mark.parametrize("name", list(TINY))
def test_loss_decreases_on_a_fixed_batch(name: str, batch: dict[str, torch.Tensor]) -> None:
    model = tiny(name, batch)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def fixed_loss() -> float:
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(123)  # same timesteps / noise / dequantisation every evaluation
            return float(model.loss(batch)[0])

    before = fixed_loss()
    for _ in range(25):
        loss, logs = model.loss(batch)
        assert math.isfinite(float(loss.detach())) and "loss" in logs
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed_loss() < before


def test_loss_ignores_invalid_pixels(batch: dict[str, torch.Tensor]) -> None:
    model = tiny("unet")
    masked = dict(batch, valid=batch["valid"].clone(), target=batch["target"].clone())
    masked["valid"][..., :8, :] = 0
    changed = dict(masked, target=masked["target"].clone())
    changed["target"][..., :8, :] = 5.0  # garbage where the target is unknown
    torch.testing.assert_close(model.loss(masked)[0], model.loss(changed)[0])


# --------------------------------------------------------------------------------- normalizing flow


def test_squeeze_roundtrip() -> None:
    x = torch.randn(2, 3, 8, 12)
    assert squeeze(x).shape == (2, 12, 4, 6)
    torch.testing.assert_close(unsqueeze(squeeze(x)), x, atol=0, rtol=0)


def test_flow_is_invertible(batch: dict[str, torch.Tensor]) -> None:
    model = tiny("normalizing_flow", batch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    x, cond = batch["target"], batch["condition"]
    with torch.no_grad():
        zs, logp = model.encode(x, cond)
        back = model.decode(cond, zs)
    assert torch.isfinite(logp).all()
    torch.testing.assert_close(back, x, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="multiple of 4"):
        model.encode(torch.zeros(1, 1, 6, 8), torch.zeros(1, 3, 6, 8))


def test_flow_log_likelihood_is_exact() -> None:
    """log p(x) = log N(f(x)) + log|det df/dx|: compare with the Jacobian computed by autograd (8×8 tile).
    Prior convs are zero-initialised (standard normal priors), the rest is randomised."""
    torch.manual_seed(0)
    model = ConditionalGlow(FlowConfig(levels=2, steps_per_level=2, hidden_channels=8, condition_channels=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "prior" not in name:
                p.add_(0.1 * torch.randn_like(p))
    model.eval().double()
    cond = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64) * 2 - 1

    def flat(v: torch.Tensor) -> torch.Tensor:
        zs, _ = model.encode(v.reshape(1, 1, 8, 8), cond)
        return torch.cat([z.flatten() for z in zs])

    jac = torch.autograd.functional.jacobian(flat, x.flatten())
    z = flat(x.flatten())
    expected = -0.5 * (z**2).sum() - 0.5 * z.numel() * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
    with torch.no_grad():
        _, logp = model.encode(x, cond)
    assert float(logp[0]) == pytest.approx(float(expected.detach()), abs=1e-6)


def test_flow_pads_tiles_that_are_not_multiples(batch: dict[str, torch.Tensor]) -> None:
    model = tiny("normalizing_flow", batch)
    odd = {k: v[..., :13, :10] for k, v in batch.items()}
    loss, logs = model.loss(odd)
    assert math.isfinite(float(loss)) and "bits_per_dim" in logs
    assert model.sample(odd["condition"], temperature=0.5).shape == (4, 1, 13, 10)


# -------------------------------------------------------------------------------------- staged, config


@pytest.mark.parametrize("generative", ["diffusion", "flow_matching"])
def test_staged_sampling(generative: str) -> None:
    regression, model = tiny("unet").eval(), tiny(generative).eval()
    cond = torch.rand(2, 3, 17, 19)
    out = staged_sample(regression, model, cond, steps=3, t_start=0.3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 17, 19) and torch.isfinite(out).all()
    sampler = StagedSampler(regression, model, steps=3, t_start=0.3)
    torch.testing.assert_close(sampler(cond, generator=torch.Generator().manual_seed(0)), out)
    with pytest.raises(ValueError, match="warm-start"):
        StagedSampler(regression, tiny("normalizing_flow"))


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="base_chanels"):
        build_model({"family": "unet", "base_chanels": 8})
    with pytest.raises(ConfigError, match="Unknown model family.*gan"):
        build_model({"family": "gan"})
    with pytest.raises(ConfigError, match="prediction"):
        build_model({"family": "diffusion", "prediction": "x0"})
    with pytest.raises(ConfigError, match="steps_per_level must be an integer"):
        build_model({"family": "normalizing_flow", "steps_per_level": 1.5})
    assert set(FAMILIES) == {"unet", "diffusion", "flow_matching", "normalizing_flow"}


def test_default_models_are_cpu_sized() -> None:
    for family in FAMILIES:
        params = sum(p.numel() for p in build_model({"family": family}).parameters())
        assert 0.5e6 < params < 3e6, (family, params)


# ------------------------------------------------------------------------------------------ diagnose


def test_x0_error_by_timestep_matches_the_closed_form_for_a_null_model(batch):
    """An ε model that predicts 0 estimates x_0 = x_t / sqrt(abar): its error is (1 - abar)/abar times the
    noise variance (before clipping), so it grows with t; the diagnosis must reproduce that."""
    from training.diagnose import x0_error_by_timestep

    model = build_model({"family": "diffusion", **TINY_UNET, "schedule": "linear", "clip_sample_range": 1e6})
    model.forward = lambda x_t, t, condition: torch.zeros_like(x_t)
    big = {k: v.repeat(4, 1, 1, 1) for k, v in batch.items() if k in ("target", "condition", "valid")}
    errors = x0_error_by_timestep(model, big, [10, 100, 300])
    for t, error in errors.items():
        abar = float(model.alphas_cumprod[t])
        assert error == pytest.approx((1 - abar) / abar, rel=0.15), t
    assert errors[10] < errors[100] < errors[300]
    with pytest.raises(ValueError, match="diffusion"):
        x0_error_by_timestep(tiny("flow_matching"), big, [10])
