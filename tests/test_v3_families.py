"""The gap-aware diffusion and flow-matching configs (condition v3, residual_traditional, norm-free blocks) train,
export beside a v3 UNet (their staged-sampling partner) and fuse through the plugin's engine (issues #19, #20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import tomllib

from training import checkpoint as ckpt
from training import train

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "training" / "configs"
SAMPLE = REPO / "nightlight_fusion_plugin" / "sample_data"
SHRINK = (
    ("base_channels = 32", "base_channels = 8"),
    ("channel_mult = [1, 2, 2, 2]", "channel_mult = [1, 2]"),
    ("sample_steps = 25", "sample_steps = 3"),
    ("sample_steps = 20", "sample_steps = 3"),
    ("tile = 64", "tile = 16"),
    ("length = 200000", "length = 64"),
    ("val_length = 128", "val_length = 4"),
    ("batch_size = 16", "batch_size = 4"),
    ("val_every = 1000", "val_every = 10"),
    ("checkpoint_every = 250", "checkpoint_every = 10"),
    ("warmup_steps = 300", "warmup_steps = 2"),
    ("num_workers = 1", "num_workers = 0"),
)


def shrunk(name: str, real_data: Path) -> str:
    text = (CONFIGS / f"{name}.toml").read_text()
    for old, new in SHRINK:
        text = text.replace(old, new)
    assert "base_channels = 8" in text and "tile = 16" in text and "length = 64" in text, f"{name}.toml: shrink failed"
    return text.replace("seed = 0\nreference_dropout", f'seed = 0\nreal_dir = "{real_data}"\nreference_dropout')


@pytest.mark.parametrize("family", ["diffusion", "flow_matching"])
def test_v3_config_trains_exports_and_fuses_staged_from_the_v3_unet(family, real_data, tmp_path, monkeypatch):
    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
    from training.export import export

    config = tomllib.loads((CONFIGS / f"{family}_v3.toml").read_text())
    assert config["model"]["norm"] == "none" and config["model"]["condition_version"] == 3
    assert config["model"]["target"] == "residual_traditional" and config["data"]["condition_version"] == 3
    assert "kenya" in config["data"]["real_regions"] and config["train"]["steps"] >= 20000
    runs = {}
    for name in ("unet_v3_stage2", f"{family}_v3"):
        path = tmp_path / f"{name}.toml"
        path.write_text(shrunk(name, real_data))
        runs[name] = tmp_path / name
        assert train.main(["--config", str(path), "--max-steps", "4", "--out", str(runs[name])]) == 0
        assert ckpt.load(runs[name])["meta"]["condition_version"] == 3
    zoo = tmp_path / "zoo"
    export(str(runs["unet_v3_stage2"] / "checkpoint.pt"), zoo, quantize="none", model_id="unet_v3", tile=16)
    entries = export(str(runs[f"{family}_v3"] / "checkpoint.pt"), zoo, quantize="none", model_id="gen_v3", tile=16)
    from nightlight_fusion_plugin.core.engine.zoo import load_manifest
    from nightlight_fusion_plugin.core.methods.generative import BATCH_PIXELS, GenerativeFusion, sampling_plan

    unet = {m.id: m for m in load_manifest(zoo)}["unet_v3-fp32"]
    engine = GenerativeFusion(unet, sampling_plan(unet, None, None, None, None, None), "cpu", 1, 1, 8)
    # norm-free nets run on 256² tiles; a batch is capped at BATCH_PIXELS (two of them), not eight
    assert engine.tile == 256 and engine.batch_size == BATCH_PIXELS // 256**2 == 2
    assert entries[0]["regression_model"] == "unet_v3-fp32"  # the v3 UNet, same condition and target
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
    sampler = {"diffusion": "ddim", "flow_matching": "flow_euler"}[family]
    for i, strength in enumerate((None, 0.5)):
        out = tmp_path / f"fused_{i}.tif"
        result = fuse(
            FuseRequest(
                dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"),
                viirs=str(SAMPLE / "viirs_2015_reference_sample.tif"),
                output=str(out),
                model="gen_v3-fp32",
                steps=3,
                sampler=sampler,
                strength=strength,
            )
        )
        with rasterio.open(out) as src:
            band, tags = src.read(1, masked=True), src.tags()
        assert band.count() > 0 and np.isfinite(band.compressed()).all()
        assert "NLF_TRADITIONAL_INPUT" in tags and float(tags["NLF_GAP_INPUT_YEARS"]) == pytest.approx(10.0)
        assert result.output == str(out)
