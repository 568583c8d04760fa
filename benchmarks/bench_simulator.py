"""Simulator speed: 10,000 training tiles of 64×64 (target: < 10 minutes on this 2-core machine), and
whether streaming generation in DataLoader workers keeps up with a training step.

python -m benchmarks.bench_simulator [--tiles 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from training.data import SyntheticPairs

from .results import record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiles", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = SyntheticPairs(args.tiles, tile=64, seed=123)
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=args.batch, num_workers=args.workers)
    for _ in loader:
        pass
    seconds = time.perf_counter() - start
    rows = [
        {
            "what": f"{args.tiles} tiles 64×64, {args.workers} DataLoader workers",
            "seconds": seconds,
            "tiles_per_s": args.tiles / seconds,
            "target": "< 600 s",
            "met": seconds < 600,
        }
    ]

    step = training_step_seconds(args.batch)
    if step is not None:
        generator_batch = args.batch * seconds / args.tiles
        rows.append(
            {
                "what": f"diffusion training step, batch {args.batch} (2 threads)",
                "seconds": step,
                "tiles_per_s": args.batch / step,
                "target": "generator faster than the step",
                "met": generator_batch < step,
            }
        )
    record("simulator", rows)
    for row in rows:
        print(row)


def training_step_seconds(batch: int) -> float | None:
    """Seconds per optimisation step of the diffusion config's model, if the model package is there."""
    try:
        from training.config import load_config  # noqa: PLC0415
        from training.models import build_model  # noqa: PLC0415
    except ImportError:
        return None
    torch.set_num_threads(2)
    config = load_config("training/configs/diffusion.toml")
    model = build_model(config["model"])
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    item = SyntheticPairs(batch, tile=64, seed=5)
    data = {k: torch.stack([item[i][k] for i in range(batch)]) for k in ("condition", "target", "valid")}
    times = []
    for _ in range(4):
        start = time.perf_counter()
        loss, _ = model.loss(data)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


if __name__ == "__main__":
    main()
