"""Validation of the (EMA) model on fixed batches, in model space."""

from __future__ import annotations

import math

import torch

from ..models import Family
from .batches import to_device

# ------------------------------------------------------------------------------------------- validation


# Model space maps radiance r to log1p(clip(r)) / (LOG_MAX / 2) - 1, so a model-space error e is a log-radiance
# error e * LOG_MAX / 2 and core.metrics.psnr_log (range LOG_MAX, radiance clipped to [0, 1000] = [-1, 1]
# in model space) is 10 log10(4 / mse) on clamped model-space values.
def psnr_log_model_space(mse_clamped: float) -> float:
    return float("inf") if mse_clamped == 0 else 10 * math.log10(4.0 / mse_clamped)


@torch.no_grad()
def validate(model: Family, batches: list[dict[str, torch.Tensor]], seed: int, device: torch.device) -> dict[str, float]:
    """Sample the (EMA) model on fixed validation batches. Runs under fork_rng with its own seed, so
    validating or not never changes the training RNG stream."""
    totals = {"se": 0.0, "se_clamped": 0.0, "n": 0.0, "loss": 0.0}
    extra: dict[str, float] = {}
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator(device=device).manual_seed(seed)
        for batch in batches:
            batch = to_device(batch, device)
            loss, logs = model.loss(batch)
            totals["loss"] += float(loss)
            for k, v in logs.items():
                if k != "loss":
                    extra[k] = extra.get(k, 0.0) + v / len(batches)
            pred = model.sample(batch["condition"], generator=generator).float()
            valid, target = batch["valid"], batch["target"]
            totals["se"] += float(((pred - target) ** 2 * valid).sum())
            totals["se_clamped"] += float(((pred.clamp(-1, 1) - target.clamp(-1, 1)) ** 2 * valid).sum())
            totals["n"] += float(valid.sum())
    n = max(totals["n"], 1.0)
    return {
        "val_loss": totals["loss"] / len(batches),
        "mse": totals["se"] / n,
        "psnr_log": psnr_log_model_space(totals["se_clamped"] / n),
        **{f"val_{k}": v for k, v in extra.items()},
    }
