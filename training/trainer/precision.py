"""How the training step uses the machine: numeric precision (bf16 autocast where the hardware has native bf16),
the memory format of the conv nets, and the number of compute threads.

[train] precision = "auto" (default) picks bf16 autocast on CUDA when the GPU supports it, and on a CPU only when
it has native bf16 instructions (AVX512-BF16 or AMX-BF16: oneDNN runs bf16 convolutions natively there); on any
other CPU bf16 is emulated and slower than fp32, so "auto" stays fp32 and "bf16" is a measured option.
[train] memory_format = "auto" puts the conv-net families (unet, diffusion, flow_matching) and their batches in
channels_last (NHWC), the layout oneDNN's convolutions run fastest in; "contiguous" is the old NCHW path.
[train] threads = 0 sizes torch's intra-op threads to the usable cores minus one per tile worker of the config's
[train] num_workers (at least one), so that the tile workers and the step never fight over the same cores. The
thread count changes the numerics (oneDNN splits reductions by thread), so it never follows --num-workers.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from typing import Any

import torch

from ..models import Family

CHANNELS_LAST_FAMILIES = ("unet", "diffusion", "flow_matching")  # UNet backbones: convolutions all the way


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name, for logs and benchmarks."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_cpu_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16) and torch has oneDNN to use it.
    torch.ops.mkldnn._is_mkldnn_bf16_supported() is not enough: it is also true on plain AVX-512 CPUs, where
    oneDNN emulates bf16 (slower than fp32)."""
    return torch.backends.mkldnn.is_available() and bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def resolve_precision(want: str, model: Family, device: torch.device, quiet: bool = False) -> str:
    """'bf16' or 'fp32' for [train] precision `want` ('auto', 'fp32', 'bf16') on this device."""

    def fallback(why: str) -> str:
        if want == "bf16" and not quiet:
            print(f"note: precision bf16 not available here ({why}); using fp32", flush=True)
        return "fp32"

    if want == "fp32":
        return "fp32"
    if not model.supports_bf16:
        return fallback(f"{device.type}, {model.family}")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else fallback("cuda without bf16")
    if device.type != "cpu":
        return fallback(device.type)
    if want == "bf16":
        if not native_cpu_bf16() and not quiet:
            print("note: precision bf16 on a CPU without native bf16 (AVX512-BF16/AMX): emulated, slower than fp32", flush=True)
        return "bf16"
    return "bf16" if native_cpu_bf16() else "fp32"


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a resolved precision."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def autocast_context(train: dict[str, Any], model: Family, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast when [train] precision asks for it (or 'auto' and the hardware has native bf16) and the family
    allows it; fp32 everywhere else."""
    return precision_context(resolve_precision(train["precision"], model, device), device)


def resolve_memory_format(want: str, family: str) -> torch.memory_format:
    """The memory format of model and batches for [train] memory_format `want` ('auto', 'channels_last',
    'contiguous')."""
    if want == "channels_last" or (want == "auto" and family in CHANNELS_LAST_FAMILIES):
        return torch.channels_last
    return torch.contiguous_format


def to_memory_format(batch: dict[str, torch.Tensor], memory_format: torch.memory_format) -> dict[str, torch.Tensor]:
    """4-D tensors of a batch in `memory_format` (the same values; only the layout changes)."""
    if memory_format == torch.contiguous_format:
        return batch
    return {k: v.contiguous(memory_format=memory_format) if v.dim() == 4 else v for k, v in batch.items()}


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def compute_threads(want: int, workers: int, world: int = 1) -> int:
    """torch intra-op threads for [train] threads `want` (0 = auto): this process's share of the usable cores
    (torchrun ranks share the machine) minus one per tile worker of the config, at least one."""
    if want > 0:
        return want
    return max(1, usable_cores() // max(1, world) - workers)
