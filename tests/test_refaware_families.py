"""Reference-aware generative families (issue #12): condition v2 and the residual target for diffusion, flow matching
and the normalizing flow. Their x_0 is the residual relative to the reference (training/models/base.py
to_residual / from_residual), sample()/refine() return model-space radiance, the ONNX engine adds the reference
back (nlf_target), staged sampling refuses a regression model of another condition version or target, and a
20-step smoke run of each *_refaware.toml trains, exports and fuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import tomllib
import torch

from nightlight_fusion_plugin.core.engine.transforms import (
    condition_stack_v,
    radiance_from_model,
    radiance_to_model,
    reference_dmsp,
)
from nightlight_fusion_plugin.core.errors import InputError
from nightlight_fusion_plugin.core.sensor.intercalibration import intercalibration_for
from training import checkpoint as ckpt
from training import train
from training.models import ConfigError, build_model, staged_sample
from training.models.base import RESIDUAL_SPAN, from_residual, to_residual
from training.models.schedules import ddim_timesteps, flow_match_sigmas

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "training" / "configs"
SAMPLE = REPO / "nightlight_fusion_plugin" / "sample_data"
GENERATIVE = ("diffusion", "flow_matching", "normalizing_flow")
V2 = {"condition_version": 2, "target": "residual_log"}
TINY = {
    "unet": {"family": "unet", "base_channels": 8, "channel_mult": [1, 2]},
    "diffusion": {
        "family": "diffusion",
        "base_channels": 8,
        "channel_mult": [1, 2],
        "prediction": "v_prediction",
        "schedule": "squaredcos_cap_v2",
        "sample_steps": 4,
        "clip_sample_range": 2.25,
    },
    "flow_matching": {"family": "flow_matching", "base_channels": 8, "channel_mult": [1, 2], "sample_steps": 4},
    "normalizing_flow": {
        "family": "normalizing_flow",
        "levels": 2,
        "steps_per_level": 2,
        "hidden_channels": 8,
        "condition_channels": 8,
    },
}


def tiny(family: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({**TINY[family], **overrides}).eval()


def v2_condition(size: int = 16, seed: int = 0) -> np.ndarray:
    """A real v2 condition stack [4, H, W]: random DMSP, a gamma-distributed reference with a hole."""
    rng = np.random.default_rng(seed)
    dnc = rng.uniform(0, 63, (size, size)).astype(np.float32)
    reference = rng.gamma(0.5, 5.0, (size, size)).astype(np.float32)
    reference[:4, :5] = np.nan
    simulated = reference_dmsp(reference, (0.46, 0.46), intercalibration_for("F15", 2005))
    return condition_stack_v(dnc, reference, simulated, 2)


def export_random(zoo: Path, model, model_id: str, tile: int = 16, **entry) -> Path:
    """`model` (random weights) exported to fp32 ONNX with the metadata training.export writes, registered in `zoo`."""
    from nightlight_fusion_plugin.core.engine import transforms
    from training.export import add_metadata, export_onnx, model_metadata, multiple_of, register, sha256_of

    zoo.mkdir(exist_ok=True)
    path = zoo / f"{model_id}.onnx"
    export_onnx(model.eval(), model.family, path, tile)
    state = {"meta": {**model.metadata(), "transforms": transforms.describe()}, "step": 0}
    add_metadata(path, model_metadata(state, model_id, "fp32", tile, multiple_of(model)))
    register(
        zoo,
        {"id": model_id, "family": model.family, "file": path.name, "precision": "fp32", "sha256": sha256_of(path), **entry},
    )
    return path


def zoo_model(zoo: Path, model_id: str):
    from nightlight_fusion_plugin.core.engine.zoo import load_manifest

    return {m.id: m for m in load_manifest(zoo)}[model_id]


# ------------------------------------------------------------------------------------------- config, semantics


@pytest.mark.parametrize("family", GENERATIVE)
def test_config_records_condition_version_and_target(family: str) -> None:
    model = tiny(family, **V2)
    assert model.in_channels == 4
    meta = model.metadata()
    assert meta["condition_version"] == 2 and meta["target"] == "residual_log"
    assert meta["config"]["condition_version"] == 2 and meta["config"]["target"] == "residual_log"
    v1 = tiny(family)
    assert v1.in_channels == 3 and v1.metadata()["target"] == "absolute"
    with pytest.raises(ValueError, match="4 channels; this model .condition_version 1. takes 3"):
        v1.sample(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ConfigError, match="target"):
        build_model({**TINY[family], "target": "residual"})
    with pytest.raises(ConfigError, match="condition_version"):
        build_model({**TINY[family], "condition_version": 3})


def test_residual_diffusion_refuses_a_clip_that_cuts_residuals() -> None:
    assert 2.2 < RESIDUAL_SPAN < 2.25
    assert RESIDUAL_SPAN == pytest.approx(1.0 - float(radiance_to_model(np.float32(-0.5))))
    with pytest.raises(ConfigError, match="clip_sample_range = 1.25 would clip valid residuals"):
        build_model({**TINY["diffusion"], **V2, "clip_sample_range": 1.25})
    build_model({**TINY["diffusion"], "clip_sample_range": 1.25})  # absolute models keep the old clip


def test_residual_transform_round_trips_and_matches_core() -> None:
    """to_residual is the exact inverse of from_residual, and from_residual is core's apply_target."""
    from nightlight_fusion_plugin.core.engine.transforms import apply_target

    cond = torch.from_numpy(v2_condition()[None])
    target = torch.rand(1, 1, 16, 16) * 2.2 - 1.2
    residual = to_residual(target, cond, "residual_log")
    mask = cond[:, 2:3] > 0
    assert not mask.all() and mask.any()
    torch.testing.assert_close(residual[mask], (target - cond[:, 1:2])[mask])
    assert torch.equal(residual[~mask], target[~mask])
    torch.testing.assert_close(from_residual(residual, cond, "residual_log"), target, atol=1e-6, rtol=0)
    core = apply_target(residual.numpy(), cond.numpy(), "residual_log")
    assert np.array_equal(from_residual(residual, cond, "residual_log").numpy(), core)
    assert to_residual(target, cond, "absolute") is target and from_residual(target, cond, "absolute") is target


def _zero_residual_oracle(model):
    """A network output that makes the sampler's x_0 estimate exactly 0 ("nothing changed") at every step."""
    if model.family == "diffusion":

        def forward(x_t, t, condition):  # x_0 = 0: x_t = sqrt(1 - abar) eps, v = sqrt(abar) eps
            abar = model.alphas_cumprod[t.long()][:, None, None, None]
            return abar.sqrt() * x_t / (1 - abar).sqrt()

        return forward
    return lambda x, sigma, condition: x / sigma[:, None, None, None]  # flow: v = noise - x_0 = x / sigma


@pytest.mark.parametrize("family", GENERATIVE)
def test_zero_residual_gives_the_reference(family: str, monkeypatch) -> None:
    """With x_0 forced to 0 the sample (and the staged refine) is the reference where the mask is 1 and 0 (the
    plain x_0) where it is 0; the same model with the absolute target would give 0 everywhere."""
    model = tiny(family, **V2)
    cond = torch.from_numpy(v2_condition()[None])
    mask = cond[:, 2:3] > 0
    generator = torch.Generator().manual_seed(0)
    if family == "normalizing_flow":  # untrained: zero priors and identity-like steps map z = 0 to x_0 = 0
        outputs = [model.sample(cond, generator=generator, temperature=0.0)]
    else:
        monkeypatch.setattr(model, "forward", _zero_residual_oracle(model))
        estimate = torch.rand(1, 1, 16, 16) * 2 - 1  # any warm start: noised, then denoised to x_0 = 0
        outputs = [model.sample(cond, generator=generator), model.refine(estimate, cond, 3, 0.5, generator=generator)]
    for out in outputs:
        torch.testing.assert_close(out[mask], cond[:, 1:2][mask], atol=1e-5, rtol=0)
        torch.testing.assert_close(out[~mask], torch.zeros_like(out[~mask]), atol=1e-5, rtol=0)
    model.config.target = "absolute"  # the same network read as absolute: no reference added
    again = model.sample(
        cond, generator=torch.Generator().manual_seed(0), **({"temperature": 0.0} if family == "normalizing_flow" else {})
    )
    assert float(again[mask].abs().max()) < 1e-4


@pytest.mark.parametrize("family", ["diffusion", "flow_matching"])
def test_refine_takes_and_returns_radiance(family: str, monkeypatch) -> None:
    """refine() takes a model-space estimate (a regression model's sample()) and returns radiance: with a zero network
    and almost no noise it returns the estimate itself, reference and all (it converts to and from the residual)."""
    model = tiny(family, **V2)
    monkeypatch.setattr(model, "forward", lambda x, t, condition: torch.zeros_like(x))
    cond = torch.from_numpy(v2_condition()[None])
    estimate = cond[:, 1:2] + 0.1  # "slightly brighter than the reference"
    out = model.refine(estimate, cond, 1, 1e-4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, estimate, atol=0.05, rtol=0)


@pytest.mark.parametrize("family", ["diffusion", "flow_matching"])
def test_loss_trains_on_the_residual(family: str) -> None:
    """The loss sees x_0 = target - reference: a residual model's loss on a batch equals the loss of the same network
    read as absolute on the batch whose target is the residual (same weights, same RNG)."""
    cond = torch.from_numpy(v2_condition()[None]).repeat(2, 1, 1, 1)
    target = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    valid = torch.ones_like(target)
    valid[:, :, :2] = 0
    residual_model, absolute_model = tiny(family, **V2).train(), tiny(family, condition_version=2).train()
    torch.manual_seed(2)
    ours, _ = residual_model.loss({"condition": cond, "target": target, "valid": valid})
    torch.manual_seed(2)
    residual = to_residual(target, cond, "residual_log")
    theirs, _ = absolute_model.loss({"condition": cond, "target": residual, "valid": valid})
    torch.testing.assert_close(ours, theirs)
    torch.manual_seed(2)
    plain, _ = residual_model.loss({"condition": cond, "target": residual, "valid": valid})
    assert float((plain - ours).abs()) > 1e-4  # the conversion matters


def test_flow_likelihood_is_of_the_residual_with_uninformative_fill(monkeypatch) -> None:
    """The normalizing flow's NLL is of x_0 = the residual; invalid pixels are 0 ("nothing changed") where a
    reference exists and -1 (no light) where it does not; an absolute model keeps the -1 fill everywhere."""
    cond = torch.from_numpy(v2_condition()[None])
    target = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    valid = torch.ones_like(target)
    valid[:, :, :6] = 0  # covers the reference hole (rows 0-3) and rows with a reference
    seen = {}
    for kind in ("residual_log", "absolute"):
        model = tiny("normalizing_flow", condition_version=2, target=kind)
        monkeypatch.setattr(model, "nll", lambda x, c, kind=kind: seen.setdefault(kind, x).new_zeros(1))
        model.loss({"condition": cond, "target": target, "valid": valid})
    mask, ok = cond[:, 2:3] > 0, valid > 0
    expected = torch.where(ok, target - cond[:, 1:2], torch.zeros_like(target))
    expected = torch.where(mask, expected, torch.where(ok, target, torch.full_like(target, -1.0)))
    torch.testing.assert_close(seen["residual_log"], expected)
    assert (~ok & mask).any() and (~ok & ~mask).any()
    assert torch.equal(seen["absolute"], torch.where(ok, target, torch.full_like(target, -1.0)))


# ------------------------------------------------------------------------------------------- staged sampling


@pytest.mark.parametrize("family", ["diffusion", "flow_matching"])
def test_staged_sampling_needs_the_same_condition_and_target(family: str) -> None:
    model = tiny(family, **V2)
    cond = torch.from_numpy(v2_condition()[None])
    out = staged_sample(tiny("unet", **V2), model, cond, steps=2, t_start=0.3)
    assert out.shape == (1, 1, 16, 16) and torch.isfinite(out).all()
    for regression in (tiny("unet"), tiny("unet", condition_version=2)):
        with pytest.raises(ValueError, match="same condition version and target"):
            staged_sample(regression, model, cond, steps=2, t_start=0.3)


def test_export_picks_and_checks_the_regression_partner(tmp_path: Path) -> None:
    from training.export import check_regression_partner, regression_partner

    zoo = tmp_path / "zoo"
    export_random(zoo, tiny("unet"), "unet-v1")
    export_random(zoo, tiny("unet", **V2), "unet-v2-residual")
    assert regression_partner(zoo, "fp32") == "unet-v1"
    assert regression_partner(zoo, "fp32", (2, "residual_log")) == "unet-v2-residual"
    assert regression_partner(zoo, "fp32", (2, "absolute")) is None
    check_regression_partner(zoo, "unet-v2-residual", "diffusion-x", (2, "residual_log"))
    with pytest.raises(ValueError, match=r"unet-v1 \(condition v1, target 'absolute'\) cannot warm-start diffusion-x"):
        check_regression_partner(zoo, "unet-v1", "diffusion-x", (2, "residual_log"))


def test_int8_calibration_noises_the_residual() -> None:
    """int8 calibration tiles of a residual flow-matching model are noised around x_0 = the residual: against the
    same tiles for an absolute model they differ by exactly (1 - sigma)·reference where the mask is 1."""
    from training.export import calibration_inputs

    data = {"kind": "synthetic", "condition_version": 2, "seed": 0}
    residual = calibration_inputs("flow_matching", {"target": "residual_log", "data": data}, 3, 16)
    absolute = calibration_inputs("flow_matching", {"target": "absolute", "data": data}, 3, 16)
    for ours, theirs in zip(residual, absolute):
        cond, sigma = ours["condition"], float(ours["timestep"][0]) / 1000.0
        assert cond.shape[1] == 4 and np.array_equal(cond, theirs["condition"])
        expected = np.where(cond[:, 2:3] > 0, (1 - sigma) * cond[:, 1:2], 0.0)
        np.testing.assert_allclose(theirs["sample"] - ours["sample"], expected, atol=1e-5)


@pytest.mark.parametrize("family", ["diffusion", "flow_matching"])
def test_engine_refuses_a_mismatched_regression_model(family: str, tmp_path: Path, monkeypatch) -> None:
    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

    zoo = tmp_path / "zoo"
    export_random(zoo, tiny("unet"), "unet-v1")
    export_random(zoo, tiny("unet", **V2), "unet-v2")
    export_random(zoo, tiny(family, **V2), "gen-bad", regression_model="unet-v1")
    export_random(zoo, tiny(family, **V2), "gen-good", regression_model="unet-v2")
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
    sampler = "ddim" if family == "diffusion" else "flow_euler"

    def request(model_id: str, name: str) -> FuseRequest:
        return FuseRequest(
            dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"),
            viirs=str(SAMPLE / "viirs_2015_reference_sample.tif"),
            output=str(tmp_path / name),
            model=model_id,
            sampler=sampler,
            steps=2,
            strength=0.5,
        )

    with pytest.raises(
        InputError, match=r"gen-bad \(condition v2, target 'residual_log'\).*unet-v1 \(condition v1, target 'absolute'\)"
    ):
        fuse(request("gen-bad", "bad.tif"))
    fuse(request("gen-good", "good.tif"))
    with rasterio.open(tmp_path / "good.tif") as src:
        assert np.isfinite(src.read(1, masked=True).compressed()).all()


# ------------------------------------------------------------------------------------------- torch vs engine


@pytest.mark.parametrize("family", ["diffusion", "flow_matching"])
def test_torch_sample_matches_the_onnx_engine(family: str, tmp_path: Path) -> None:
    """A random-weight v2 residual model: the engine (ONNX network, numpy sampler, condition v2 stack, nlf_target)
    and torch sample() from the same start noise give the same radiance."""
    from nightlight_fusion_plugin.core.engine.tiling import TileJob, tile_seed
    from nightlight_fusion_plugin.core.methods.generative import GenerativeFusion, SamplingPlan

    model = tiny(family, seed=3, **V2)
    zoo = tmp_path / "zoo"
    export_random(zoo, model, "gen")
    steps, seed = 6, 11
    plan = SamplingPlan("ddim" if family == "diffusion" else "flow_euler", steps, 1.0, steps)
    engine = GenerativeFusion(zoo_model(zoo, "gen"), plan, device="cpu", threads=1)
    rng = np.random.default_rng(5)
    dnc = rng.uniform(0, 63, (16, 16)).astype(np.float32)
    reference = rng.gamma(0.5, 5.0, (16, 16)).astype(np.float32)
    reference[3:7, 2:9] = np.nan
    reference_dnc = reference_dmsp(reference, (0.46, 0.46), intercalibration_for("F15", 2005))
    job = TileJob(row=2, col=5, y=0, x=0)
    ours = engine.members(dnc, reference, reference_dnc, [slice(0, 16)], [job], seed)[0][0]  # member 0, tile 0

    cond = torch.from_numpy(condition_stack_v(dnc, reference, reference_dnc, 2)[None])
    x_t = torch.from_numpy(tile_seed(seed, job.row, job.col, 0).standard_normal((1, 16, 16), dtype=np.float32)[None])
    with torch.no_grad():
        if family == "diffusion":
            x0 = model.ddim(x_t, cond, ddim_timesteps(1000, steps))
        else:
            x0 = model.euler(x_t, cond, flow_match_sigmas(steps))
    theirs = radiance_from_model(model.to_radiance(x0, cond).numpy())[0, 0]
    mask = cond[0, 2].numpy() > 0
    assert float(x0.abs().mean()) > 0.05  # the residual is not trivially 0: the reference really is added
    np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=2e-3)
    # ... and the residual was added to the reference: without it the result differs where the mask is 1
    assert np.abs(radiance_from_model(x0.numpy())[0, 0] - ours)[mask].max() > 0.1


def test_engine_zero_residual_flow_returns_the_reference(tmp_path: Path, monkeypatch) -> None:
    """Through the engine: an untrained v2 residual normalizing flow at temperature 0 (x_0 = 0) fuses the sample to
    the reference itself wherever the reference is present."""
    from test_refaware import assert_fused_is_the_reference

    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

    zoo = tmp_path / "zoo"
    export_random(zoo, tiny("normalizing_flow", **V2), "nf-zero")
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
    reference = SAMPLE / "viirs_2015_reference_sample.tif"
    out = tmp_path / "fused.tif"
    fuse(
        FuseRequest(
            dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"), viirs=str(reference), output=str(out), model="nf-zero", temperature=0.0
        )
    )
    assert_fused_is_the_reference(out, reference)


# ------------------------------------------------------------------------------------------- smoke runs


def small_config(family: str, real_data: Path) -> str:
    """The family's *_refaware.toml shrunk to seconds: tiny network, 16² tiles, 20 steps."""
    text = (CONFIGS / f"{family}_refaware.toml").read_text()
    for old, new in (
        ("base_channels = 32", "base_channels = 8"),
        ("channel_mult = [1, 2, 2, 2]", "channel_mult = [1, 2]"),
        ("sample_steps = 25", "sample_steps = 3"),
        ("sample_steps = 20", "sample_steps = 3"),
        ("levels = 3", "levels = 2"),
        ("steps_per_level = 6", "steps_per_level = 2"),
        ("hidden_channels = 64", "hidden_channels = 8"),
        ("condition_channels = 32", "condition_channels = 8"),
        ("tile = 64", "tile = 16"),
        ("length = 100000", "length = 64"),
        ("val_length = 64", "val_length = 4"),
        ("batch_size = 16", "batch_size = 4"),
        ("val_every = 1000", "val_every = 10"),
        ("checkpoint_every = 250", "checkpoint_every = 10"),
        ("warmup_steps = 200", "warmup_steps = 2"),
        ("num_workers = 1", "num_workers = 0"),
        ("seed = 0\nreference_dropout", f'seed = 0\nreal_dir = "{real_data}"\nreference_dropout'),
    ):
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("family", GENERATIVE)
def test_refaware_config_smoke_train_export_fuse(family: str, real_data: Path, tmp_path: Path, monkeypatch) -> None:
    """20 steps of FAMILY_refaware.toml (tiny), exported to ONNX beside a v2 residual UNet (which staged sampling
    picks as its partner), and the bundled sample fused with and without a reference."""
    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
    from training.export import export

    config = tomllib.loads((CONFIGS / f"{family}_refaware.toml").read_text())
    assert config["model"]["condition_version"] == 2 and config["model"]["target"] == "residual_log"
    assert config["data"]["kind"] == "refaware" and config["data"]["condition_version"] == 2
    path = tmp_path / "smoke.toml"
    path.write_text(small_config(family, real_data))
    out = tmp_path / "run"
    assert train.main(["--config", str(path), "--max-steps", "20", "--out", str(out)]) == 0
    state = ckpt.load(out)
    assert state["step"] == 20 and state["meta"]["condition_version"] == 2 and state["meta"]["target"] == "residual_log"

    zoo = tmp_path / "zoo"
    export_random(zoo, tiny("unet"), "unet-v1")
    export_random(zoo, tiny("unet", **V2), "unet-v2")
    entries = export(str(out / "checkpoint.pt"), zoo, quantize="none", model_id="smoke", tile=16)
    props = {p.key: p.value for p in onnx.load(str(zoo / entries[0]["file"])).metadata_props}
    assert props["nlf_condition_version"] == "2" and props["nlf_target"] == "residual_log"
    assert json.loads(props["nlf_input_channels"])[-1] == "reference_dmsp"
    if family != "normalizing_flow":
        assert entries[0]["regression_model"] == "unet-v2"  # not the zoo's v1 UNet
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
    runs = [(SAMPLE / "viirs_2015_reference_sample.tif", None), (None, None)]
    if family != "normalizing_flow":
        runs.append((SAMPLE / "viirs_2015_reference_sample.tif", 0.5))  # staged from unet-v2
    for i, (viirs, strength) in enumerate(runs):
        result = tmp_path / f"fused_{i}.tif"
        fuse(
            FuseRequest(
                dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"),
                viirs=None if viirs is None else str(viirs),
                output=str(result),
                model="smoke-fp32",
                steps=None if family == "normalizing_flow" else 3,
                sampler={"diffusion": "ddim", "flow_matching": "flow_euler"}.get(family),
                strength=strength,
            )
        )
        with rasterio.open(result) as src:
            band = src.read(1, masked=True)
            assert band.count() > 0 and np.isfinite(band.compressed()).all()
