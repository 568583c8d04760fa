"""The inference engine with real exported models (smoke-trained) through real onnxruntime sessions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio

from nightlight_fusion_plugin.core.engine.models import available_models
from nightlight_fusion_plugin.core.errors import CancelledError, InputError
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse


def run(sample, out, **kwargs):
    request = FuseRequest(dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(out), **kwargs)
    return fuse(request)


def read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.tags(), src.bounds, src.transform


@pytest.mark.parametrize(
    "model, extra",
    [
        ("unet-fp32", {}),
        ("diffusion-fp32", {"sampler": "ddim", "steps": 3}),
        ("diffusion-int8", {"sampler": "dpmpp_2m", "steps": 3}),
        ("flow-matching-fp32", {"sampler": "flow_heun", "steps": 2}),
        ("normalizing-flow-fp32", {}),
    ],
)
def test_every_family_fuses_the_sample(use_zoo, sample, tmp_path, model, extra):
    result = run(sample, tmp_path / "out.tif", model=model, **extra)
    data, tags, _, _ = read(tmp_path / "out.tif")
    assert data.shape == (240, 240) and np.isfinite(data).all()
    assert tags["NLF_METHOD"] == model and tags["NLF_DEVICE"] == "cpu" and result.device == "cpu"
    assert int(tags["NLF_NFE"]) >= 1


def test_models_lists_the_zoo_with_variants(use_zoo):
    models = {m.id: m for m in available_models()}
    assert models["diffusion-int8"].variant_of == "diffusion-fp32"
    assert models["diffusion-fp32"].variant_of is None and models["baseline"].default
    card = (use_zoo / models["diffusion-int8"].zoo.card).read_text()
    assert "quantized from diffusion-fp32" in card and "never validated on real 1990s DMSP" in card


def test_same_seed_same_bytes_other_seed_differs(use_zoo, sample, tmp_path):
    args = {"model": "diffusion-fp32", "sampler": "ddpm", "steps": 3}
    run(sample, tmp_path / "a.tif", seed=7, **args)
    run(sample, tmp_path / "b.tif", seed=7, **args)
    run(sample, tmp_path / "c.tif", seed=8, **args)
    a, b, c = read(tmp_path / "a.tif")[0], read(tmp_path / "b.tif")[0], read(tmp_path / "c.tif")[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_no_seams_output_does_not_depend_on_the_area(use_zoo, sample, tmp_path):
    """Deterministic sampler, noise seeded by geographic tile: a run over an area shifted by half a tile
    gives the same pixels where the two overlap."""
    args = {"model": "flow-matching-fp32", "sampler": "flow_euler", "steps": 2, "seed": 3}
    run(sample, tmp_path / "full.tif", **args)
    run(sample, tmp_path / "part.tif", extent=(0.1, 0.2, 0.8, 0.9), extent_crs="EPSG:4326", **args)
    full, _, _, ft = read(tmp_path / "full.tif")
    part, _, _, pt = read(tmp_path / "part.tif")
    row, col = round((pt.f - ft.f) / ft.e), round((pt.c - ft.c) / ft.a)
    assert row > 0 and col > 0
    np.testing.assert_allclose(full[row : row + part.shape[0], col : col + part.shape[1]], part, atol=1e-4)


def test_tiny_areas_are_padded_and_cropped(use_zoo, sample, tmp_path):
    run(sample, tmp_path / "one.tif", model="unet-fp32", extent=(0.5, 0.5, 0.5 + 1 / 240, 0.6), extent_crs="EPSG:4326")
    data, _, _, _ = read(tmp_path / "one.tif")
    assert data.shape == (24, 1) and np.isfinite(data).all()


def test_uncertainty_layer_from_an_ensemble(use_zoo, sample, tmp_path):
    result = run(
        sample,
        tmp_path / "mean.tif",
        model="diffusion-fp32",
        sampler="ddim",
        steps=2,
        ensemble=3,
        uncertainty=str(tmp_path / "std.tif"),
    )
    spread, tags, _, _ = read(tmp_path / "std.tif")
    assert result.uncertainty and tags["NLF_ENSEMBLE"] == "3"
    assert (spread >= 0).all() and spread.max() > 0


def test_cuda_requested_without_cuda_falls_back_to_cpu(use_zoo, sample, tmp_path):
    result = run(sample, tmp_path / "out.tif", model="unet-fp32", device="cuda")
    assert result.device == "cpu" and any("running on the CPU" in note for note in result.notes)


def test_cancel_stops_within_a_batch_and_leaves_nothing(use_zoo, sample, tmp_path):
    calls = []
    request = FuseRequest(
        dmsp=str(sample["dmsp"]),
        viirs=str(sample["reference"]),
        output=str(tmp_path / "out.tif"),
        model="diffusion-fp32",
        sampler="ddim",
        steps=2,
        batch_size=2,
    )
    with pytest.raises(CancelledError):
        fuse(request, is_cancelled=lambda: calls.append(1) or len(calls) > 3)
    assert not list(tmp_path.iterdir())


def test_bad_zoo_states_are_explained(use_zoo, sample, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="Unknown model 'nope'"):
        run(sample, tmp_path / "o.tif", model="nope")
    broken = tmp_path / "zoo"
    shutil.copytree(use_zoo, broken)
    monkeypatch.setenv("NLF_MODEL_ZOO", str(broken))
    (broken / "unet-fp32.onnx").write_bytes((broken / "unet-fp32.onnx").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="sha256"):
        run(sample, tmp_path / "o.tif", model="unet-fp32")
    (broken / "unet-fp32.onnx").unlink()
    with pytest.raises(InputError, match="missing"):
        run(sample, tmp_path / "o.tif", model="unet-fp32")
    manifest = broken / "manifest.json"
    manifest.write_text(json.dumps({"models": [{"id": "x"}]}))
    with pytest.raises(InputError, match="manifest.json lacks"):
        run(sample, tmp_path / "o.tif", model="x")
    manifest.write_text("{not json")
    with pytest.raises(InputError, match="malformed"):
        run(sample, tmp_path / "o.tif", model="x")
    assert not (tmp_path / "o.tif").exists()


def test_sampler_of_the_wrong_family_is_refused(use_zoo, sample, tmp_path):
    with pytest.raises(InputError, match="does not apply"):
        run(sample, tmp_path / "o.tif", model="flow-matching-fp32", sampler="ddpm", steps=2)


def test_sessions_are_cached_on_request_and_reloaded_when_the_file_changes(use_zoo, tmp_path):
    import shutil as _shutil

    from nightlight_fusion_plugin.core.engine.runtime import clear_session_cache, load_model

    clear_session_cache()
    model = use_zoo / "unet-fp32.onnx"
    copy = tmp_path / "unet.onnx"
    _shutil.copy(model, copy)
    first = load_model(copy, cache=True)
    assert load_model(copy, cache=True) is first
    assert load_model(copy, cache=False) is not first
    copy.write_bytes(model.read_bytes())  # replaced (new mtime): loaded again
    import os

    os.utime(copy, ns=(first_ns := os.stat(copy).st_mtime_ns + 10**9, first_ns))
    assert load_model(copy, cache=True) is not first
    clear_session_cache()
