"""Where training batches come from: the data order (a pure function of seed, step and rank), the DataLoader's
workers, and the [data] table check."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from ..data import build_dataset
from ..models import ConfigError


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


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


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
