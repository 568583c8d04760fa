"""Export a trained checkpoint to ONNX for the plugin, quantize it, check parity, register it in the zoo.

python -m training.export CKPT --out model_zoo/ [--quantize int8|fp16|none] [--id ID]

The ONNX contract the plugin's engine (nightlight_fusion_plugin/core/generative.py) relies on:
  unet              condition[B,3,H,W] (condition v2: [B,4,H,W]) -> prediction[B,1,H,W]
  diffusion         sample[B,1,H,W], timestep[B] (float, 0..T), condition -> model_output (eps or v)
  flow_matching     sample, timestep[B] (= sigma·T, diffusers FlowMatch convention), condition -> velocity
  normalizing_flow  condition, latent[B,1,H,W] (standard normal × temperature) -> prediction
Everything the engine needs (family, prediction type, schedule, transforms, tile size) is in the model's
metadata_props (keys nlf_*; nlf_condition_version and nlf_target for every family: residual models' outputs and
samples are the residual, the engine adds the reference). Batch, height and width are dynamic (multiples of the model's factor).

Quantisation: static int8 QDQ with per-channel weights, calibrated on tiles drawn across all timesteps
(diffusion activations drift with t); a per-node sensitivity pass keeps the most damaging nodes in fp32
(`nodes_to_exclude`). fp16 (for GPU providers; CPU onnxruntime has no fp16 kernels) keeps float32 I/O.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from nightlight_fusion_plugin.core.engine import transforms

from .checkpoint import load as load_checkpoint
from .checkpoint import model_from_checkpoint
from .models.base import to_residual
from .models.normalizing_flow import InvConv1x1

OPSET = 17
PARITY_TIMESTEPS = (999.0, 750.0, 500.0, 250.0, 20.0)


class RegressionExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, condition):
        return self.model(condition)


class DiffusionExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, condition):
        return self.model(sample, timestep, condition)


class FlowMatchingExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.scale = float(model.config.num_train_timesteps)

    def forward(self, sample, timestep, condition):
        return self.model(sample, timestep / self.scale, condition)


class NormalizingFlowExport(nn.Module):
    """decode() with its prior draws replaced by slices of one latent image: latent dims equal pixel count
    (squeeze and split only rearrange), so a [B,1,H,W] standard-normal input carries all of them."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        for module in model.modules():  # ONNX has no matrix inverse: bake W⁻¹ into a constant
            if isinstance(module, InvConv1x1):
                w_inv = torch.linalg.inv(module.weight().double()).float().detach()
                module.reverse = lambda y, w=w_inv: F.conv2d(y, w[:, :, None, None])

    def forward(self, condition, latent):
        m = self.model
        features = m.encoder(condition)
        b, h, w = latent.shape[0], latent.shape[2], latent.shape[3]
        flat = latent.reshape(b, -1)
        offset = 0

        def take(mean, log_std):
            nonlocal offset
            c, hh, ww = mean.shape[1], mean.shape[2], mean.shape[3]
            n = c * hh * ww
            piece = flat[:, offset : offset + n].reshape(b, c, hh, ww)
            offset += n
            return mean + torch.exp(log_std) * piece

        mean, log_std = m.top_prior(features[-1]).chunk(2, dim=1)
        x = take(mean, log_std)
        for level in reversed(range(len(m.levels))):
            if level < len(m.levels) - 1:
                mean, log_std = m.split_priors[level](torch.cat([x, features[level]], dim=1)).chunk(2, dim=1)
                x = torch.cat([take(mean, log_std), x], dim=1)
            for step in reversed(m.levels[level]):
                x = step.reverse(x, features[level])
            x = x.reshape(b, x.shape[1] // 4, 2, 2, x.shape[2], x.shape[3]).permute(0, 1, 4, 2, 5, 3)
            x = x.reshape(b, x.shape[1], x.shape[2] * 2, x.shape[4] * 2)
        return x[:, :, :h, :w]


WRAPPERS = {
    "unet": RegressionExport,
    "diffusion": DiffusionExport,
    "flow_matching": FlowMatchingExport,
    "normalizing_flow": NormalizingFlowExport,
}
INPUTS = {
    "unet": ["condition"],
    "diffusion": ["sample", "timestep", "condition"],
    "flow_matching": ["sample", "timestep", "condition"],
    "normalizing_flow": ["condition", "latent"],
}


def example_inputs(
    family: str, batch: int, size: int, timestep: float = 500.0, seed: int = 0, channels: int = 3
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cond = rng.uniform(-1, 1, (batch, channels, size, size)).astype(np.float32)
    cond[:, 2] = 1.0
    x = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
    if family == "unet":
        return {"condition": cond}
    if family == "normalizing_flow":
        return {"condition": cond, "latent": 0.8 * x}
    return {"sample": x, "timestep": np.full((batch,), timestep, np.float32), "condition": cond}


def condition_channels(model) -> int:
    """Condition channels the model takes: 3 (condition v1) or 4 (v2)."""
    return int(getattr(model, "in_channels", 3))


def multiple_of(model) -> int:
    if getattr(model, "multiple", None):
        return int(model.multiple)
    return 2 ** (len(model.config.channel_mult) - 1) if hasattr(model.config, "channel_mult") else 8


def export_onnx(model, family: str, path: Path, tile: int) -> None:
    wrapper = WRAPPERS[family](model).eval()
    inputs = example_inputs(family, 2, tile, channels=condition_channels(model))
    dynamic = {name: {0: "batch", 2: "height", 3: "width"} for name in INPUTS[family] if name != "timestep"}
    if "timestep" in inputs:
        dynamic["timestep"] = {0: "batch"}
    dynamic["output"] = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            tuple(torch.from_numpy(inputs[n]) for n in INPUTS[family]),
            str(path),
            input_names=INPUTS[family],
            output_names=["output"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def torch_reference(model, family: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    wrapper = WRAPPERS[family](model).eval()
    with torch.no_grad():
        return wrapper(*(torch.from_numpy(inputs[n]) for n in INPUTS[family])).numpy()


def ort_run(path: Path, inputs: dict[str, np.ndarray], provider: str = "CPUExecutionProvider") -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=[provider])
    return session.run(None, {k: v for k, v in inputs.items()})[0]


def parity(model, family: str, path: Path, tile: int) -> dict[str, float]:
    """Max |torch − onnxruntime| at several timesteps (and sizes: dynamic shapes must work)."""
    errors = {}
    for t in PARITY_TIMESTEPS if family in ("diffusion", "flow_matching") else (500.0,):
        for size in (tile, tile + multiple_of(model)):
            inputs = example_inputs(family, 2, size, t, seed=int(t), channels=condition_channels(model))
            errors[f"t{int(t)}_s{size}"] = float(np.abs(torch_reference(model, family, inputs) - ort_run(path, inputs)).max())
    return errors


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def add_metadata(path: Path, meta: dict[str, str]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def model_metadata(state: dict, model_id: str, precision: str, tile: int, multiple: int) -> dict[str, str]:
    meta = state["meta"]
    family = meta["family"]
    schedule = dict(meta.get("schedule") or {})
    prediction = schedule.get("prediction_type", "velocity" if family == "flow_matching" else "")
    version = int(meta.get("condition_version") or 1)
    return {
        "nlf_family": family,
        "nlf_model_id": model_id,
        "nlf_precision": precision,
        "nlf_prediction_type": prediction,
        "nlf_schedule": json.dumps(schedule),
        "nlf_transforms": json.dumps(meta.get("transforms") or transforms.describe()),
        "nlf_input_channels": json.dumps(list(transforms.CONDITION_CHANNELS[version])),
        "nlf_condition_version": str(version),
        "nlf_target": str(meta.get("target") or "absolute"),
        "nlf_tile_size": str(tile),
        "nlf_multiple_of": str(multiple),
        "nlf_native_resolution": "15 arcsec (VIIRS DNB grid)",
        "nlf_training_data": json.dumps(meta.get("data") or {}),
        "nlf_version": f"{model_id} step {state.get('step')} commit {meta.get('git_commit', 'unknown')}",
        "nlf_config": json.dumps(meta.get("model_table") or {}),
    }


def calibration_inputs(family: str, meta: dict, count: int, tile: int, seed: int = 99) -> list[dict[str, np.ndarray]]:
    """Real model inputs for int8 calibration: dataset tiles, noised to timesteps drawn across the whole
    schedule (a diffusion model's activations at t≈999 and t≈0 differ widely; calibrating on one end
    clips the other)."""
    from nightlight_fusion_plugin.core.engine.schedulers import SchedulerConfig, alphas_cumprod, make_betas

    from .data import build_dataset

    data = meta.get("data") or {}
    dataset = build_dataset(
        {
            **{k: v for k, v in data.items() if k in ("kind", "seed", "spread", "condition_version")},
            "tile": tile,
            "val_length": count,
        },
        "val",
    )
    rng = np.random.default_rng(seed)
    target_kind = str(meta.get("target") or "absolute")
    abar = alphas_cumprod(make_betas(SchedulerConfig.from_dict(meta.get("schedule") or {}))) if family == "diffusion" else None
    out = []
    for i in range(count):
        item = dataset[i]
        cond = item["condition"].numpy()[None]
        # The generative variable the network is noised around: the residual for residual_log models.
        x0 = to_residual(item["target"][None], item["condition"][None], target_kind).numpy()
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        t = float(rng.integers(0, 1000))
        if family == "unet":
            out.append({"condition": cond})
        elif family == "normalizing_flow":
            out.append({"condition": cond, "latent": (0.8 * noise).astype(np.float32)})
        elif family == "flow_matching":
            s = t / 1000.0
            out.append(
                {
                    "sample": ((1 - s) * x0 + s * noise).astype(np.float32),
                    "timestep": np.array([t], np.float32),
                    "condition": cond,
                }
            )
        else:
            a = float(abar[int(t)])
            out.append(
                {
                    "sample": (np.sqrt(a) * x0 + np.sqrt(1 - a) * noise).astype(np.float32),
                    "timestep": np.array([t], np.float32),
                    "condition": cond,
                }
            )
    return out


def _reader(samples: list[dict[str, np.ndarray]]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(samples)

        def get_next(self):
            return next(self.items, None)

    return Reader()


def quantize_int8(
    fp32: Path, out: Path, samples: list[dict[str, np.ndarray]], exclude: list[str], only: list[str] | None = None
) -> None:
    """Static QDQ int8: per-channel symmetric int8 weights, asymmetric uint8 activations (U8S8, the fast
    combination on x86: measured on this project's UNet with onnxruntime's CPU provider, S8S8 QDQ ran 1.8x
    slower than fp32 and U8S8 1.4x faster)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _reader(samples),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            nodes_to_quantize=only,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )


def output_error(reference: Path, candidate: Path, samples: list[dict[str, np.ndarray]]) -> float:
    return float(np.mean([np.mean((ort_run(reference, s) - ort_run(candidate, s)) ** 2) for s in samples]))


def sensitivity_exclusions(fp32: Path, samples: list[dict[str, np.ndarray]], budget: int) -> tuple[list[str], dict]:
    """Mixed precision: quantize one Conv/Gemm node at a time, measure the output error that node alone
    causes, and keep the `budget` most damaging nodes in fp32."""
    if budget <= 0:
        return [], {}
    graph = onnx.load(str(fp32)).graph
    candidates = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.name]
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        single = Path(tmp) / "single.onnx"
        for name in candidates:
            quantize_int8(fp32, single, samples, [], only=[name])
            scores[name] = output_error(fp32, single, samples)
    ranked = sorted(scores, key=scores.get, reverse=True)
    return ranked[:budget], scores


def quantize_fp16(fp32: Path, out: Path) -> None:
    from onnxruntime.transformers import float16

    model = float16.convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    onnx.save(model, str(out))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(zoo: Path, entry: dict[str, Any]) -> None:
    manifest_path = zoo / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"version": 1, "models": []}
    manifest["models"] = [m for m in manifest["models"] if m["id"] != entry["id"]] + [entry]
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def export(
    checkpoint: str,
    zoo: Path,
    quantize: str = "int8",
    model_id: str | None = None,
    tile: int = 64,
    calibration_count: int = 64,
    exclude_budget: int = 2,
    regression: str | None = None,
) -> list[dict[str, Any]]:
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(checkpoint)
    family = state["meta"]["family"]
    model_id = model_id or f"{family.replace('_', '-')}"
    zoo.mkdir(parents=True, exist_ok=True)
    multiple = multiple_of(model)
    fp32_path = zoo / f"{model_id}-fp32.onnx"
    export_onnx(model, family, fp32_path, tile)
    add_metadata(fp32_path, model_metadata(state, f"{model_id}-fp32", "fp32", tile, multiple))
    report = {"parity_fp32": parity(model, family, fp32_path, tile)}
    worst = max(report["parity_fp32"].values())
    if worst > 1e-3:
        raise RuntimeError(f"ONNX export of {checkpoint} differs from torch by {worst:g} (> 1e-3): not exported")
    provenance = {
        "checkpoint": str(checkpoint),
        "step": state.get("step"),
        "commit": git_commit(),
        "command": " ".join(["python -m training.export", *sys.argv[1:]]),
        "trained_with": state["meta"].get("command"),
        "seed": state["meta"].get("seed"),
    }
    entries = [
        {
            "id": f"{model_id}-fp32",
            "family": family,
            "file": fp32_path.name,
            "precision": "fp32",
            "sha256": sha256_of(fp32_path),
            "size_bytes": fp32_path.stat().st_size,
            "variant_of": None,
            "parity": report["parity_fp32"],
            "provenance": provenance,
        }
    ]
    if quantize in ("int8", "fp16"):
        q_path = zoo / f"{model_id}-{quantize}.onnx"
        if quantize == "int8":
            samples = calibration_inputs(family, state["meta"], calibration_count, tile)
            exclude, scores = sensitivity_exclusions(fp32_path, samples[:8], exclude_budget)
            quantize_int8(fp32_path, q_path, samples, exclude)
            report["kept_fp32"] = exclude
        else:
            quantize_fp16(fp32_path, q_path)
        add_metadata(q_path, model_metadata(state, f"{model_id}-{quantize}", quantize, tile, multiple))
        errors = {}
        for t in PARITY_TIMESTEPS if family in ("diffusion", "flow_matching") else (500.0,):
            inputs = example_inputs(family, 2, tile, t, seed=int(t), channels=condition_channels(model))
            errors[f"t{int(t)}"] = float(np.abs(ort_run(fp32_path, inputs) - ort_run(q_path, inputs)).mean())
        entries.append(
            {
                "id": f"{model_id}-{quantize}",
                "family": family,
                "file": q_path.name,
                "precision": quantize,
                "sha256": sha256_of(q_path),
                "size_bytes": q_path.stat().st_size,
                "variant_of": f"{model_id}-fp32",
                "parity_mean_abs_vs_fp32": errors,
                "nodes_kept_fp32": report.get("kept_fp32", []),
                "provenance": provenance,
            }
        )
    if family in ("diffusion", "flow_matching"):
        # Staged sampling starts from the zoo's regression UNet of the same precision, condition version and target.
        wanted = condition_of(state["meta"])
        for entry in entries:
            if regression:
                check_regression_partner(zoo, regression, entry["id"], wanted)
            entry["regression_model"] = regression or regression_partner(zoo, entry["precision"], wanted)
    for entry in entries:
        entry["card"] = write_card(zoo, entry, state)
        register(zoo, entry)
    return entries


def write_card(zoo: Path, entry: dict[str, Any], state: dict) -> str:
    """model_zoo/cards/ID.md: what the model is, what it was trained on, how, and its known limits."""
    meta, provenance = state["meta"], entry["provenance"]
    data = meta.get("data") or {}
    card = Path("cards") / f"{entry['id']}.md"
    (zoo / "cards").mkdir(parents=True, exist_ok=True)
    variant = f", quantized from {entry['variant_of']}" if entry.get("variant_of") else ""
    semi_real = (
        " plus semi-real Greece tiles (real VIIRS 2017 truth, simulated DMSP) outside the Thessaloniki hold-out"
        if data.get("kind") in ("mixed", "semi_real", "refaware")
        else ""
    )
    if data.get("kind") == "refaware":
        semi_real += (
            f"; {data.get('real_structure_fraction', 0.5):.0%} of the tiles are real Sudan Black Marble pairs (VNP46A3 "
            "February 2023 and 2024, each year the reference of the other, DMSP simulated from the target) outside the "
            "real-temporal hold-out (training/data/holdout.py)"
        )
    if data.get("reference_gaps"):
        ranges = ", ".join(f"{lo}–{hi}" for lo, hi in data["reference_gaps"])
        semi_real += (
            f"; synthetic reference/target gaps drawn from {ranges} years, the reference earlier than the target with "
            f"p = {data.get('reference_before', 0.5)}"
        )
    init = meta.get("init_from")
    fine_tuned = (
        f"  fine-tuned from the EMA weights of `{init['checkpoint']}` (step {init['step']}, sha256 {init['sha256'][:12]}…);"
        if init
        else None
    )
    sessions = meta.get("history") or [{"command": meta.get("command"), "git_commit": meta.get("git_commit")}]
    command = "; then ".join(
        f"`{readable_command(h.get('command'))}`"
        + (f" from step {h['from_step']}" if h.get("from_step") else "")
        + f" at commit {h.get('git_commit', 'unknown')}"
        + (f" on {h['device']}" if h.get("device") else "")
        for h in sessions
    )
    lines = [
        f"# {entry['id']}",
        "",
        f"- **Family**: {entry['family']} ({entry['precision']}{variant})"
        + (
            f"; condition v{meta['condition_version']}, target `{meta.get('target', 'absolute')}`"
            if int(meta.get("condition_version") or 1) > 1
            else ""
        ),
        "- **Task**: VIIRS-like radiance (nW/cm²/sr, 15″) for the year of a DMSP-OLS stable-lights raster, optionally",
        "  guided by a VIIRS DNB reference of another year (see docs/training_data.md).",
        f"- **Training data**: {data.get('kind', 'synthetic')}: simulated DMSP/VIIRS scene pairs (training/simulate, sensor",
        f"  model calibrated on real Athens DMSP F18 2013 vs Greece VIIRS 2017){semi_real}; tiles {data.get('tile', 64)}²,",
        f"  reference dropped at random (p = {data.get('reference_dropout', 0.3)}).",
        f"- **How it was trained**: {command}; seed {meta.get('seed')}, {state.get('step')} steps",
        f"  (run directory `{provenance['checkpoint']}`);",
        *([fine_tuned] if fine_tuned else []),
        f"  exported by `{provenance['command']}` at commit {provenance['commit']}.",
        "- **Intended use**: backcasting VIIRS-like night lights for 1992–2013 DMSP years, and cross-sensor",
        "  super-resolution without a reference, for regional analysis in QGIS.",
        "- **Limits**: never validated on real 1990s DMSP against real VIIRS (no such pairs exist; real co-registered",
        "  pairs exist only for 2012–2013 and are not available here); semi-real references are synthetic changes of",
        "  2017 VIIRS; Greece VIIRS used in training is integer-rounded and clipped at 231 nW/cm²/sr; DMSP sensors",
        "  outside the randomised training range (the robustness hold-out in docs/design_space.md) may degrade it.",
        "- **Measured quality**: `metrics` and `speed_levels` of this id in model_zoo/manifest.json and",
        "  docs/design_space.md (both written by `make report`).",
    ]
    (zoo / card).write_text("\n".join(lines) + "\n")
    return card.as_posix()


def readable_command(argv: list[str] | None) -> str:
    """A recorded command line as a user would type it (python -m ..., not the interpreter's full path)."""
    if not argv:
        return "python -m training.train"
    head = "python" if Path(argv[0]).name.startswith("python") else argv[0]
    return " ".join([head, *argv[1:]])


def condition_of(meta: dict) -> tuple[int, str]:
    """(condition version, target) of a checkpoint's meta; absent = (1, 'absolute'), as in model_metadata."""
    return int(meta.get("condition_version") or 1), str(meta.get("target") or "absolute")


def zoo_condition(zoo: Path, entry: dict[str, Any]) -> tuple[int, str] | None:
    """(condition version, target) of an exported zoo model, from its ONNX metadata; None if its file is missing."""
    path = zoo / entry["file"]
    if not path.is_file():
        return None
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return transforms.condition_version(props), transforms.model_target(props)


def check_regression_partner(zoo: Path, regression: str, model_id: str, wanted: tuple[int, str]) -> None:
    """--regression must name a zoo UNet with the generative model's condition version and target: its raw output
    is the warm start, so it must lie in the same x_0 space (the engine refuses a mismatch too)."""
    manifest_path = zoo / "manifest.json"
    models = json.loads(manifest_path.read_text())["models"] if manifest_path.exists() else []
    entry = next((m for m in models if m["id"] == regression), None)
    if entry is None:  # exporting before the regression model is fine; the engine checks when it is used
        return
    if entry["family"] != "unet":
        raise ValueError(f"--regression {regression} is a {entry['family']} model, not a regression UNet")
    have = zoo_condition(zoo, entry)
    if have is not None and have != wanted:
        raise ValueError(
            f"--regression {regression} (condition v{have[0]}, target {have[1]!r}) cannot warm-start {model_id} "
            f"(condition v{wanted[0]}, target {wanted[1]!r}): staged sampling needs the same condition version and target"
        )


def regression_partner(zoo: Path, precision: str, wanted: tuple[int, str] = (1, "absolute")) -> str | None:
    """The zoo's regression UNet of this precision (else fp32) whose condition version and target are `wanted`."""
    manifest_path = zoo / "manifest.json"
    if not manifest_path.exists():
        return None
    unets = {
        m["precision"]: m["id"]
        for m in json.loads(manifest_path.read_text())["models"]
        if m["family"] == "unet" and zoo_condition(zoo, m) == wanted
    }
    return unets.get(precision) or unets.get("fp32")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", type=Path, default=Path("model_zoo"))
    parser.add_argument("--quantize", choices=["int8", "fp16", "none"], default="int8")
    parser.add_argument("--id", dest="model_id")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--calibration-tiles", type=int, default=64)
    parser.add_argument(
        "--regression",
        help="zoo id of the regression UNet that staged sampling starts from (default: the zoo's UNet of the same precision)",
    )
    args = parser.parse_args(argv)
    for entry in export(
        args.checkpoint, args.out, args.quantize, args.model_id, args.tile, args.calibration_tiles, regression=args.regression
    ):
        print(f"{entry['id']}: {entry['file']} ({entry['size_bytes'] / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
