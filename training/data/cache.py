"""A disk cache of a training dataset's tiles, filled in parallel once and read by any number of runs.

The simulator costs ~25 ms of CPU per 64x64 tile; a GPU step on a batch of 16 costs far less. Runs that
share a [data] table (all shipped configs do) draw exactly the same tiles (item i is seeded by i), so
the tiles can be generated once, by every core, and read back from a memory map: same data, same
order, same augmentation, only faster. The cache records the [data] table it was made from and refuses
a run whose table differs.

    python -m training.data.cache --config training/configs/diffusion.toml --out /tmp/tiles --workers 16
    python -m training.train --config training/configs/diffusion.toml --data-cache /tmp/tiles
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import build_dataset

INDEX = "cache.json"
_worker: dict[str, Any] = {}


class CacheError(ValueError):
    """A cache that does not match the run, or is incomplete; the message says which and how to fix it."""


def _canonical(table: dict[str, Any]) -> str:
    return json.dumps(table, sort_keys=True, default=str)


def _open(out: Path, layout: dict[str, Any], mode: str) -> dict[str, np.memmap]:
    return {
        key: np.lib.format.open_memmap(out / f"{key}.npy", mode=mode, dtype=spec["dtype"], shape=tuple(spec["shape"]))
        for key, spec in layout.items()
    }


def _init(data_table: dict[str, Any], split: str, out: str, layout: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    _worker["dataset"] = build_dataset(data_table, split)
    _worker["arrays"] = _open(Path(out), layout, "r+")


def _fill(bounds: tuple[int, int]) -> int:
    dataset, arrays = _worker["dataset"], _worker["arrays"]
    for i in range(*bounds):
        for key, value in dataset[i].items():
            arrays[key][i] = value.numpy()
    # no msync here: the pages are shared through the page cache with every reader on this machine, and a
    # per-chunk flush of a multi-GB map is slow on some virtual machines
    return bounds[1] - bounds[0]


def fill_cache(data_table: dict[str, Any], out: str | os.PathLike, split: str = "train", workers: int | None = None) -> Path:
    """Generate every item of build_dataset(data_table, split) into out/ (one .npy per key); returns out."""
    out = Path(out)
    index = out / INDEX
    if index.exists() and json.loads(index.read_text()).get("data") == json.loads(_canonical(data_table)):
        print(f"cache {out} is already complete", flush=True)
        return out
    out.mkdir(parents=True, exist_ok=True)
    dataset = build_dataset(data_table, split)
    n = len(dataset)
    first = dataset[0]
    layout = {k: {"shape": [n, *v.shape], "dtype": str(v.numpy().dtype)} for k, v in first.items()}
    _open(out, layout, "w+")  # allocate
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(500, n // (workers * 8) or 1))
    tasks = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    t0, done, next_report = time.time(), 0, 0
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init, initargs=(data_table, split, str(out), layout)) as pool:
        for count in pool.imap_unordered(_fill, tasks):
            done += count
            if done >= next_report or done == n:
                next_report = done + n // 20
                rate = done / max(time.time() - t0, 1e-9)
                print(f"cache: {done}/{n} tiles, {rate:.0f} tiles/s", flush=True)
    index.write_text(json.dumps({"data": json.loads(_canonical(data_table)), "split": split, "length": n, "layout": layout}))
    return out


class CachedDataset(Dataset):
    """Items of a filled cache as tensors (the same dict build_dataset's dataset returns)."""

    def __init__(self, cache_dir: str | os.PathLike, data_table: dict[str, Any], split: str = "train"):
        self.dir = Path(cache_dir)
        index = self.dir / INDEX
        if not index.is_file():
            raise CacheError(
                f"{self.dir} is not a complete tile cache (no {INDEX}): fill it with "
                f"python -m training.data.cache --config CONFIG --out {self.dir}"
            )
        info = json.loads(index.read_text())
        if info["data"] != json.loads(_canonical(data_table)) or info["split"] != split:
            raise CacheError(
                f"tile cache {self.dir} was made from another [data] table or split ({info['split']}): "
                "fill a new cache for this config"
            )
        self.layout, self.length = info["layout"], int(info["length"])
        self._arrays: dict[str, np.memmap] | None = None  # opened lazily: once per DataLoader worker

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self._arrays is None:
            self._arrays = _open(self.dir, self.layout, "r")
        return {k: torch.from_numpy(np.array(a[index])) for k, a in self._arrays.items()}


def main(argv: list[str] | None = None) -> int:
    from ..config import load_config

    parser = argparse.ArgumentParser(prog="python -m training.data.cache", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="training config whose [data] table to cache")
    parser.add_argument("--out", required=True, help="cache directory (about 80 kB per 64x64 tile)")
    parser.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    args = parser.parse_args(argv)
    fill_cache(load_config(args.config)["data"], args.out, args.split, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
