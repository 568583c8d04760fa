"""A real cluster: `dask scheduler` and two `dask worker` processes on loopback (explicit free ports, one thread
each, no dashboard), started and stopped by the test, with `fuse` and `series` run through the CLI with
`--scheduler`. A worker is killed mid-run (the run goes on on the other), then the client itself; `--resume`
finishes the output byte-identical to the single process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.pipeline.series import SeriesRequest, run_series
from nightlight_fusion_plugin.core.report.sample import write_sample

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
START_TIMEOUT = 90  # s for the scheduler and workers to come up
RUN_TIMEOUT = 300  # s for one CLI run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """The scheduler and worker processes, each in its own process group so that it can be killed alone."""

    def __init__(self, logs: Path):
        self.logs, self.port, self.processes = logs, free_port(), []
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self.spawn("scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard")

    def spawn(self, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"dask-{len(self.processes)}.log", "w")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [sys.executable, "-m", "dask", *args], cwd=REPO, env=ENV, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        process.log = log
        self.processes.append(process)
        return process

    def add_worker(self) -> subprocess.Popen:
        return self.spawn(
            "worker", self.address, "--host", "127.0.0.1", "--worker-port", str(free_port()), "--nthreads", "1",
            "--no-nanny", "--no-dashboard", "--death-timeout", "60",
        )  # fmt: skip

    def wait_for_workers(self, n: int) -> None:
        from dask.distributed import Client

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with Client(self.address, timeout="5s") as client:
                    client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.log.close()

    def close(self) -> None:
        for process in self.processes:
            self.kill(process)


@pytest.fixture
def cluster(tmp_path):
    pytest.importorskip("dask.distributed")
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Cluster(logs)
    try:
        running.add_worker()
        running.add_worker()
        running.wait_for_workers(2)
        yield running
    finally:
        running.close()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nightlight_fusion_plugin", *args]


def journalled(journal: Path) -> int:
    try:
        return len(json.loads(journal.read_text())["blocks"])
    except (OSError, ValueError, KeyError):
        return 0


def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def written(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    with rasterio.open(path) as src:
        return src.read(), {k: v for k, v in src.tags().items() if k not in ("NLF_CREATED", "NLF_BLOCKS")}


def test_fuse_and_series_with_a_scheduler_survive_a_lost_worker_and_resume(cluster, tmp_path):
    area = write_sample(tmp_path / "area", size=480, seed=3)
    dmsp, viirs = str(area["dmsp"]), str(area["reference"])
    single = fuse(FuseRequest(dmsp=dmsp, viirs=viirs, output=str(tmp_path / "single.tif"), model="unet-fp32", seed=5,
                              batch_size=2))  # fmt: skip
    out = tmp_path / "d.tif"
    args = cli("fuse", "--dmsp", dmsp, "--viirs", viirs, "--model", "unet-fp32", "--seed", "5", "--batch-size", "2",
               "--output", str(out), "--scheduler", cluster.address, "--block-rows", "48", "--block-cols", "96")  # fmt: skip
    journal = tmp_path / ".d.tif.partial.json"
    log = open(tmp_path / "logs" / "client.log", "w")  # noqa: SIM115 (closed below)
    client = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: journalled(journal) >= 2, client, "two blocks")
        cluster.kill(cluster.processes[1])  # a worker dies mid-run: its blocks in flight run again on the other
        at_kill = journalled(journal)
        wait_until(lambda: journalled(journal) >= at_kill + 3, client, "blocks after the lost worker")
        client.send_signal(signal.SIGKILL)  # then the client itself
        client.wait(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=30)
        log.close()
    done = journalled(journal)
    assert not out.exists() and 0 < done
    cluster.add_worker()  # a fresh worker joins the one that is left
    cluster.wait_for_workers(2)
    resumed = subprocess.run(args + ["--resume"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed: {done}/" in resumed.stderr
    (va, ta), (vb, tb) = written(Path(single.output)), written(out)
    assert np.array_equal(va, vb, equal_nan=True) and ta == tb
    assert not list(tmp_path.glob(".d.tif*"))

    # series through the same cluster, with the default model (reference-change) for its years
    years = {}
    for name in ("F14_2003", "F15_2005"):
        years[name] = tmp_path / f"{name}.tif"
        years[name].write_bytes(Path(dmsp).read_bytes())
    reference = tmp_path / "viirs_2015.tif"
    reference.write_bytes(Path(viirs).read_bytes())
    dmsp_years = [str(years["F14_2003"]), str(years["F15_2005"])]
    run_series(SeriesRequest(dmsp=dmsp_years, viirs=[str(reference)], output=str(tmp_path / "series_single.tif")))
    series = subprocess.run(
        cli("series", "--dmsp", *dmsp_years, "--viirs", str(reference), "--output", str(tmp_path / "series_d.tif"),
            "--scheduler", cluster.address, "--block-rows", "128", "--block-cols", "256"),
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert series.returncode == 0, series.stderr[-3000:]
    (sa, _), (sb, _) = written(tmp_path / "series_single.tif"), written(tmp_path / "series_d.tif")
    assert np.array_equal(sa, sb, equal_nan=True)
