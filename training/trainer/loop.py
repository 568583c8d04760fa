"""The training loop: one run (or its resumption) from a checked config to checkpoints and metrics."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, default_collate

from nightlight_fusion_plugin.core.engine import transforms

from .. import checkpoint as ckpt
from ..data import build_dataset
from ..models import ConfigError, build_model
from .batches import EpochBatches, _worker_init, check_data_table, to_device
from .distributed import Distributed
from .optim import EMA, LossModule, lr_lambda
from .precision import compute_threads, precision_context, resolve_memory_format, resolve_precision, to_memory_format
from .state import git_commit, initial_weights, rng_state, seed_everything, set_rng_state
from .validation import validate


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, nothing to resume, ...); the message says what to do."""


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
    # Compute threads sized to the cores the config's tile workers leave free (an explicit OMP_NUM_THREADS wins on
    # "auto"). The thread count is part of the numerics (oneDNN splits reductions by thread), so it follows the
    # config's num_workers, never --num-workers/--data-cache: those change speed, never the run.
    threads = torch.get_num_threads()
    if env.device.type == "cpu" and (tc["threads"] > 0 or "OMP_NUM_THREADS" not in os.environ):
        threads = compute_threads(tc["threads"], tc["num_workers"], env.world)
        torch.set_num_threads(threads)
    seed_everything(tc["seed"])  # same init on every rank (DDP also broadcasts rank 0's weights)
    model = build_model(config["model"]).to(env.device)
    memory_format = resolve_memory_format(tc["memory_format"], model.family)
    model = model.to(memory_format=memory_format)  # conv weights in the layout of the batches (values unchanged)
    if data_cache:
        from ..data.cache import CachedDataset

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
        model.data_init(to_memory_format(to_device(first, env.device), memory_format))
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
        # Each worker keeps `prefetch` batches ready, so a slow tile never stalls the step.
        persistent_workers=workers > 0,
        prefetch_factor=tc["prefetch"] if workers > 0 else None,
    )
    val_batches: list[dict[str, torch.Tensor]] = []
    if env.main:
        n_val = min(len(val_set), tc["val_batches"] * tc["batch_size"])
        items = [val_set[i] for i in range(n_val)]
        val_batches = [
            to_memory_format(default_collate(items[i : i + tc["batch_size"]]), memory_format)
            for i in range(0, n_val, tc["batch_size"])
        ]
    precision = resolve_precision(tc["precision"], model, env.device, quiet=not env.main)
    amp = precision_context(precision, env.device)
    layout = "channels_last" if memory_format == torch.channels_last else "contiguous"

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
        {
            "command": argv,
            "git_commit": meta["git_commit"],
            "from_step": start_step,
            "device": meta["device"],
            "precision": precision,
            "memory_format": layout,
        },
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
        print(
            f"step: {precision}, {layout}, {threads} compute thread(s), {workers} tile worker(s)"
            + (f" prefetching {tc['prefetch']} batches each" if workers else "")
            + (f", tiles from the cache {data_cache}" if data_cache else ""),
            flush=True,
        )
    if start_step >= stop_step:
        print(f"nothing to do: the checkpoint is at step {start_step} (stop at {stop_step})", flush=True)
        return 0

    step = start_step
    window: dict[str, float] = {}
    window_n, t0, last_saved, waited = 0, time.time(), start_step if state else None, 0.0
    batches = iter(loader)
    model.train()
    with StopSignal() as stop:
        while step < stop_step:
            t_wait = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - t_wait  # time the step waited for tiles (0 when the loader keeps up)
            batch = to_memory_format(to_device(batch, env.device), memory_format)
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
                    "data_wait_s": waited / window_n,
                }
                log(record)
                if env.main:
                    print(
                        f"step {step}/{stop_step} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                        f"{record['steps_per_s']:.2f} it/s",
                        flush=True,
                    )
                window, window_n, t0, waited = {}, 0, time.time(), 0.0
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
