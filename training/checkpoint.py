"""Checkpoints: atomic writes, clear errors on mismatched families/shapes, rebuilding a model from one.

A checkpoint is a dict saved with torch.save:
  format, step, model, ema (state dicts), optimizer, scheduler, rng (per rank), meta
meta records everything needed to rebuild and interpret the model: family, model table, schedule,
transforms describe(), data and train tables, git commit, command line, seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .models import ConfigError, Family, build_model

FORMAT = "nightlight-fusion-checkpoint-1"
FILENAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used for what was asked; the message says why."""


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same directory, fsync, then os.replace: a crash or Ctrl-C
    mid-write leaves the previous checkpoint intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory holding checkpoint.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    return path


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = resolve(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt or foreign file: say which file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Nightlight Fusion training checkpoint (format {FORMAT})")
    return state


LOSS_ONLY = ("loss", "sum_weight")  # [model] keys that change the training loss only


def check_compatible(state: dict[str, Any], model_table: dict[str, Any], where: str = "checkpoint") -> None:
    """Error unless the checkpoint was trained with the same family and model config as `model_table`."""
    meta = state["meta"]
    family = model_table.get("family")
    if meta["family"] != family:
        raise CheckpointError(
            f"{where} is a '{meta['family']}' model but the config's [model] family is "
            f"'{family}': resume a checkpoint of the same family"
        )
    ours = {k: v for k, v in model_table.items() if k != "family"}
    theirs = meta["model_table"]
    # Compare resolved configs so that spelling a default explicitly is not a mismatch.
    mine = build_model({"family": family, **ours}).metadata()["config"]
    saved = build_model({"family": family, **theirs}).metadata()["config"]
    # The loss is how the weights are trained, not their shape or meaning: a run may go on under another loss.
    differ = sorted(k for k in set(mine) | set(saved) if mine.get(k) != saved.get(k) and k not in LOSS_ONLY)
    if differ:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs config {mine.get(k)!r}" for k in differ)
        raise CheckpointError(f"{where} has a different '{family}' model config ({detail})")


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """load_state_dict with a readable error on missing/unexpected keys or shape mismatches."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:4]
        raise CheckpointError(f"{where} does not fit this model (different shape or family): " + " ".join(first)) from exc


def model_from_checkpoint(path: str | os.PathLike, ema: bool = True, map_location: str = "cpu") -> Family:
    """Rebuild the model a checkpoint was trained with (EMA weights by default), in eval mode."""
    state = load(path, map_location)
    try:
        model = build_model({"family": state["meta"]["family"], **state["meta"]["model_table"]})
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    load_weights(model, state["ema" if ema else "model"], str(path))
    return model.eval()
