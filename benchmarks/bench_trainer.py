"""Trainer steps/s: today's configuration (the old path: fp32, NCHW, one tile worker generating on the fly beside
torch's default threads) against the fast path (channels_last, threads sized to the cores, prefetching workers;
and the tile cache), same model, batch and data, each run by the real command line (`python -m training.train`).

python -m benchmarks.bench_trainer [--config training/configs/unet.toml] [--steps 30] [--rounds 2]

Every variant trains `--steps` steps of the config (logging every --log-every steps, no validation or checkpoint
inside the measured steps); steps/s is measured from the trainer's own log after the first window (start-up,
worker spin-up). Variants run in turns, `--rounds` times, and the median is kept, so that other work on a shared
machine weighs on all of them alike. The [data] table is the config's with `length` cut to --tiles (the tile cache
is filled once, before the runs: its fill time is reported on its own row). The CPU model, whether it has native
bf16, and the precision each variant ran are in the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from training.config import load_config
from training.trainer.precision import cpu_model, native_cpu_bf16, usable_cores

from .results import record

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NLF_SHARED_DATA") or REPO.parent / "shared" / "data") / "real"

# name -> (flags, what it is). The old path: what `python -m training.train` did before the fast path, with the
# shipped configs' num_workers = 1: fp32, contiguous (NCHW), torch's default threads (one per core) beside the
# worker, the DataLoader's default prefetch of 2 batches.
VARIANTS = {
    "old": (
        ["--precision", "fp32", "--memory-format", "contiguous", "--threads", str(torch.get_num_threads())],
        {"prefetch": 2},
        "old path: fp32, contiguous, default threads (one per core) beside 1 tile worker (prefetch 2)",
    ),
    "fast": ([], {}, "fast path (defaults): auto precision, channels_last, threads = cores - workers, 1 worker (prefetch 4)"),
    "fast+cache": (
        ["--num-workers", "0"],
        {},
        "fast path, tiles read from a filled tile cache (no worker; the worker's core left free)",
    ),
    "fast+cache, all threads": (
        ["--num-workers", "0", "--threads", str(usable_cores())],
        {},
        "fast path, tiles from the cache, one compute thread per core",
    ),
    "fast bf16": (["--precision", "bf16"], {}, "fast path with bf16 autocast"),
    "fast, all threads": (
        ["--threads", str(usable_cores())],
        {},
        "fast path but one compute thread per core beside the worker (oversubscribed)",
    ),
    "fast, no worker": (["--num-workers", "0"], {}, "fast path, tiles generated in the training process (no worker)"),
}
DEFAULT_VARIANTS = ["old", "fast", "fast+cache", "fast+cache, all threads", "fast bf16"]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_config(config: dict, path: Path) -> Path:
    lines = []
    for table in ("model", "data", "train"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in config[table].items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def steps_per_s(metrics: Path) -> tuple[float, float]:
    """(steps/s, mean seconds a step waited for tiles) over the logged windows after the first."""
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train = [r for r in records if r["split"] == "train"]
    if len(train) < 2:
        raise RuntimeError(f"{metrics}: fewer than two logged windows; raise --steps")
    steps = [b["step"] - a["step"] for a, b in zip(train, train[1:])]
    seconds = sum(n / r["steps_per_s"] for n, r in zip(steps, train[1:]))
    wait = sum(n * r.get("data_wait_s", 0.0) for n, r in zip(steps, train[1:])) / sum(steps)
    return sum(steps) / seconds, wait


def run_variant(name: str, config: dict, work: Path, steps: int, cache: Path | None) -> dict:
    flags, train_overrides, _ = VARIANTS[name]
    cfg = {**config, "train": {**config["train"], **train_overrides}}
    path = write_config(cfg, work / f"{name.replace(' ', '_').replace('+', '_')}.toml")
    out = Path(tempfile.mkdtemp(dir=work, prefix="run_"))
    command = [sys.executable, "-m", "training.train", "--config", str(path), "--out", str(out / "run")]
    command += ["--max-steps", str(steps), *flags]
    if cache is not None and "cache" in name:
        command += ["--data-cache", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_NUM_THREADS", None)  # every variant sizes its own threads
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(command)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    rate, wait = steps_per_s(out / "run" / "metrics.jsonl")
    setup = next((line for line in proc.stdout.splitlines() if line.startswith("step: ")), "")
    setup = re.sub(r"(tiles from the cache) \S+", r"\1", setup.removeprefix("step: "))  # not the temporary path
    return {"steps_per_s": rate, "data_wait_s": wait, "setup": setup}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_trainer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="training/configs/unet.toml")
    parser.add_argument("--steps", type=int, default=15, help="steps per run (the first --log-every are not measured)")
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="runs of every variant, in turns; the median is kept")
    parser.add_argument("--tiles", type=int, default=2048, help="[data] length of the benchmark runs (and of the cache)")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--section", default=None, help="results.json section (default: trainer, CONFIG NAME)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write benchmarks/results.*")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    data = dict(config["data"], length=args.tiles)
    if data.get("kind", "synthetic") != "synthetic" and not SHARED.is_dir():
        print(f"note: {SHARED} is missing: the benchmark uses synthetic tiles only", flush=True)
        data["kind"] = "synthetic"
    train = dict(config["train"], log_every=args.log_every, val_every=10**6, checkpoint_every=10**6)
    config = {"model": config["model"], "data": data, "train": train}
    name = Path(args.config).stem
    cpu = f"{cpu_model()}, {usable_cores()} cores, native bf16: {'yes' if native_cpu_bf16() else 'no'}"
    print(f"trainer benchmark, {name}: batch {train['batch_size']}, tile {data['tile']}; CPU {cpu}", flush=True)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_trainer_") as tmp:
        work = Path(tmp)
        cache = None
        if any("cache" in v for v in args.variants):
            from training.data.cache import fill_cache

            start = time.perf_counter()
            cache = fill_cache(data, work / "tiles", "train", usable_cores())
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "variant": "tile cache fill (once per [data] table, every core)",
                    "steps_per_s": None,
                    "speedup_vs_old": None,
                    "data_wait_s": None,
                    "precision": None,
                    "ran": f"{args.tiles} tiles in {seconds:.1f} s ({args.tiles / seconds:.1f} tiles/s)",
                }
            )
            print(rows[-1]["ran"], flush=True)
        results: dict[str, list[dict]] = {v: [] for v in args.variants}
        for round_ in range(args.rounds):
            for variant in args.variants:
                result = run_variant(variant, config, work, args.steps, cache)
                results[variant].append(result)
                print(
                    f"round {round_ + 1} {variant}: {result['steps_per_s']:.3f} steps/s "
                    f"(waited {result['data_wait_s']:.3f} s/step for tiles; {result['setup']})",
                    flush=True,
                )
    old = statistics.median(r["steps_per_s"] for r in results["old"]) if results.get("old") else None
    for variant in args.variants:
        rate = statistics.median(r["steps_per_s"] for r in results[variant])
        setup = results[variant][-1]["setup"]
        rows.append(
            {
                "variant": VARIANTS[variant][2],
                "steps_per_s": rate,
                "speedup_vs_old": rate / old if old else None,
                "data_wait_s": statistics.median(r["data_wait_s"] for r in results[variant]),
                "precision": setup.split(",")[0],
                "ran": setup,
            }
        )
    for row in rows:
        print(row, flush=True)
    if not args.no_record:
        section = args.section or f"trainer, {name}"
        note = (
            f"{name}: batch {train['batch_size']}, tile {data['tile']}, [data] kind {data.get('kind')}; CPU {cpu}; "
            f"median of {args.rounds} runs of {args.steps} steps each; load average before: {load:.2f}"
        )
        record(
            section,
            [
                {
                    "variant": "setup",
                    "steps_per_s": None,
                    "speedup_vs_old": None,
                    "data_wait_s": None,
                    "precision": None,
                    "ran": note,
                },
                *rows,
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
