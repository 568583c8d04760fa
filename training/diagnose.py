"""Where a diffusion model's error comes from: the one-step x_0 estimate at each noise level.

python -m training.diagnose runs/NAME [--tiles 8] [--timesteps 10 100 300 500 700 900 990] [--seed 0]

For each timestep t the validation targets are noised with q(x_t | x_0), the model (EMA weights) is run once
and its x_0 estimate (clipped as the sampler clips it) is compared with the truth, in model space; the last
lines give full DDIM samples for comparison. An ε-prediction model trained on the linear schedule weights
x_0 errors at high t by abar/(1 - abar) (about 1e-4 at t = 900), so it barely learns x_0 there, and a DDIM
sample starting from pure noise inherits that error; a v-prediction model does not (docs/design_space.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .checkpoint import model_from_checkpoint
from .data.datasets import build_dataset
from .models.base import masked_mean

TIMESTEPS = [10, 100, 300, 500, 700, 900, 990]


def x0_error_by_timestep(model, batch: dict[str, torch.Tensor], timesteps: list[int], seed: int = 0) -> dict[int, float]:
    """Mean squared error of the clipped one-step x_0 estimate at each timestep (model space)."""
    if model.family != "diffusion":
        raise ValueError(f"x_0 error by timestep applies to diffusion models, not {model.family}")
    condition, valid = batch["condition"].float(), batch["valid"].float()
    x0 = model.to_x0(batch["target"].float(), condition)  # the residual for residual_log models (its error is the same)
    r = model.config.clip_sample_range
    generator = torch.Generator().manual_seed(seed)
    errors = {}
    with torch.no_grad():
        for t in timesteps:
            tt = torch.full((x0.shape[0],), int(t))
            x_t = model.q_sample(x0, tt, torch.randn(x0.shape, generator=generator))
            estimate, _ = model._split(model(x_t, tt.float(), condition).float(), x_t, model._abar(tt))
            errors[int(t)] = float(masked_mean((estimate.clamp(-r, r) - x0).square(), valid))
    return errors


def validation_batch(run: Path, tiles: int) -> dict[str, torch.Tensor]:
    config = json.loads((run / "config.json").read_text())
    dataset = build_dataset(config["data"], "val")
    items = [dataset[i] for i in range(min(tiles, len(dataset)))]
    return {k: torch.stack([torch.as_tensor(item[k]) for item in items]) for k in ("target", "condition", "valid")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.diagnose", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a training run folder (checkpoint.pt, config.json)")
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--timesteps", type=int, nargs="+", default=TIMESTEPS)
    parser.add_argument("--sample-steps", type=int, nargs="*", default=[5, 25], help="DDIM samples to compare")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = model_from_checkpoint(args.run / "checkpoint.pt").eval()
    batch = validation_batch(args.run, args.tiles)
    print(f"{args.run}: {model.config.prediction}, {model.config.schedule} schedule; x_0 MSE in model space")
    for t, error in x0_error_by_timestep(model, batch, args.timesteps, args.seed).items():
        print(f"  one step from t = {t:4d}: {error:.4f}")
    for steps in args.sample_steps:
        sample = model.sample(batch["condition"].float(), generator=torch.Generator().manual_seed(args.seed), steps=steps)
        error = float(masked_mean((sample - batch["target"]).square(), batch["valid"].float()))
        print(f"  DDIM sample, {steps} steps from pure noise: {error:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
