"""Copy a finished run's checkpoint without optimizer state (model + EMA weights, step, meta), small
enough to move between machines or keep in git; the full checkpoint stays where it was trained.

    python scripts/pack_run.py runs/diffusion/checkpoint.pt OUT.pt [--ema-only]

--ema-only also drops the raw (non-EMA) weights: a sixth of the full size. Export and evaluation use the
EMA weights anyway; resuming such a checkpoint continues from the EMA weights.

Values are converted to plain Python/torch types so that a checkpoint written under numpy 2 loads
under numpy 1.x. A slim checkpoint exports and evaluates like a full one; resuming it restarts the
optimizer moments (the trainer says so)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch


def plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def main(src: str, dst: str, keep_optimizer: bool = False, ema_only: bool = False) -> None:
    state = torch.load(src, map_location="cpu", weights_only=False)
    if not keep_optimizer:
        state["optimizer"] = None
    if ema_only:
        state["model"] = None
    torch.save(plain(state), dst)
    print(f"{src} (step {state['step']}) -> {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--keep-optimizer" in sys.argv[3:], "--ema-only" in sys.argv[3:])
