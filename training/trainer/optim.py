"""What the optimiser step needs besides AdamW: the EMA of the weights, the loss routed through one module (for
DDP), and the LR schedule (linear warm-up, cosine decay)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..models import Family


class EMA:
    """Exponential moving average of the weights (buffers copied). Warm-up decay min(d, (1+n)/(10+n)) so
    short runs are not dominated by the random init."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


class LossModule(nn.Module):
    """DDP only syncs gradients of computations run through its forward: route family.loss through one."""

    def __init__(self, family: Family):
        super().__init__()
        self.family = family

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.family.loss(batch)


def lr_lambda(train: dict[str, Any]) -> Callable[[int], float]:
    warmup, total, floor = train["warmup_steps"], train["steps"], train["min_lr_ratio"]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
