"""2-D blocks as tasks (core/pipeline/distributed): every method byte-identical to fuse() in pixels and tags,
resumable, refusals, Dask optional. The real scheduler + workers test is tests/test_real_cluster.py."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from nightlight_fusion_plugin.core.errors import FusionError, InputError, OutputError
from nightlight_fusion_plugin.core.pipeline.distributed import (
    Block,
    BlockSpec,
    ClusterOptions,
    check_worker,
    check_workers,
    cluster_client,
    fuse_blocks,
    plan_blocks,
    run_block,
)
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

SAMPLE = Path(__file__).resolve().parent.parent / "nightlight_fusion_plugin" / "sample_data"
DMSP, VIIRS = SAMPLE / "dmsp_F15_2005_sample.tif", SAMPLE / "viirs_2015_reference_sample.tif"
SMALL = ClusterOptions(block_rows=64, block_cols=96)  # the 240² sample in 2-D blocks (4 × 2 or 5 × 3)
MASK = '{"type": "Polygon", "coordinates": [[[0.1, 0.12], [0.83, 0.2], [0.7, 0.9], [0.21, 0.77], [0.1, 0.12]]]}'
NOT_COMPARED = ("NLF_CREATED", "NLF_BLOCKS")  # the run's time and its block plan: everything else must match


def request(out: Path, model: str | None = "baseline", **kw) -> FuseRequest:
    base = dict(dmsp=str(DMSP), viirs=str(VIIRS), output=str(out), model=model, seed=5, threads=1, block_size=64)
    return FuseRequest(**{**base, **kw})


def band(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def written(path) -> tuple[np.ndarray, dict[str, str], str]:
    with rasterio.open(path) as src:
        tags = {k: v for k, v in src.tags().items() if k not in NOT_COMPARED}
        return src.read(1), tags, src.descriptions[0]


def assert_same_run(single, blocks) -> None:
    """Pixels, tags and band description of the output (and uncertainty layer), and the notes."""
    for a, b in [(single.output, blocks.output)] + ([(single.uncertainty, blocks.uncertainty)] if single.uncertainty else []):
        (va, ta, da), (vb, tb, db) = written(a), written(b)
        assert np.array_equal(va, vb, equal_nan=True), f"{np.sum(~((va == vb) | (np.isnan(va) & np.isnan(vb))))} pixels differ"
        assert ta == tb, {k: (ta.get(k), tb.get(k)) for k in ta.keys() | tb.keys() if ta.get(k) != tb.get(k)}
        assert da == db
    assert single.notes == [n for n in blocks.notes if not n.startswith(("Resumed", "Nothing to resume"))]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    return {m: band(fuse(request(d / f"{m}.tif", m)).output) for m in ("baseline", "unet-fp32")}


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.distributed")
    with cluster_client(ClusterOptions(workers=2, threads=1)) as client:
        yield client


# One row per method and option the engines must agree on. batch_size 2 makes a zoo model's batches 96 px wide,
# so the 240-px sample is split across columns too (blocks end at batch boundaries).
MATRIX = {
    "reference-change (the default with a reference)": dict(model=None),
    "reference-change, mask": dict(model="reference-change", mask=MASK),
    "baseline": dict(model="baseline"),
    "baseline, no reference": dict(model="baseline", viirs=None),
    "unet-fp32": dict(model="unet-fp32", batch_size=2),
    "unet-fp32 (the default without a reference)": dict(model=None, viirs=None, batch_size=2),
    "unet-fp32, extent and mask": dict(model="unet-fp32", batch_size=2, extent=(0.05, 0.1, 0.9, 0.95), mask=MASK),
    "unet_refaware-fp32 (condition v2, scene gain)": dict(model="unet_refaware-fp32", batch_size=2),
    "diffusion_refaware-fp32, staged, speed 1": dict(model="diffusion_refaware-fp32", speed=1, batch_size=2),
    "flow_matching-fp32, ensemble 2 + uncertainty": dict(model="flow_matching-fp32", speed=1, ensemble=2, batch_size=2),
    "normalizing_flow_refaware-fp32": dict(model="normalizing_flow_refaware-fp32", batch_size=2),
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_every_method_is_byte_identical_on_two_dask_workers(dask_client, tmp_path, case):
    kw = dict(MATRIX[case])
    if "ensemble" in kw:
        kw_single, kw_blocks = dict(kw, uncertainty=str(tmp_path / "su.tif")), dict(kw, uncertainty=str(tmp_path / "bu.tif"))
    else:
        kw_single = kw_blocks = kw
    single = fuse(request(tmp_path / "s.tif", **kw_single))
    blocks = fuse_blocks(request(tmp_path / "b.tif", **kw_blocks), SMALL, client=dask_client)
    assert_same_run(single, blocks)
    assert int(blocks.tags["NLF_BLOCKS"].split()[0]) > 1


def test_the_default_with_a_reference_runs_reference_change_in_blocks_too(tmp_path):
    """Issue #21's bug, as it was found: without --model and with a reference the single process runs
    reference-change, but the blocks ran TraditionalFusion under its name (99.99 % of the pixels differed, and
    NLF_DMSP_SCENE_GAIN, NLF_CHANGE_WEIGHT, NLF_REFERENCE_CHANGE, NLF_REFERENCE_DMSP_CORRELATION and the gap were
    missing). This test, with only the API the old module had, failed on it (pixels differ)."""
    single = fuse(request(tmp_path / "s.tif", None))
    blocks = fuse_blocks(request(tmp_path / "b.tif", None), ClusterOptions(block_rows=64))
    (va, ta, _), (vb, tb, _) = written(single.output), written(blocks.output)
    assert np.array_equal(va, vb, equal_nan=True)
    for key in ("NLF_METHOD", "NLF_DMSP_SCENE_GAIN", "NLF_CHANGE_WEIGHT", "NLF_REFERENCE_CHANGE",
                "NLF_REFERENCE_DMSP_CORRELATION", "NLF_REFERENCE_GAP_YEARS"):  # fmt: skip
        assert key in tb and tb[key] == ta[key]
    assert tb["NLF_METHOD"] == "reference-change"


def test_reference_simulation_chunks_are_the_same_in_blocks(tmp_path, monkeypatch):
    """Condition v2's reference simulation runs in fixed column chunks (4096 px; here 64 so that the 240-px sample
    has four): a block computes the chunks it touches exactly as the whole run does. (On this sample the chunk
    edges do not even change a value: the simulation is digitised to whole DN.)"""
    from nightlight_fusion_plugin.core.methods import generative

    widths = []
    simulate = generative.reference_dmsp
    monkeypatch.setattr(generative, "reference_dmsp", lambda wide, *a: widths.append(wide.shape[1]) or simulate(wide, *a))
    monkeypatch.setattr(generative, "REFERENCE_CHUNK", 64)
    kw = dict(model="unet_refaware-fp32", batch_size=2)
    single = fuse(request(tmp_path / "s.tif", **kw))
    assert max(widths) < 240  # chunks, not the whole band
    blocks = fuse_blocks(request(tmp_path / "b.tif", **kw), SMALL)
    assert_same_run(single, blocks)


def test_blocks_split_rows_and_columns_on_method_boundaries():
    from nightlight_fusion_plugin.core.raster.grids import Grid, inspect_raster
    from nightlight_fusion_plugin.core.sensor.intercalibration import IDENTITY

    info = inspect_raster(VIIRS, "VIIRS")
    grid = Grid(info.crs, info.transform, 10000, 3000)
    traditional = plan_blocks(BlockSpec(info, None, grid, IDENTITY, 0, block_size=512), 512, 4096)
    assert len(traditional) == 6 * 3 and all(b.row0 % 512 == 0 and b.col0 % 512 == 0 for b in traditional)
    assert {b.col1 - b.col0 for b in traditional} == {4096, 10000 - 8192}
    zoo = plan_blocks(BlockSpec(info, None, grid, IDENTITY, 0, kind="zoo", tile=64, batch_size=8), 512, 4096)
    cols = sorted({(b.col0, b.col1) for b in zoo})
    assert len(cols) == 3 and all(c1 - c0 <= 4096 for c0, c1 in cols) and cols[-1][1] == 10000
    assert sum((b.row1 - b.row0) * (b.col1 - b.col0) for b in zoo) == grid.width * grid.height


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
    assert any("Resumed: 2/8" in n for n in result.notes)
    assert np.array_equal(band(out), single["baseline"], equal_nan=True)


def test_a_journal_of_another_command_is_refused_naming_the_difference(tmp_path):
    out = tmp_path / "r.tif"
    with pytest.raises(FusionError, match="--resume"):
        fuse_blocks(request(out), SMALL, fail_after=1)
    journal = (tmp_path / ".r.tif.partial.json").read_text()
    resume = dataclasses.replace(SMALL, resume=True)
    with pytest.raises(InputError, match=r"another command: request\.model: \"baseline\" in the journal, \"unet-fp32\" now"):
        fuse_blocks(request(out, "unet-fp32"), resume)
    with pytest.raises(InputError, match=r"request\.seed: 5 in the journal, 6 now"):
        fuse_blocks(request(out, seed=6), resume)
    assert (tmp_path / ".r.tif.partial.json").read_text() == journal and not out.exists()  # nothing touched
    with pytest.raises(OutputError, match="add --resume to continue it, or --overwrite"):
        fuse_blocks(request(out, "unet-fp32"), SMALL)  # nor discarded without --overwrite
    result = fuse_blocks(request(out, "baseline", overwrite=True), SMALL)  # afresh
    assert not any(n.startswith("Resumed") for n in result.notes) and out.exists()


def test_existing_output_needs_overwrite_and_is_left_alone(tmp_path):
    out = tmp_path / "o.tif"
    out.write_bytes(b"keep")
    with pytest.raises(FusionError, match="already exists"):
        fuse_blocks(request(out), SMALL)
    assert out.read_bytes() == b"keep"


def test_a_method_without_a_block_runner_is_refused_not_replaced(tmp_path, monkeypatch):
    from nightlight_fusion_plugin.core.pipeline.distributed import runner

    monkeypatch.setattr(runner, "BLOCK_CONDITIONS", (1,))  # as a model of a newer condition version would be
    with pytest.raises(InputError, match=r"unet_refaware-fp32 cannot run in blocks yet .*condition version 2"):
        fuse_blocks(request(tmp_path / "o.tif", "unet_refaware-fp32"), SMALL)
    assert not list(tmp_path.iterdir())


def _zoo_spec(tmp_path, **zoo_changes):
    from nightlight_fusion_plugin.core.engine.models import model_entry
    from nightlight_fusion_plugin.core.methods.generative import sampling_plan
    from nightlight_fusion_plugin.core.raster.grids import Grid, inspect_raster
    from nightlight_fusion_plugin.core.sensor.intercalibration import IDENTITY

    info = inspect_raster(DMSP, "DMSP")
    zoo = dataclasses.replace(model_entry("unet-fp32").zoo, **zoo_changes)
    files = ((str(zoo.path), zoo.sha256),)
    plan = sampling_plan(zoo, None, None, None)
    return BlockSpec(info, None, Grid(info.crs, info.transform, 8, 8), IDENTITY, 0, kind="zoo", model=zoo, plan=plan, files=files)


def test_a_worker_without_the_model_file_or_with_another_version_says_so(tmp_path):
    missing = _zoo_spec(tmp_path, zoo_dir=str(tmp_path), file="absent.onnx")
    with pytest.raises(InputError, match=r"Worker .* has no model file .*absent.onnx"):
        run_block(missing, 0, 8)
    assert "has no model file" in check_worker(missing)
    other = _zoo_spec(tmp_path, sha256="0" * 64)
    with pytest.raises(InputError, match=r"Worker .*does not match its sha256"):
        run_block(other, 0, 8)
    assert re.search(r"has another version of .*unet-fp32.onnx: sha256 \w+…, the client's is 000000000000…", check_worker(other))
    assert check_worker(_zoo_spec(tmp_path)) is None


def test_every_dask_worker_is_checked_before_anything_is_written(dask_client, tmp_path, monkeypatch):
    from nightlight_fusion_plugin.core.pipeline.distributed import runner

    other = _zoo_spec(tmp_path, sha256="0" * 64)
    with pytest.raises(InputError, match=r"(Worker .*another version.*){2}Nothing was written"):
        check_workers(dask_client, other)
    real = runner._generative_spec

    def with_another_version(*args):  # the client has one version of the model, the workers another
        return dataclasses.replace(real(*args), files=other.files)

    monkeypatch.setattr(runner, "_generative_spec", with_another_version)
    with pytest.raises(InputError, match="sha256 .*Nothing was written"):
        fuse_blocks(request(tmp_path / "o.tif", "unet-fp32"), SMALL, client=dask_client)
    assert not list(tmp_path.iterdir())


def test_without_dask_the_message_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(FusionError, match="requirements-dask.txt"):
        with cluster_client(ClusterOptions(workers=2)):
            pass


def test_a_scheduler_that_does_not_answer_is_said_in_bounded_time():
    pytest.importorskip("dask.distributed")
    with socket.socket() as s:  # a free port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(FusionError, match=rf"Cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 2 s"):
        with cluster_client(ClusterOptions(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=2)):
            pass
    assert time.perf_counter() - started < 15


def test_a_cluster_lost_mid_run_is_resumed(single, dask_client, tmp_path):
    out = tmp_path / "c.tif"
    with pytest.raises(FusionError, match="stopped after .*--resume"):
        fuse_blocks(request(out), SMALL, client=dask_client, fail_after=1)
    result = fuse_blocks(request(out), dataclasses.replace(SMALL, resume=True), client=dask_client)
    assert any(n.startswith("Resumed") for n in result.notes)
    assert np.array_equal(band(out), single["baseline"], equal_nan=True)


def test_a_series_in_resumable_blocks_equals_the_single_process_series(tmp_path):
    """`series` fuses its years through fuse_blocks: with the default model (reference-change) too."""
    import shutil

    from nightlight_fusion_plugin.core.pipeline.series import SeriesRequest, run_series

    for name in ("F14_2003", "F15_2005"):
        shutil.copy(DMSP, tmp_path / f"{name}.tif")
    shutil.copy(VIIRS, tmp_path / "viirs_2015.tif")

    def series(name: str, cluster) -> np.ndarray:
        dmsp = [str(tmp_path / "F14_2003.tif"), str(tmp_path / "F15_2005.tif")]
        run_series(SeriesRequest(dmsp=dmsp, viirs=[str(tmp_path / "viirs_2015.tif")], output=str(tmp_path / name)), cluster)
        with rasterio.open(tmp_path / name) as src:
            return src.read()

    blocks = series("b.tif", ClusterOptions(resume=True, block_rows=64, block_cols=64))
    assert np.array_equal(series("a.tif", None), blocks, equal_nan=True)
    assert json.loads((tmp_path / "b.json").read_text())["model"] == "default"


def test_block_keys_and_windows():
    block = Block(64, 128, 96, 240)
    assert block.key == "64:96" and (block.window.col_off, block.window.width, block.window.height) == (96, 144, 64)


def test_cli_fuse_resume_and_workers(tmp_path, capsys):
    from nightlight_fusion_plugin.cli import main

    args = ["fuse", "--dmsp", str(DMSP), "--viirs", str(VIIRS), "--model", "baseline", "--seed", "5"]
    assert main(args + ["--output", str(tmp_path / "plain.tif"), "--quiet"]) == 0
    assert main(args + ["--output", str(tmp_path / "r.tif"), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "Block 1/1" in err and "Nothing to resume" in err
    assert np.array_equal(band(tmp_path / "r.tif"), band(tmp_path / "plain.tif"), equal_nan=True)
    assert main(args + ["--output", str(tmp_path / "r.tif"), "--resume", "--quiet"]) == 2  # exists, no --overwrite
