"""Staged sampling: warm-start a generative sampler from a regression estimate (SDEdit, Meng et al. 2022;
ResShift-like in spirit). The regression UNet gives the conditional mean; it is noised to an intermediate
time and the diffusion / flow-matching sampler only has to add detail, in far fewer steps than from noise.

t_start is a fraction of the generative process in (0, 1]: 1 starts from (almost) pure noise, small values
keep the regression estimate and add little detail. Diffusion starts at t = t_start·(T−1) (DDIM);
flow matching at sigma = t_start (Euler).

The regression model must have the generative model's condition_version and target: both then read the same
condition stack, and the regression's raw output lies in the generative model's x_0 space (the residual for
"residual_log"), which is what the exported engine warm-starts from (core/generative.py refuses a mismatch too).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Family


class StagedSampler(nn.Module):
    """regression -> noise to t_start -> `steps` steps of the generative family's sampler."""

    def __init__(self, regression: Family, generative: Family, steps: int = 10, t_start: float = 0.5):
        super().__init__()
        if not hasattr(generative, "refine"):
            raise ValueError(
                f"family '{generative.family}' has no iterative sampler to warm-start "
                "(staged sampling needs 'diffusion' or 'flow_matching')"
            )
        if not 0.0 < t_start <= 1.0:
            raise ValueError(f"t_start must be in (0, 1], got {t_start}")
        check_partners(regression, generative)
        self.regression, self.generative = regression, generative
        self.steps, self.t_start = steps, t_start

    @torch.no_grad()
    def forward(self, condition: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return staged_sample(self.regression, self.generative, condition, self.steps, self.t_start, generator)


@torch.no_grad()
def staged_sample(
    regression: Family,
    generative: Family,
    condition: torch.Tensor,
    steps: int = 10,
    t_start: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Samples [B, 1, H, W] from `generative`, started at t_start from `regression`'s estimate."""
    if not hasattr(generative, "refine"):
        raise ValueError(f"family '{generative.family}' cannot be warm-started (use diffusion or flow_matching)")
    check_partners(regression, generative)
    estimate = regression.sample(condition)
    return generative.refine(estimate, condition, steps=steps, t_start=t_start, generator=generator)


def check_partners(regression: Family, generative: Family) -> None:
    """Refuse a warm start across condition versions or targets (see the module docstring)."""
    mine = (regression.config.condition_version, regression.config.target)
    theirs = (generative.config.condition_version, generative.config.target)
    if mine != theirs:
        raise ValueError(
            f"regression model (condition v{mine[0]}, target {mine[1]!r}) cannot warm-start the {generative.family} "
            f"model (condition v{theirs[0]}, target {theirs[1]!r}): staged sampling needs the same condition version "
            "and target"
        )
