"""The committed model zoo: manifest, files, cards, default, and `fuse` with every shipped model on the bundled
sample and on the real São Tomé clip (DMSP 1992, VIIRS 2014)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import rasterio
from conftest import REPO

from nightlight_fusion_plugin.core.engine.runtime import sha256_of
from nightlight_fusion_plugin.core.engine.zoo import ZOO_DIR, load_manifest

MODELS = load_manifest(ZOO_DIR)
pytestmark = pytest.mark.skipif(not MODELS, reason="no trained models in model_zoo/ yet")
IDS = [m.id for m in MODELS]


def cli(*args, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nightlight_fusion_plugin", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=check,
    )


def test_manifest_files_cards_and_variants():
    by_id = {m.id: m for m in MODELS}
    assert sum(m.default for m in MODELS) <= 1
    families = {m.family for m in MODELS}
    assert {"unet", "diffusion", "flow_matching"} <= families
    manifest = {e["id"]: e for e in json.loads((ZOO_DIR / "manifest.json").read_text())["models"]}
    for family in ("unet", "diffusion", "flow_matching"):
        assert "fp32" in {m.precision for m in MODELS if m.family == family}, family
    for m in MODELS:  # an int8 model ships only if it kept its fp32 model's quality on real imagery
        if m.precision == "int8":
            assert manifest[m.id]["real_imagery_int8_gate"]["passes"], m.id
    for m in MODELS:
        assert m.path.is_file(), m.file
        assert sha256_of(m.path) == m.sha256, m.id
        assert m.path.stat().st_size == m.size_bytes
        assert m.card_path and m.card_path.is_file(), m.id
        card = m.card_path.read_text()
        assert "python -m training.train" in card and "seed" in card and "Limits" in card
        if manifest[m.id].get("weights") == "fp16":  # stored in half precision for the zip, computed in float32
            assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(m.path)).graph.initializer)
            assert manifest[m.id]["weights_parity_max_abs"] < 2e-3 and "float16" in card
        if m.variant_of:
            assert by_id[m.variant_of].precision == "fp32" and by_id[m.variant_of].family == m.family
        if m.family in ("diffusion", "flow_matching"):
            assert m.speed_levels, f"{m.id} has no measured speed levels (run make report)"
            assert m.regression_model in by_id


def test_models_json_lists_the_zoo():
    listed = {m["id"]: m for m in json.loads(cli("models", "--json").stdout)}
    for m in MODELS:
        assert listed[m.id]["family"] == m.family and listed[m.id]["default"] == m.default


@pytest.mark.parametrize("model_id", IDS)
def test_fuse_the_sample_with_every_shipped_model(model_id, sample, tmp_path):
    out = tmp_path / "fused.tif"
    cli("fuse", "--dmsp", sample["dmsp"], "--viirs", sample["reference"], "--output", out, "--model", model_id, "--speed", 1)
    with rasterio.open(out) as src:
        data = src.read(1)
        assert src.tags().get("NLF_METHOD") == model_id
    # VIIRS background radiance may be slightly negative (sensor noise), as in the training truth
    assert np.isfinite(data).all() and data.min() > -5 and data.max() > 1


@pytest.mark.real_data
@pytest.mark.parametrize("model_id", IDS)
def test_fuse_sao_tome_with_every_shipped_model(model_id, real_data, tmp_path):
    out = tmp_path / "sao_tome_1992.tif"
    viirs = real_data / "sao_tome" / "viirs_dnb_monthly_2014_01.tif"
    dmsp = real_data / "sao_tome" / "dmsp_1992_stable_lights.tif"
    cli("fuse", "--dmsp", dmsp, "--viirs", viirs, "--output", out, "--model", model_id, "--speed", 1)
    with rasterio.open(out) as src, rasterio.open(viirs) as ref:
        assert src.crs == ref.crs and src.res == pytest.approx(ref.res)
        data = src.read(1)
    assert np.isnan(data).any() and np.isfinite(data).any()  # nodata outside the DMSP clip stays nodata
    assert np.nanmax(data) > 1.0


def test_fuse_defaults_to_the_recommended_model(sample, tmp_path):
    """Without --model: the manifest's default_with_reference when a reference is given, else its default."""
    payload = json.loads((ZOO_DIR / "manifest.json").read_text())
    default = next((m.id for m in MODELS if m.default), "baseline")
    with_reference = (payload.get("default_with_reference") or {}).get("model", default)
    for viirs, expected in ((sample["reference"], with_reference), (None, default)):
        out = tmp_path / f"fused_{expected}.tif"
        cli("fuse", "--dmsp", sample["dmsp"], *(["--viirs", viirs] if viirs else []), "--output", out)
        with rasterio.open(out) as src:
            assert src.tags().get("NLF_METHOD") == expected
