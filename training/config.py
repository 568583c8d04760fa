"""A training config: the TOML file with [model], [data] and [train] tables, checked and completed with the
[train] defaults. Below the trainer and the tile cache, which both read configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .models import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 6000,  # total optimizer steps (the LR schedule spans these; --max-steps only stops early)
    "batch_size": 16,  # global batch: split evenly over DDP ranks
    "lr": 2e-4,
    "weight_decay": 0.0,
    "ema_decay": 0.999,
    "grad_clip": 1.0,  # max global grad norm; 0 disables
    "seed": 0,
    "val_every": 500,
    "checkpoint_every": 500,
    "num_workers": 1,
    # auto: bf16 autocast where the hardware computes bf16 natively (CUDA; a CPU with AVX512-BF16 or AMX) and the
    # family allows it, else fp32; fp32; bf16 (also where a CPU only emulates it: slower, a measured option)
    "precision": "auto",
    "memory_format": "auto",  # auto (channels_last for the UNet families), channels_last, contiguous (the old path)
    "threads": 0,  # torch compute threads on CPU; 0: the usable cores minus one per tile worker (OMP_NUM_THREADS wins)
    "prefetch": 4,  # batches each tile worker keeps ready (DataLoader prefetch_factor)
    "warmup_steps": 200,  # linear LR warmup, then cosine decay to min_lr_ratio * lr
    "min_lr_ratio": 0.1,
    "log_every": 50,
    "val_batches": 2,  # validation batches (of batch_size tiles, from the [data] val split)
    # Fine-tuning: start a new run from the EMA weights of another run's checkpoint (path relative to the
    # repository, or absolute; "" = random init). Optimizer, schedule and step start afresh; the checkpoint's
    # step, commit and sha256 go into the run's meta, so the chain of runs stays reproducible.
    "init_from": "",
}
TABLES = ("model", "data", "train")


def load_config(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    with open(path, "rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return validate_config(raw)


def validate_config(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check tables and [train] keys/types, fill [train] defaults; [model] and [data] are checked by
    build_model / build_dataset, which name unknown keys the same way."""
    unknown = sorted(set(raw) - set(TABLES))
    if unknown:
        raise ConfigError(
            f"Unknown key(s)/table(s) at the top level of the config: {', '.join(unknown)} (known tables: {', '.join(TABLES)})"
        )
    for table in TABLES:
        if table in raw and not isinstance(raw[table], dict):
            raise ConfigError(f"'{table}' must be a table ([{table}])")
    if "model" not in raw:
        raise ConfigError("the config needs a [model] table with a 'family' key")
    train = dict(raw.get("train", {}))
    unknown = sorted(set(train) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ConfigError(f"Unknown key(s) in [train]: {', '.join(unknown)} (known: {', '.join(sorted(TRAIN_DEFAULTS))})")
    for key, default in TRAIN_DEFAULTS.items():
        value = train.setdefault(key, default)
        if isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"[train] {key} must be a {type(default).__name__}, got {value!r}")
        train[key] = value
    if train["precision"] not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"[train] precision = {train['precision']!r} is not one of 'auto', 'fp32', 'bf16'")
    if train["memory_format"] not in ("auto", "channels_last", "contiguous"):
        raise ConfigError(
            f"[train] memory_format = {train['memory_format']!r} is not one of 'auto', 'channels_last', 'contiguous'"
        )
    if train["threads"] < 0:
        raise ConfigError("[train] threads must be >= 0 (0: sized to the cores)")
    for key in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every", "val_batches", "prefetch"):
        if train[key] < 1:
            raise ConfigError(f"[train] {key} must be >= 1")
    return {"model": dict(raw["model"]), "data": dict(raw.get("data", {})), "train": train}
