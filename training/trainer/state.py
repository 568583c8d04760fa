"""What makes a run reproducible and resumable: seeds, every RNG state, the git commit, and the weights a
fine-tuning run starts from ([train] init_from)."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..config import REPO
from ..models import ConfigError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    # numpy's state as plain Python values: a checkpoint pickled under numpy 2 (e.g. on a GPU machine)
    # must load under numpy 1.x, which cannot unpickle numpy 2 arrays.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, keys.tolist(), int(pos), int(has_gauss), float(cached))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def git_commit() -> str:
    # A copy of the tree without .git (e.g. sent to a GPU machine) names its commit through the environment.
    if os.environ.get("NLF_GIT_COMMIT"):
        return os.environ["NLF_GIT_COMMIT"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def initial_weights(path: str, model_table: dict[str, Any]) -> dict[str, Any]:
    """EMA weights of the checkpoint named by [train] init_from, and where they came from (for the meta)."""
    import hashlib

    resolved = Path(path) if Path(path).is_absolute() else REPO / path
    try:
        state = ckpt.load(resolved)
    except ckpt.CheckpointError as exc:
        raise ConfigError(f"[train] init_from = {path!r}: {exc}; give a run directory or its checkpoint.pt") from exc
    ckpt.check_compatible(state, model_table, f"[train] init_from {path}")
    file = ckpt.resolve(resolved)
    return {
        "weights": state["ema"],
        "checkpoint": path,
        "step": int(state["step"]),
        "git_commit": state["meta"].get("git_commit"),
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
    }
