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
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import load as load_checkpoint
from .checkpoint import model_from_checkpoint
from .onnx_export.metadata import add_metadata, condition_of, git_commit, model_metadata
from .onnx_export.quantize import (
    calibration_description,
    calibration_inputs,
    output_error,
    quantize_fp16,
    quantize_int8,
    sensitivity_exclusions,
)
from .onnx_export.wrappers import (
    INPUTS,
    OPSET,
    PARITY_TIMESTEPS,
    WRAPPERS,
    DiffusionExport,
    FlowMatchingExport,
    NormalizingFlowExport,
    RegressionExport,
    condition_channels,
    example_inputs,
    export_onnx,
    multiple_of,
    ort_run,
    parity,
    torch_reference,
)
from .onnx_export.zoo import (
    check_regression_partner,
    readable_command,
    register,
    regression_partner,
    sha256_of,
    write_card,
    zoo_condition,
)

# The export's parts live in training/onnx_export/ (the ONNX graphs and parity, metadata, quantization, the
# zoo's manifest and cards); their public names stay importable from here.
__all__ = [
    "DiffusionExport",
    "FlowMatchingExport",
    "INPUTS",
    "NormalizingFlowExport",
    "OPSET",
    "PARITY_TIMESTEPS",
    "RegressionExport",
    "WRAPPERS",
    "add_metadata",
    "calibration_inputs",
    "check_regression_partner",
    "condition_channels",
    "condition_of",
    "example_inputs",
    "export",
    "export_onnx",
    "git_commit",
    "main",
    "model_metadata",
    "multiple_of",
    "ort_run",
    "output_error",
    "parity",
    "quantize_fp16",
    "quantize_int8",
    "readable_command",
    "register",
    "regression_partner",
    "sensitivity_exclusions",
    "sha256_of",
    "torch_reference",
    "write_card",
    "zoo_condition",
]


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
            report["calibration"] = calibration_description(state["meta"], calibration_count, tile)
            # the sweep: each node's output MSE when it alone is int8 (most damaging first)
            report["sensitivity"] = {k: float(f"{v:.3g}") for k, v in sorted(scores.items(), key=lambda kv: -kv[1])}
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
                **({"calibration": report["calibration"]} if "calibration" in report else {}),
                **({"sensitivity_mse": report["sensitivity"]} if "sensitivity" in report else {}),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", type=Path, default=Path("model_zoo"))
    parser.add_argument("--quantize", choices=["int8", "fp16", "none"], default="int8")
    parser.add_argument("--id", dest="model_id")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--calibration-tiles", type=int, default=64)
    parser.add_argument(
        "--keep-fp32",
        type=int,
        default=2,
        help="int8: how many of the most sensitive Conv nodes (per-node sweep) stay in fp32 (default 2)",
    )
    parser.add_argument(
        "--regression",
        help="zoo id of the regression UNet that staged sampling starts from (default: the zoo's UNet of the same precision)",
    )
    args = parser.parse_args(argv)
    for entry in export(
        args.checkpoint,
        args.out,
        args.quantize,
        args.model_id,
        args.tile,
        args.calibration_tiles,
        exclude_budget=args.keep_fp32,
        regression=args.regression,
    ):
        print(f"{entry['id']}: {entry['file']} ({entry['size_bytes'] / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
