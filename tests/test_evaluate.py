"""The evaluation harness runs models and baselines through the plugin's engine on held-out scenes."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    subprocess.run(
        [sys.executable, "-m", "training.simulate", "pairs", "--out", str(out), "--count", "2", "--size", "64", "--seed", "9000"],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return out


def evaluate(*args):
    done = subprocess.run(
        [sys.executable, "-m", "training.evaluate", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_baselines_are_scored_with_every_metric(scenes):
    for name in ("baseline", "persistence", "bicubic"):
        result = evaluate("--model", name, "--data", scenes)
        assert result["scenes"] == 2
        for key in ("psnr_log", "ssim_log", "rmse", "r2", "sum_of_lights_error", "seconds_per_megapixel"):
            assert key in result and result[key] == result[key]  # present, not NaN


def test_zoo_model_and_onnx_file_and_no_reference(scenes, smoke_zoo, tmp_path):
    import os

    env_zoo = {"NLF_MODEL_ZOO": str(smoke_zoo)}
    os.environ.update(env_zoo)
    try:
        by_id = evaluate(
            "--model", "diffusion-fp32", "--data", scenes, "--sampler", "ddim", "--steps", "2", "--out", tmp_path / "r.jsonl"
        )
        by_file = evaluate("--model", smoke_zoo / "diffusion-fp32.onnx", "--data", scenes, "--sampler", "ddim", "--steps", "2")
        alone = evaluate("--model", "unet-fp32", "--data", scenes, "--no-reference")
    finally:
        os.environ.pop("NLF_MODEL_ZOO")
    assert by_id["psnr_log"] == pytest.approx(by_file["psnr_log"])  # same model, same seeds, same engine
    assert alone["with_reference"] is False
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1


def test_a_named_zoo_model_is_scored_as_itself_never_the_faster_variant(use_zoo):
    """The plugin's automatic precision may run a root's int8 variant where it times faster; a score names a
    file, so the harness runs exactly the model named (CI once scored diffusion-int8 under diffusion-fp32)."""
    sys.path.insert(0, str(REPO))
    from nightlight_fusion_plugin.core.engine.precision import choose
    from nightlight_fusion_plugin.core.engine.zoo import load_manifest
    from training.evaluate import named_precision

    zoo = {m.id: m for m in load_manifest()}
    assert "diffusion-int8" in zoo and zoo["diffusion-int8"].variant_of == "diffusion-fp32"
    for model_id in ("diffusion-fp32", "diffusion-int8", "unet-fp32"):
        chosen = choose(zoo[model_id], named_precision(model_id), timer=lambda *a: 0.0).model
        assert chosen.id == model_id
    assert named_precision("reference-change") == "auto"
