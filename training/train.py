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
import contextlib
import copy
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, default_collate

from nightlight_fusion_plugin.core.engine import transforms

from . import checkpoint as ckpt
from .data import build_dataset
from .data.cache import CacheError
from .models import ConfigError, Family, build_model

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
    "precision": "auto",  # auto (bf16 autocast on CUDA when the family allows it, else fp32), fp32, bf16
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


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, nothing to resume, ...); the message says what to do."""


# ----------------------------------------------------------------------------------------------- config


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
    for key in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every", "val_batches"):
        if train[key] < 1:
            raise ConfigError(f"[train] {key} must be >= 1")
    return {"model": dict(raw["model"]), "data": dict(raw.get("data", {})), "train": train}


# ---------------------------------------------------------------------------------------------- helpers


class Distributed:
    """Rank/world from torchrun's environment; a no-op in a single process."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1:
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any (so all ranks stop together)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return value
        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class EpochBatches:
    """Batch sampler: DistributedSampler epochs (shuffled by seed + epoch) chained forever, starting at
    `start_step`. The data order is a pure function of (seed, step, rank), so a resume needs no loader state."""

    def __init__(self, sampler: DistributedSampler, batch_size: int, start_step: int):
        self.sampler, self.batch_size, self.start_step = sampler, batch_size, start_step
        self.per_epoch = len(sampler) // batch_size
        if self.per_epoch < 1:
            raise ConfigError(f"[data] length gives {len(sampler)} tiles per rank, fewer than one batch of {batch_size}")

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            epoch, offset = divmod(step, self.per_epoch)
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)
            for i in range(offset, self.per_epoch):
                yield indices[i * self.batch_size : (i + 1) * self.batch_size]
                step += 1


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


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def autocast_context(train: dict[str, Any], model: Family, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked (or 'auto') and the family allows it; fp32 everywhere else."""
    want = train["precision"]
    if device.type != "cuda" or want == "fp32" or not model.supports_bf16 or not torch.cuda.is_bf16_supported():
        if want == "bf16":
            print(f"note: precision bf16 not available here ({device.type}, {model.family}); using fp32", flush=True)
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


# ------------------------------------------------------------------------------------------- validation


# Model space maps radiance r to log1p(clip(r)) / (LOG_MAX / 2) - 1, so a model-space error e is a log-radiance
# error e * LOG_MAX / 2 and core.metrics.psnr_log (range LOG_MAX, radiance clipped to [0, 1000] = [-1, 1]
# in model space) is 10 log10(4 / mse) on clamped model-space values.
def psnr_log_model_space(mse_clamped: float) -> float:
    return float("inf") if mse_clamped == 0 else 10 * math.log10(4.0 / mse_clamped)


@torch.no_grad()
def validate(model: Family, batches: list[dict[str, torch.Tensor]], seed: int, device: torch.device) -> dict[str, float]:
    """Sample the (EMA) model on fixed validation batches. Runs under fork_rng with its own seed, so
    validating or not never changes the training RNG stream."""
    totals = {"se": 0.0, "se_clamped": 0.0, "n": 0.0, "loss": 0.0}
    extra: dict[str, float] = {}
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        generator = torch.Generator(device=device).manual_seed(seed)
        for batch in batches:
            batch = to_device(batch, device)
            loss, logs = model.loss(batch)
            totals["loss"] += float(loss)
            for k, v in logs.items():
                if k != "loss":
                    extra[k] = extra.get(k, 0.0) + v / len(batches)
            pred = model.sample(batch["condition"], generator=generator).float()
            valid, target = batch["valid"], batch["target"]
            totals["se"] += float(((pred - target) ** 2 * valid).sum())
            totals["se_clamped"] += float(((pred.clamp(-1, 1) - target.clamp(-1, 1)) ** 2 * valid).sum())
            totals["n"] += float(valid.sum())
    n = max(totals["n"], 1.0)
    return {
        "val_loss": totals["loss"] / len(batches),
        "mse": totals["se"] / n,
        "psnr_log": psnr_log_model_space(totals["se_clamped"] / n),
        **{f"val_{k}": v for k, v in extra.items()},
    }


# ---------------------------------------------------------------------------------------------- training


class StopSignal:
    """SIGINT/SIGTERM set a flag checked between steps; a second signal gets the default behaviour."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


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


def check_data_table(table: dict[str, Any]) -> None:
    """build_dataset names unknown [data] keys in a ValueError; report it as a config error."""
    try:
        build_dataset(table, "val")
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc


def _worker_init(worker_id: int) -> None:
    # Ctrl-C in a terminal, and `timeout`/job control, signal the whole process group: workers ignore
    # SIGINT/SIGTERM and the main process saves a checkpoint and stops them (a worker dying on the signal
    # would make the loader raise instead). Workers still exit when the main process dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)  # workers only read and simulate tiles: one thread each, the trainer keeps the cores


def train(
    config: dict[str, dict[str, Any]],
    out: Path,
    resume: str | None = None,
    max_steps: int | None = None,
    device: str = "auto",
    argv: list[str] | None = None,
    data_cache: str | None = None,
    num_workers: int | None = None,
) -> int:
    """Train (or resume) one run; returns the process exit code.

    data_cache (a filled training.data.cache directory) and num_workers change where tiles come from and
    how fast, never which tiles: the run is the same as without them."""
    check_data_table(config["data"])
    state = ckpt.load(resume) if resume else None
    if state is not None:
        ckpt.check_compatible(state, config["model"], f"checkpoint {resume}")
    elif (out / ckpt.FILENAME).exists():
        raise TrainingError(
            f"{out} already holds a run ({ckpt.FILENAME}): pass --resume {out} to continue it, or choose another --out"
        )

    env = Distributed(device)
    try:
        return _train(config, out, state, max_steps, env, argv or sys.argv, data_cache, num_workers)
    finally:
        env.close()


def _train(
    config: dict[str, dict[str, Any]],
    out: Path,
    state: dict[str, Any] | None,
    max_steps: int | None,
    env: Distributed,
    argv: list[str],
    data_cache: str | None = None,
    num_workers: int | None = None,
) -> int:
    tc = config["train"]
    workers = tc["num_workers"] if num_workers is None else num_workers
    if tc["batch_size"] % env.world:
        raise ConfigError(f"[train] batch_size {tc['batch_size']} is not divisible by WORLD_SIZE {env.world}")
    per_rank_batch = tc["batch_size"] // env.world
    seed_everything(tc["seed"])  # same init on every rank (DDP also broadcasts rank 0's weights)
    model = build_model(config["model"]).to(env.device)
    if data_cache:
        from .data.cache import CachedDataset

        train_set = CachedDataset(data_cache, config["data"], "train")
    else:
        train_set = build_dataset(config["data"], "train")
    val_set = build_dataset(config["data"], "val")
    start_step = int(state["step"]) if state else 0
    stop_step = min(tc["steps"], max_steps) if max_steps is not None else tc["steps"]

    init = None
    if state is None and tc["init_from"]:
        init = initial_weights(tc["init_from"], config["model"])
        ckpt.load_weights(model, init["weights"], f"[train] init_from {tc['init_from']}")
    elif state is None and getattr(model, "needs_data_init", False):
        # Data-dependent init (ActNorm) from the first tiles, before the EMA copy and DDP's broadcast.
        first = default_collate([train_set[i] for i in range(min(per_rank_batch, len(train_set)))])
        model.data_init(to_device(first, env.device))
    ema = EMA(model, tc["ema_decay"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tc))
    if state is not None:
        if state.get("model") is not None:
            ckpt.load_weights(model, state["model"])
        else:
            print("note: the checkpoint keeps only EMA weights (a slim copy): training continues from them", flush=True)
            ckpt.load_weights(model, state["ema"])
        ckpt.load_weights(ema.model, state["ema"])
        if state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        else:
            print("note: the checkpoint has no optimizer state (a slim copy): AdamW moments restart from zero", flush=True)
        scheduler.load_state_dict(state["scheduler"])
    # Each rank draws its own noise (timesteps, epsilon); restored exactly on resume with the same world size.
    if state is not None and len(state["rng"]) == env.world:
        set_rng_state(state["rng"][env.rank])
    else:
        if state is not None:
            print(
                f"note: checkpoint has RNG states for {len(state['rng'])} rank(s), this run has {env.world}: "
                "reseeding (the run will not replay the original noise exactly)",
                flush=True,
            )
        seed_everything(tc["seed"] * 1000 + env.rank + 1 + start_step)

    loss_module: nn.Module = LossModule(model)
    if env.world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    sampler = DistributedSampler(train_set, num_replicas=env.world, rank=env.rank, shuffle=True, seed=tc["seed"], drop_last=True)
    loader = DataLoader(
        train_set,
        batch_sampler=EpochBatches(sampler, per_rank_batch, start_step),
        num_workers=workers,
        pin_memory=env.device.type == "cuda",
        worker_init_fn=_worker_init if workers > 0 else None,
        # Own generator: creating the iterator must not draw from the global RNG.
        generator=torch.Generator().manual_seed(tc["seed"]),
    )
    val_batches: list[dict[str, torch.Tensor]] = []
    if env.main:
        n_val = min(len(val_set), tc["val_batches"] * tc["batch_size"])
        items = [val_set[i] for i in range(n_val)]
        val_batches = [default_collate(items[i : i + tc["batch_size"]]) for i in range(0, n_val, tc["batch_size"])]
    amp = autocast_context(tc, model, env.device)

    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "family": model.family,
        "model_table": {k: v for k, v in config["model"].items() if k != "family"},
        **model.metadata(),
        "transforms": transforms.describe(),
        "data": config["data"],
        "train": tc,
        "git_commit": git_commit(),
        "command": argv,
        "seed": tc["seed"],
        "torch": torch.__version__,
        "world_size": env.world,
        "device": torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else "cpu",
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if init is not None:
        meta["init_from"] = {k: v for k, v in init.items() if k != "weights"}
    elif state is not None and state["meta"].get("init_from"):
        meta["init_from"] = state["meta"]["init_from"]
    # Every session that trained this run, in order (a run may span several sessions and machines).
    earlier = (state or {}).get("meta", {}).get("history") or (
        [{"command": state["meta"].get("command"), "git_commit": state["meta"].get("git_commit"), "from_step": None}]
        if state
        else []
    )
    meta["history"] = [
        *earlier,
        {"command": argv, "git_commit": meta["git_commit"], "from_step": start_step, "device": meta["device"]},
    ]
    metrics_path = out / "metrics.jsonl"

    def log(record: dict[str, Any]) -> None:
        if env.main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def save(step: int) -> None:
        rngs = env.gather(rng_state())
        if env.main:
            ckpt.save_atomic(
                {
                    "format": ckpt.FORMAT,
                    "step": step,
                    "model": model.state_dict(),
                    "ema": ema.model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rngs,
                    "meta": meta,
                },
                out / ckpt.FILENAME,
            )
        env.barrier()

    def run_validation(step: int) -> None:
        if env.main:
            metrics = validate(ema.model, val_batches, tc["seed"] + 12345, env.device)
            log({"step": step, "split": "val", **metrics})
            print(f"step {step}: val " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)
        env.barrier()

    if env.main:
        with open(out / "config.json", "w") as f:
            json.dump(config, f, indent=2)
        print(
            f"{model.family}: {meta['parameters'] / 1e6:.2f} M parameters, device {env.device}, world {env.world}, "
            f"steps {start_step} -> {stop_step} of {tc['steps']}, run dir {out}",
            flush=True,
        )
    if start_step >= stop_step:
        print(f"nothing to do: the checkpoint is at step {start_step} (stop at {stop_step})", flush=True)
        return 0

    step = start_step
    window: dict[str, float] = {}
    window_n, t0, last_saved = 0, time.time(), start_step if state else None
    batches = iter(loader)
    model.train()
    with StopSignal() as stop:
        while step < stop_step:
            batch = to_device(next(batches), env.device)
            with amp:
                loss, logs = loss_module(batch)
            mean_loss = env.mean(loss.detach().float())
            if not math.isfinite(float(mean_loss)):
                where = (
                    f"the last good checkpoint ({out / ckpt.FILENAME}, step {last_saved}) is kept"
                    if last_saved is not None
                    else "no checkpoint was written yet"
                )
                raise TrainingError(
                    f"non-finite loss ({float(mean_loss)}) at step {step + 1}; stopping: {where}. "
                    "Try a lower [train] lr or a smaller grad_clip."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"]) if tc["grad_clip"] > 0 else torch.tensor(0.0)
            )
            optimizer.step()
            scheduler.step()
            ema.update(model, step)
            step += 1

            logs = {**logs, "loss": float(mean_loss), "grad_norm": float(grad_norm)}
            for k, v in logs.items():
                window[k] = window.get(k, 0.0) + v
            window_n += 1
            if step % tc["log_every"] == 0 or step == stop_step:
                elapsed = time.time() - t0
                record = {
                    "step": step,
                    "split": "train",
                    **{k: v / window_n for k, v in window.items()},
                    "lr": scheduler.get_last_lr()[0],
                    "steps_per_s": window_n / max(elapsed, 1e-9),
                }
                log(record)
                if env.main:
                    print(
                        f"step {step}/{stop_step} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                        f"{record['steps_per_s']:.2f} it/s",
                        flush=True,
                    )
                window, window_n, t0 = {}, 0, time.time()
            if step % tc["val_every"] == 0 or step == stop_step:
                run_validation(step)
            if step % tc["checkpoint_every"] == 0 or step == stop_step:
                save(step)
                last_saved = step
            if env.any(stop.signum is not None):
                if last_saved != step:
                    save(step)
                name = signal.Signals(stop.signum).name if stop.signum else "a signal on another rank"
                if env.main:
                    print(
                        f"stopped by {name} at step {step}; checkpoint saved: resume with --resume {out / ckpt.FILENAME}",
                        flush=True,
                    )
                return 128 + (stop.signum or signal.SIGTERM)
    if env.main:
        print(f"done: step {step}, checkpoint {out / ckpt.FILENAME}, metrics {metrics_path}", flush=True)
    return 0


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
