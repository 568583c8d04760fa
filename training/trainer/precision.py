"""Numeric precision of the training step."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..models import Family


def autocast_context(train: dict[str, Any], model: Family, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked (or 'auto') and the family allows it; fp32 everywhere else."""
    want = train["precision"]
    if device.type != "cuda" or want == "fp32" or not model.supports_bf16 or not torch.cuda.is_bf16_supported():
        if want == "bf16":
            print(f"note: precision bf16 not available here ({device.type}, {model.family}); using fp32", flush=True)
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)
