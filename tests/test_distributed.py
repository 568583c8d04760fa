"""Blocks of rows as tasks (core/distributed.py): byte-identical to fuse(), resumable, Dask optional."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from nightlight_fusion_plugin.core.errors import FusionError, InputError
from nightlight_fusion_plugin.core.pipeline.distributed import BlockSpec, ClusterOptions, cluster_client, fuse_blocks, run_block
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

SAMPLE = Path(__file__).resolve().parent.parent / "nightlight_fusion_plugin" / "sample_data"
SMALL = ClusterOptions(block_rows=64)  # the 240² sample in 4 blocks


def request(out: Path, model: str = "baseline", **kw) -> FuseRequest:
    base = dict(
        dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"),
        viirs=str(SAMPLE / "viirs_2015_reference_sample.tif"),
        output=str(out),
        model=model,
        seed=5,
        threads=1,
        block_size=64,
    )
    return FuseRequest(**{**base, **kw})


def band(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    return {m: band(fuse(request(d / f"{m}.tif", m)).output) for m in ("baseline", "unet-fp32")}


def test_blocks_in_process_equal_the_single_process_run(single, tmp_path):
    result = fuse_blocks(request(tmp_path / "b.tif"), SMALL)
    assert np.array_equal(band(result.output), single["baseline"], equal_nan=True)
    assert not list(tmp_path.glob(".*partial*"))  # journal and partial are gone once the output is in place


def test_an_interrupted_run_resumes_where_it_stopped(single, tmp_path):
    out = tmp_path / "r.tif"
    with pytest.raises(FusionError, match="--resume"):
        fuse_blocks(request(out), SMALL, fail_after=2)
    assert not out.exists() and (tmp_path / ".r.tif.partial.json").exists()
    result = fuse_blocks(request(out), dataclasses.replace(SMALL, resume=True))
    assert any("Resumed: 2/4" in n for n in result.notes)
    assert np.array_equal(band(out), single["baseline"], equal_nan=True)


def test_existing_output_needs_overwrite_and_is_left_alone(tmp_path):
    out = tmp_path / "o.tif"
    out.write_bytes(b"keep")
    with pytest.raises(FusionError, match="already exists"):
        fuse_blocks(request(out), SMALL)
    assert out.read_bytes() == b"keep"


def test_a_worker_without_the_model_file_says_so(tmp_path):
    from nightlight_fusion_plugin.core.engine.models import model_entry
    from nightlight_fusion_plugin.core.raster.grids import Grid, inspect_raster
    from nightlight_fusion_plugin.core.sensor.intercalibration import IDENTITY

    info = inspect_raster(SAMPLE / "dmsp_F15_2005_sample.tif", "DMSP")
    zoo = dataclasses.replace(model_entry("unet-fp32").zoo, zoo_dir=str(tmp_path), file="absent.onnx")
    spec = BlockSpec(info, None, Grid(info.crs, info.transform, 8, 8), IDENTITY, 0, model=zoo, plan=object())
    with pytest.raises(InputError, match="has no model file .*absent.onnx"):
        run_block(spec, 0, 8)


def test_without_dask_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(FusionError, match="requirements-dask.txt"):
        with cluster_client(ClusterOptions(workers=2)):
            pass


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.distributed")
    with cluster_client(ClusterOptions(workers=2, threads=1)) as client:
        yield client


@pytest.mark.parametrize("model", ["baseline", "unet-fp32"])
def test_two_dask_workers_are_byte_identical_to_one_process(single, dask_client, tmp_path, model):
    result = fuse_blocks(request(tmp_path / "d.tif", model), SMALL, client=dask_client)
    assert np.array_equal(band(result.output), single[model], equal_nan=True)


def test_a_cluster_lost_mid_run_is_resumed(single, dask_client, tmp_path):
    out = tmp_path / "c.tif"
    with pytest.raises(FusionError, match="stopped after .*--resume"):
        fuse_blocks(request(out), SMALL, client=dask_client, fail_after=1)
    result = fuse_blocks(request(out), dataclasses.replace(SMALL, resume=True), client=dask_client)
    assert any(n.startswith("Resumed") for n in result.notes)
    assert np.array_equal(band(out), single["baseline"], equal_nan=True)


def _start_cluster(port: int):
    """A real scheduler and one worker, as separate process groups (so the test can kill them)."""
    import subprocess
    import time

    def spawn(*args):
        return subprocess.Popen(
            [sys.executable, "-m", *args, "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    scheduler = spawn("distributed.cli.dask_scheduler", "--port", str(port))
    time.sleep(3)
    worker = spawn("distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1")
    time.sleep(4)
    return [scheduler, worker]


def _kill(processes) -> None:
    import os
    import signal

    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_a_scheduler_killed_mid_run_is_resumed_on_a_new_cluster(single, tmp_path):
    """The whole cluster (scheduler and worker) dies after two blocks: a clear error, then --resume finishes
    the run on a fresh cluster with the band identical to the single-process run."""
    pytest.importorskip("dask.distributed")
    out, port = tmp_path / "k.tif", 8797
    options = ClusterOptions(scheduler=f"tcp://127.0.0.1:{port}", block_rows=32)
    cluster = _start_cluster(port)
    try:

        def progress(fraction: float, message: str) -> None:
            if message.startswith("Block 2/"):
                _kill(cluster)

        # blocks already in flight when the cluster dies may still land: at least the two before the kill
        with pytest.raises(FusionError, match=r"stopped after [2-7]/8 blocks.*--resume"):
            with cluster_client(options) as client:
                fuse_blocks(request(out, "unet-fp32", block_size=512), options, progress, client=client)
        assert not out.exists()
        cluster = _start_cluster(port)
        resumed = dataclasses.replace(options, resume=True)
        with cluster_client(resumed) as client:
            result = fuse_blocks(request(out, "unet-fp32", block_size=512), resumed, client=client)
    finally:
        _kill(cluster)
    assert any(re.match(r"Resumed: [2-7]/8", n) for n in result.notes)
    assert np.array_equal(band(out), single["unet-fp32"], equal_nan=True)


def test_cli_fuse_resume_and_workers(tmp_path, capsys):
    from nightlight_fusion_plugin.cli import main

    args = [
        "fuse",
        "--dmsp",
        str(SAMPLE / "dmsp_F15_2005_sample.tif"),
        "--viirs",
        str(SAMPLE / "viirs_2015_reference_sample.tif"),
    ]
    args += ["--model", "baseline", "--seed", "5"]
    assert main(args + ["--output", str(tmp_path / "plain.tif"), "--quiet"]) == 0
    assert main(args + ["--output", str(tmp_path / "r.tif"), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "Block 1/1" in err and "Nothing to resume" in err
    assert np.array_equal(band(tmp_path / "r.tif"), band(tmp_path / "plain.tif"), equal_nan=True)
    assert main(args + ["--output", str(tmp_path / "r.tif"), "--resume", "--quiet"]) == 2  # exists, no --overwrite
