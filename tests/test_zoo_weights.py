"""fp16 weight storage (training.zoo_weights): smaller files, float32 compute, the same fused rasters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import rasterio
from conftest import REPO

from nightlight_fusion_plugin.core.engine.runtime import sha256_of
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from training.zoo_weights import CAST_SUFFIX, store_weights_fp16, weights_are_fp16


def convert(zoo, *ids, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training.zoo_weights", str(zoo), *ids],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def zoo_pair(smoke_zoo, tmp_path):
    """The smoke zoo as exported (float32 weights) and a copy converted by the CLI."""
    before, after = tmp_path / "fp32_weights", tmp_path / "fp16_weights"
    shutil.copytree(smoke_zoo, before)
    shutil.copytree(smoke_zoo, after)
    convert(after)
    return before, after


def manifest(zoo) -> dict[str, dict]:
    return {m["id"]: m for m in json.loads((zoo / "manifest.json").read_text())["models"]}


def test_cli_converts_the_fp32_models_and_keeps_the_manifest_true(zoo_pair):
    before, after = zoo_pair
    old, new = manifest(before), manifest(after)
    for model_id, entry in new.items():
        path = after / entry["file"]
        assert sha256_of(path) == entry["sha256"] and path.stat().st_size == entry["size_bytes"]
        if old[model_id]["precision"] != "fp32":  # the int8 model is left as it is
            assert entry == old[model_id]
            continue
        assert entry["weights"] == "fp16" and weights_are_fp16(path)
        assert entry["size_bytes"] < old[model_id]["size_bytes"]
        assert 0 <= entry["weights_parity_max_abs"] < 2e-3
        metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert metadata == {p.key: p.value for p in onnx.load(str(before / entry["file"])).metadata_props}


def test_converting_again_changes_nothing_and_int8_is_refused(zoo_pair):
    _, after = zoo_pair
    first = (after / "manifest.json").read_text()
    convert(after)
    assert (after / "manifest.json").read_text() == first
    int8 = next(m for m, e in manifest(after).items() if e["precision"] == "int8")
    done = convert(after, int8, check=False)
    assert done.returncode != 0 and "only fp32 models" in done.stderr
    done = convert(after, "no-such-model", check=False)
    assert done.returncode != 0 and "no-such-model not in" in done.stderr


def test_onnxruntime_folds_the_casts_so_compute_stays_float32(smoke_zoo, tmp_path):
    src = smoke_zoo / manifest(smoke_zoo)["unet-fp32"]["file"]
    dst = tmp_path / "unet.onnx"
    assert store_weights_fp16(src, dst) > 0
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(dst)).graph.initializer)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(tmp_path / "optimised.onnx")).graph
    assert not [n for n in optimised.node if n.op_type == "Cast" and n.input[0].endswith(CAST_SUFFIX)]
    assert all(i.data_type != onnx.TensorProto.FLOAT16 for i in optimised.initializer)


@pytest.mark.parametrize("model", ["unet-fp32", "normalizing-flow-fp32"])
def test_the_fused_raster_barely_moves(zoo_pair, sample, tmp_path, monkeypatch, model):
    fused = []
    for zoo in zoo_pair:
        monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
        out = tmp_path / f"{zoo.name}.tif"
        fuse(FuseRequest(dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(out), model=model))
        with rasterio.open(out) as src:
            fused.append(src.read(1).astype(np.float64))
    log_before, log_after = (np.log1p(np.maximum(f, 0)) for f in fused)
    assert np.isfinite(log_after).all()
    assert np.abs(log_after - log_before).max() < 0.01  # log radiance; the models' own errors are ~0.1
