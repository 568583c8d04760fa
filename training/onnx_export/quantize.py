"""int8 (static QDQ, calibrated across the schedule, the most sensitive nodes kept in fp32) and fp16 variants."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from ..models.base import to_residual
from .wrappers import ort_run


def calibration_inputs(family: str, meta: dict, count: int, tile: int, seed: int = 99) -> list[dict[str, np.ndarray]]:
    """Real model inputs for int8 calibration: dataset tiles, noised to timesteps drawn across the whole
    schedule (a diffusion model's activations at t≈999 and t≈0 differ widely; calibrating on one end
    clips the other)."""
    from nightlight_fusion_plugin.core.engine.schedulers import SchedulerConfig, alphas_cumprod, make_betas

    from ..data import build_dataset

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
