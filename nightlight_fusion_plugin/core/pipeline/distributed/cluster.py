"""The Dask side: which cluster (a LocalCluster of N processes, a running scheduler, or none), the check that
every worker can run the blocks, and the submission loop.

Dask (`requirements-dask.txt`) is imported only when a cluster is asked for: the plugin and the single-process
path never need it. A lost worker costs only its blocks in flight (the scheduler runs them again elsewhere); a lost
scheduler or client stops the run, and the journal keeps every finished block for `--resume`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from ...errors import FusionError, InputError
from .blocks import BLOCK_COLS, BLOCK_ROWS, Block, BlockSpec, check_worker, run_block


@dataclass(frozen=True)
class ClusterOptions:
    """Where blocks run: `workers` processes of a LocalCluster, a running scheduler, or in this process."""

    workers: int | None = None
    threads: int = 1  # threads per worker (also onnxruntime's, unless the request sets its own)
    scheduler: str | None = None
    resume: bool = False
    block_rows: int = BLOCK_ROWS
    block_cols: int = BLOCK_COLS
    connect_timeout: float = 20.0  # seconds to reach a --scheduler before giving up

    @property
    def uses_dask(self) -> bool:
        return bool(self.workers) or bool(self.scheduler)


@contextmanager
def cluster_client(options: ClusterOptions | None) -> Iterator[Any]:
    """A dask.distributed Client for the options (None: run blocks in this process)."""
    if options is None or not options.uses_dask:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise FusionError(
            "--workers/--scheduler need Dask, which is not installed: "
            "pip install -c constraints.txt -r requirements-dask.txt (the single-process run needs nothing more)."
        ) from exc
    if options.workers is not None and options.workers < 1:
        raise InputError(f"--workers must be at least 1, got {options.workers}.")
    if options.threads < 1:
        raise InputError(f"--threads must be at least 1, got {options.threads}.")
    with ExitStack() as stack:
        if options.scheduler:
            try:
                client = stack.enter_context(Client(options.scheduler, timeout=f"{options.connect_timeout:g}s"))
            except (OSError, TimeoutError, ValueError) as exc:
                why = " ".join(str(exc).split())
                raise FusionError(
                    f"Cannot reach the Dask scheduler at {options.scheduler} within {options.connect_timeout:g} s ({why}); "
                    "start it (dask scheduler) or check the address (tcp://HOST:8786)."
                ) from exc
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=options.workers,
                    threads_per_worker=options.threads,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=40,
                )
            )
            client = stack.enter_context(Client(cluster))
        yield client


def worker_count(client) -> int:
    return len(client.scheduler_info().get("workers", {}))


def check_workers(client, spec: BlockSpec) -> None:
    """Every worker has the inputs and the client's model files (same sha256), else an InputError naming each
    worker and what it lacks, before a single block is written."""
    if worker_count(client) == 0:
        raise FusionError("The Dask cluster has no worker: start some (dask worker tcp://HOST:8786) and run again.")
    problems = [p for p in client.run(check_worker, spec).values() if p]
    if problems:
        raise InputError(" ".join(problems) + " Nothing was written.")


def run_on_cluster(
    client,
    spec: BlockSpec,
    pending: list[Block],
    store: Callable[[Block, Any], None],
    check_cancel: Callable[[], None],
    stop_if_told: Callable[[], None],
) -> None:
    """Run the pending blocks on the cluster, a few in flight per worker, storing each as it finishes."""
    from dask.distributed import as_completed

    window = 2 * max(1, worker_count(client))  # blocks in flight: keeps workers busy without holding every result
    spec_future = client.scatter(spec, broadcast=True)
    queue = list(pending)
    running = as_completed()
    futures: dict[str, Block] = {}

    def submit() -> None:
        block = queue.pop(0)
        future = client.submit(run_block, spec_future, block.row0, block.row1, block.col0, block.col1, pure=False)
        futures[future.key] = block
        running.add(future)

    for _ in range(min(window, len(queue))):
        submit()
    for future in running:
        check_cancel()
        stop_if_told()
        store(futures.pop(future.key), future.result())  # a worker's InputError is re-raised here, as is
        if queue:
            submit()
