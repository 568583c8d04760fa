"""Precision picked per machine (issue #20): auto measures each gated variant once and caches the choice per
machine; explicit precisions run that variant or say which exist; a corrupt variant falls back to fp32."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from nightlight_fusion_plugin.core.engine import precision as P
from nightlight_fusion_plugin.core.engine.zoo import load_manifest
from nightlight_fusion_plugin.core.errors import InputError
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "nightlight_fusion_plugin" / "sample_data"


@pytest.fixture
def variant_zoo(tmp_path: Path, monkeypatch) -> Path:
    """A zoo with a tiny UNet, an 'int8' and an 'fp16' variant of it (copies of the fp32 file: the selection is
    what is tested here; the real quantized files are tested by the export and report tests)."""
    from nightlight_fusion_plugin.core.engine import transforms
    from training.export import add_metadata, export_onnx, sha256_of
    from training.models.regression import RegressionConfig, RegressionUNet
    from training.onnx_export.zoo import register

    torch.manual_seed(0)
    model = RegressionUNet(RegressionConfig(base_channels=8, channel_mult=(1, 2))).eval()
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    path = zoo / "tiny-fp32.onnx"
    export_onnx(model, "unet", path, 16)
    add_metadata(
        path,
        {"nlf_family": "unet", "nlf_model_id": "tiny-fp32", "nlf_transforms": json.dumps(transforms.describe()),
         "nlf_input_channels": json.dumps(list(transforms.CONDITION_CHANNELS[1])), "nlf_tile_size": "16",
         "nlf_multiple_of": "2"},
    )  # fmt: skip
    register(zoo, {"id": "tiny-fp32", "family": "unet", "file": path.name, "precision": "fp32", "sha256": sha256_of(path)})
    for precision in ("int8", "fp16"):
        copy = zoo / f"tiny-{precision}.onnx"
        shutil.copy(path, copy)
        register(
            zoo,
            {"id": f"tiny-{precision}", "family": "unet", "file": copy.name, "precision": precision,
             "sha256": sha256_of(copy), "variant_of": "tiny-fp32"},
        )  # fmt: skip
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
    monkeypatch.setenv("NLF_CACHE_DIR", str(tmp_path / "cache"))
    return zoo


def _model(model_id: str):
    return next(m for m in load_manifest() if m.id == model_id)


def test_auto_measures_once_per_machine_and_caches(variant_zoo: Path, tmp_path: Path) -> None:
    calls: list[str] = []

    def timer(model, device, threads):
        calls.append(model.precision)
        return {"fp32": 0.010, "int8": 0.006}[model.precision]

    cache = P.ChoiceCache(tmp_path / "cache")
    choice = P.choose(_model("tiny-fp32"), "auto", "cpu", 1, cache, timer)
    assert choice.model.id == "tiny-int8" and "measured here" in choice.reason
    assert sorted(calls) == ["fp32", "int8"]  # fp16 never on a CPU
    again = P.choose(_model("tiny-fp32"), "auto", "cpu", 1, cache, timer)
    assert again.model.id == "tiny-int8" and len(calls) == 2  # from the cache: not measured again
    # a profile copied from another machine: its key does not match this machine's, so it is measured again
    data = json.loads(cache.path.read_text())
    cache.path.write_text(json.dumps({"0000000000000000|" + key.split("|", 1)[1]: v for key, v in data.items()}))
    P.choose(_model("tiny-fp32"), "auto", "cpu", 1, cache, timer)
    assert len(calls) == 4
    # on a GPU fp16 is a candidate too
    gpu = P.choose(_model("tiny-fp32"), "auto", "cuda", 1, cache, lambda m, d, t: {"fp16": 1.0}.get(m.precision, 2.0))
    assert gpu.model.precision == "fp16"


def test_explicit_precisions_and_what_exists(variant_zoo: Path) -> None:
    assert P.choose(_model("tiny-fp32"), "int8").model.id == "tiny-int8"
    assert P.choose(_model("tiny-int8"), "fp32").model.id == "tiny-fp32"
    assert P.choose(_model("tiny-int8"), "auto").model.id == "tiny-int8"  # a variant asked for by id runs
    with pytest.raises(InputError, match="Unknown precision 'int4'"):
        P.choose(_model("tiny-fp32"), "int4")
    data = json.loads((variant_zoo / "manifest.json").read_text())
    data["models"] = [m for m in data["models"] if m["precision"] == "fp32"]
    (variant_zoo / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"has no int8 variant \(it has: fp32\)"):
        P.choose(_model("tiny-fp32"), "int8")


def test_a_corrupt_variant_falls_back_to_fp32_with_a_note(variant_zoo: Path, tmp_path: Path) -> None:
    (variant_zoo / "tiny-int8.onnx").write_bytes(b"not a model")
    out, dmsp = tmp_path / "out.tif", str(SAMPLE / "dmsp_F15_2005_sample.tif")
    result = fuse(FuseRequest(dmsp=dmsp, output=str(out), model="tiny-fp32", precision="int8"))
    assert out.exists() and result.tags["NLF_PRECISION"].startswith("fp32 (the int8 file failed its sha256 check)")
    assert any("tiny-int8.onnx" in note and "fp32" in note for note in result.notes)
    # auto never picks the broken file and says so, without caching the broken state
    auto = fuse(FuseRequest(dmsp=dmsp, output=str(out), model="tiny-fp32", overwrite=True))
    assert auto.tags["NLF_PRECISION"].startswith("fp32 (auto") and "skipped tiny-int8.onnx" in auto.tags["NLF_PRECISION"]


def test_the_default_follows_the_gap_class(variant_zoo: Path, tmp_path: Path) -> None:
    """The manifest's per-gap-class choice (make report's rule) picks the model per input; an unknown gap takes the
    overall default_with_reference; no reference, the zoo's default."""
    from nightlight_fusion_plugin.core.engine.models import default_model
    from nightlight_fusion_plugin.core.engine.zoo import gap_class

    assert [gap_class(g) for g in (None, 0, -1, 1.4, 2, -5, 6, 13)] == [None, "1", "1", "1", "2-5", "2-5", "6+", "6+"]
    manifest = json.loads((variant_zoo / "manifest.json").read_text())
    manifest["default_with_reference"] = {"model": "reference-change"}
    manifest["default_by_gap_class"] = {"1": {"model": "tiny-fp32"}, "6+": {"model": "baseline"}}
    (variant_zoo / "manifest.json").write_text(json.dumps(manifest))
    assert default_model(True, -1).id == "tiny-fp32"
    assert default_model(True, 10).id == "baseline"
    assert default_model(True, 3).id == "reference-change"  # no choice for 2-5 years: the overall one
    assert default_model(True, None).id == "reference-change"
    dmsp, reference = str(SAMPLE / "dmsp_F15_2005_sample.tif"), str(SAMPLE / "viirs_2015_reference_sample.tif")
    near = fuse(FuseRequest(dmsp=dmsp, viirs=reference, output=str(tmp_path / "a.tif"), reference_year=2006))
    far = fuse(FuseRequest(dmsp=dmsp, viirs=reference, output=str(tmp_path / "b.tif")))  # 2005 vs 2015 from the names
    assert (near.model, far.model) == ("tiny-fp32", "baseline")
