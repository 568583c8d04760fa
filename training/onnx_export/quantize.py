"""int8 (static QDQ, calibrated across the schedule, the most sensitive nodes kept in fp32) and fp16 variants."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from ..models.base import to_residual
from .wrappers import ort_run

CALIBRATION_LENGTH = 1_000_000  # the mix's index space the tiles are spread over
BRIGHT_SHARE = 0.25  # of the calibration tiles, the brightest of extra draws (flares, saturated cores)


def calibration_tiles(meta: dict, count: int, tile: int, seed: int = 99) -> tuple[list[dict], str]:
    """(dataset items, description) for int8 calibration: the model's own [data] mix (synthetic scenes with
    flares up to ~2000 nW/cm²/sr, semi-real Greece outside its hold-out, the real Sudan/Kenya pairs outside the
    real-temporal hold-outs), drawn from the train split's generators evenly over the mix, plus the
    brightest of as many extra draws: MinMax ranges that cover dark desert to flares, from regions the
    real-temporal evaluation never sees (the validation split holds Greece's hold-out: not used)."""
    from ..data import build_dataset

    data = {k: v for k, v in (meta.get("data") or {}).items() if k not in ("length", "val_length", "tile", "reference_dropout")}
    length = CALIBRATION_LENGTH
    dataset = build_dataset({**data, "tile": tile, "length": length, "reference_dropout": 0.25}, "train")
    rng = np.random.default_rng(seed)
    bright = int(round(count * BRIGHT_SHARE))
    base = count - bright
    # even positions over the whole mix (ConcatDataset: synthetic, semi-real, real), each shifted at random
    spread = np.linspace(0, length, base + 1, dtype=np.int64)[:-1]
    picks = [int(p + rng.integers(0, max(length // max(base, 1), 1))) % length for p in spread]
    items = [dataset[i] for i in picks]
    extra = [dataset[int(i)] for i in rng.integers(0, length, 3 * bright)]
    extra.sort(key=lambda item: float(np.nanmax(item["target"].numpy())), reverse=True)
    items += extra[:bright]
    return items, calibration_description(meta, count, tile, seed)


def calibration_description(meta: dict, count: int, tile: int, seed: int = 99) -> str:
    """What `calibration_tiles` draws, in words (recorded in the manifest and the model card)."""
    data = meta.get("data") or {}
    kind = str(data.get("kind", "synthetic"))
    real = f", real pairs {'+'.join(data.get('real_regions', ['sudan']))}" if kind == "refaware" else ""
    bright = int(round(count * BRIGHT_SHARE))
    return (
        f"{count} tiles of {tile}² from the train split of the model's [data] table (kind {kind}{real}; seed {seed}): "
        f"{count - bright} evenly over the mix and the {bright} brightest of {3 * bright} more draws; no real-temporal "
        "hold-out region"
    )


def calibration_inputs(family: str, meta: dict, count: int, tile: int, seed: int = 99) -> list[dict[str, np.ndarray]]:
    """Model inputs for int8 calibration from `calibration_tiles`, noised to timesteps drawn across the whole
    schedule (a diffusion model's activations at t≈999 and t≈0 differ widely; calibrating on one end
    clips the other)."""
    from nightlight_fusion_plugin.core.engine.schedulers import SchedulerConfig, alphas_cumprod, make_betas

    items, _ = calibration_tiles(meta, count, tile, seed)
    rng = np.random.default_rng(seed)
    target_kind = str(meta.get("target") or "absolute")
    abar = alphas_cumprod(make_betas(SchedulerConfig.from_dict(meta.get("schedule") or {}))) if family == "diffusion" else None
    out = []
    for item in items:
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
