"""One trainer for every model family.

    python -m training.train --config training/configs/NAME.toml [--max-steps N] [--resume CKPT] [--out DIR]
    torchrun --nproc_per_node G -m training.train --config ...   (DistributedDataParallel when WORLD_SIZE > 1)

The TOML config has three tables: [model] (family + its keys, see training/models), [data] (passed to
training.data.build_dataset) and [train] (TRAIN_DEFAULTS below). Unknown keys are errors.

The run directory (--out, default runs/<config name>) gets checkpoint.pt (atomically replaced), metrics.jsonl
(train logs and validation metrics) and config.json. Resuming restores model, EMA, optimizer, LR schedule,
step, every RNG, and the data order (a pure function of seed and step), so a resumed run reproduces the
uninterrupted one. Ctrl-C / SIGTERM save a checkpoint and exit with 128 + signal; a non-finite loss stops
the run without overwriting the last good checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import checkpoint as ckpt
from .config import REPO, TABLES, TRAIN_DEFAULTS, load_config, validate_config
from .data.cache import CacheError
from .models import ConfigError, build_model
from .trainer.batches import EpochBatches, check_data_table, to_device
from .trainer.distributed import Distributed
from .trainer.loop import StopSignal, TrainingError, train
from .trainer.optim import EMA, LossModule, lr_lambda
from .trainer.precision import autocast_context
from .trainer.state import git_commit, initial_weights, rng_state, seed_everything, set_rng_state
from .trainer.validation import psnr_log_model_space, validate

# The names other modules and tests import from training.train (the trainer lives in training/trainer/).
__all__ = [
    "EMA",
    "REPO",
    "TABLES",
    "TRAIN_DEFAULTS",
    "ConfigError",
    "Distributed",
    "EpochBatches",
    "LossModule",
    "StopSignal",
    "TrainingError",
    "autocast_context",
    "build_model",
    "check_data_table",
    "git_commit",
    "initial_weights",
    "load_config",
    "lr_lambda",
    "main",
    "parse_args",
    "psnr_log_model_space",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "to_device",
    "train",
    "validate",
    "validate_config",
]

# --------------------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="TOML config (optional with --resume: the checkpoint's own config)")
    parser.add_argument("--resume", help="checkpoint file or run directory to continue")
    parser.add_argument("--out", help="run directory (default: runs/<config name>, or the resumed run's directory)")
    parser.add_argument("--max-steps", type=int, help="stop at this global step (the LR schedule still spans [train] steps)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data-cache", help="read training tiles from this filled tile cache (python -m training.data.cache)")
    parser.add_argument("--num-workers", type=int, help="DataLoader workers (overrides [train] num_workers; same tiles)")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), help="overrides [train] precision (recorded in the run's config)"
    )
    parser.add_argument(
        "--memory-format",
        choices=("auto", "channels_last", "contiguous"),
        help="overrides [train] memory_format (recorded in the run's config)",
    )
    parser.add_argument("--threads", type=int, help="torch compute threads (overrides [train] threads; 0: sized to the cores)")
    args = parser.parse_args(argv)
    if not args.config and not args.resume:
        parser.error("--config is required (unless --resume is given)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.config:
            config = load_config(args.config)
        else:
            meta = ckpt.load(args.resume)["meta"]
            config = validate_config(
                {"model": {"family": meta["family"], **meta["model_table"]}, "data": meta["data"], "train": meta["train"]}
            )
        # Flags that change how the step computes are written into the config, so the run records them and a
        # resume keeps them.
        overrides = {"precision": args.precision, "memory_format": args.memory_format, "threads": args.threads}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        config = validate_config({**config, "train": {**config["train"], **overrides}})
        build_model(config["model"])  # unknown family / keys: fail before touching the run directory
        check_data_table(config["data"])
        if args.out:
            out = Path(args.out)
        elif args.resume:
            out = ckpt.resolve(args.resume).parent
        else:
            out = REPO / "runs" / Path(args.config).stem
        return train(
            config,
            out,
            args.resume,
            args.max_steps,
            args.device,
            [sys.executable, "-m", "training.train", *(sys.argv[1:] if argv is None else argv)],
            args.data_cache,
            args.num_workers,
        )
    except (ConfigError, ckpt.CheckpointError, TrainingError, CacheError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
