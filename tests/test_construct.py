"""Construct, then refine (issue #19): condition v3 (the traditional estimate and the signed gap as inputs), the
residual_traditional target, the estimate computed by core for the engine and for training alike, and a model
whose network outputs zero giving the traditional answer through the engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from nightlight_fusion_plugin.core.engine import transforms
from nightlight_fusion_plugin.core.engine.transforms import (
    GAP_SCALE_YEARS,
    TRADITIONAL_CHANNEL,
    apply_target,
    condition_stack_v,
    radiance_to_model,
)
from nightlight_fusion_plugin.core.methods.baseline import TraditionalFusion
from nightlight_fusion_plugin.core.methods.construct import scene_construct_of_arrays
from nightlight_fusion_plugin.core.methods.reference_change import ReferenceChangeFusion
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.raster.grids import upsample2_bilinear
from nightlight_fusion_plugin.core.sensor.calibration import default_curve
from nightlight_fusion_plugin.core.sensor.intercalibration import intercalibration_for
from training.models.base import ConfigError, from_residual, to_residual
from training.models.regression import RegressionConfig, RegressionUNet

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "nightlight_fusion_plugin" / "sample_data"
PIXEL_KM = (0.46, 0.46)


def _arrays(seed: int = 0, size: int = 48):
    rng = np.random.default_rng(seed)
    dn = np.clip(rng.gamma(0.6, 12.0, (size // 2, size // 2)), 0, 63).round().astype(np.float32)
    reference = rng.gamma(0.5, 6.0, (size, size)).astype(np.float32)
    reference[:3, :4] = np.nan
    return dn, upsample2_bilinear(dn), reference


def test_v3_stack_adds_the_estimate_and_the_gap() -> None:
    _, fine, reference = _arrays()
    intercal = intercalibration_for("F15", 2005)
    dnc = intercal.apply(fine)
    estimate = np.full(fine.shape, 3.0, np.float32)
    stack = condition_stack_v(dnc, reference, np.ones_like(dnc), 3, estimate, -7.0)
    assert stack.shape == (7, *fine.shape)
    assert np.array_equal(stack[:4], condition_stack_v(dnc, reference, np.ones_like(dnc), 2))
    assert np.allclose(stack[TRADITIONAL_CHANNEL], radiance_to_model(np.float32(3.0)))
    assert np.all(stack[5] == np.float32(-7.0 / GAP_SCALE_YEARS)) and np.all(stack[6] == 1)
    unknown = condition_stack_v(dnc, reference, np.ones_like(dnc), 3, estimate, None)
    assert not unknown[5:].any()  # unknown gap: both channels 0, the model's learned "unknown"
    no_reference = condition_stack_v(dnc, None, None, 3, estimate, 5.0)
    assert not no_reference[5:].any() and not no_reference[1:4].any()
    with pytest.raises(ValueError, match="traditional estimate"):
        condition_stack_v(dnc, reference, None, 3)


def test_residual_traditional_zero_output_is_the_traditional_estimate() -> None:
    _, fine, reference = _arrays()
    dnc = intercalibration_for("F15", 2005).apply(fine)
    estimate = np.random.default_rng(1).gamma(0.5, 4.0, fine.shape).astype(np.float32)
    condition = condition_stack_v(dnc, reference, np.ones_like(dnc), 3, estimate, 2.0)[None]
    zero = np.zeros((1, 1, *fine.shape), np.float32)
    assert np.array_equal(apply_target(zero, condition, "residual_traditional")[0, 0], condition[0, TRADITIONAL_CHANNEL])
    # training's torch inverse pair agrees with core
    target = torch.from_numpy(radiance_to_model(estimate * 1.5)[None, None])
    cond = torch.from_numpy(condition)
    residual = to_residual(target, cond, "residual_traditional")
    assert torch.allclose(from_residual(residual, cond, "residual_traditional"), target, atol=1e-6)
    core = apply_target(residual.numpy(), condition, "residual_traditional")
    assert np.allclose(core, target.numpy(), atol=1e-6)


def test_v3_goes_with_the_residual_traditional_target() -> None:
    from training.models import build_model

    for version, target in ((3, "residual_log"), (2, "residual_traditional"), (3, "absolute")):
        with pytest.raises(ConfigError, match="residual_traditional"):
            build_model({"family": "unet", "condition_version": version, "target": target})
    assert build_model({"family": "unet", "condition_version": 3, "target": "residual_traditional", "norm": "none"})


def test_scene_construct_is_reference_change_with_a_reference_and_the_baseline_without() -> None:
    coarse, fine, reference = _arrays()
    intercal = intercalibration_for("F15", 2005)
    construct = scene_construct_of_arrays(coarse, fine, reference, intercal, PIXEL_KM, 10.0)
    method = ReferenceChangeFusion(intercal, construct.dmsp_gain, construct.change_weight)
    method.traditional.curve = construct.curve
    full = (slice(None), slice(None))
    expected = method.predict(fine, reference, PIXEL_KM, full)
    assert np.array_equal(construct.estimate(fine, reference, PIXEL_KM), expected, equal_nan=True)
    assert construct.curve.source == "the training tile"  # fitted on the tile's own pairs
    # the prior at the gap: a reference a year away puts more of a level difference on the sensor than ten years
    near = scene_construct_of_arrays(coarse, fine, reference * 0.4, intercal, PIXEL_KM, 1.0)
    far = scene_construct_of_arrays(coarse, fine, reference * 0.4, intercal, PIXEL_KM, -10.0)  # the sign does not matter
    assert abs(np.log(near.dmsp_gain)) > abs(np.log(far.dmsp_gain)) > 0
    without = scene_construct_of_arrays(coarse, fine, None, intercal, PIXEL_KM, None)
    baseline = TraditionalFusion(intercal, default_curve()).predict(fine, None)
    assert np.array_equal(without.estimate(fine, None, PIXEL_KM), baseline)


def _export_v3_zero(tmp_path: Path, monkeypatch, zero: bool = True, inference_tile: int | None = None) -> str:
    """A tiny v3 UNet (deployment-friendly block) whose network outputs 0 (or random weights), in a one-model zoo
    (NLF_MODEL_ZOO); inference_tile: the metadata that lets the engine run it on larger tiles."""
    from training.export import add_metadata, export_onnx, sha256_of
    from training.onnx_export.zoo import register

    torch.manual_seed(0)  # the same weights in every export
    model = RegressionUNet(
        RegressionConfig(
            base_channels=8, channel_mult=(1, 2), condition_version=3, target="residual_traditional", norm="none",
            activation="relu",
        )
    )
    for module in model.modules():  # random residual branches too, so every channel and block matters
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.05)
    if zero:
        torch.nn.init.zeros_(model.net.out_conv.weight)
        torch.nn.init.zeros_(model.net.out_conv.bias)
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    path = zoo / "zero-v3.onnx"
    export_onnx(model.eval(), "unet", path, 16)
    add_metadata(
        path,
        {
            "nlf_family": "unet",
            "nlf_model_id": "zero-v3",
            "nlf_transforms": json.dumps(transforms.describe()),
            "nlf_input_channels": json.dumps(list(transforms.CONDITION_CHANNELS[3])),
            "nlf_condition_version": "3",
            "nlf_target": "residual_traditional",
            "nlf_tile_size": "16",
            "nlf_multiple_of": "2",
            **({"nlf_inference_tile": str(inference_tile), "nlf_inference_overlap": "4"} if inference_tile else {}),
        },
    )
    register(zoo, {"id": "zero-v3", "family": "unet", "file": path.name, "precision": "fp32", "sha256": sha256_of(path)})
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))
    return "zero-v3"


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, masked=True).filled(np.nan)


def test_engine_v3_zero_network_gives_the_traditional_answer(tmp_path: Path, monkeypatch) -> None:
    """Through the engine: a v3 model whose network outputs 0 fuses the sample to reference-change's own output
    (with a reference) and to the baseline's (without), away from the raster's edges, where the engine mirrors the
    inputs and reference-change reads nothing. The gap from the file names is tagged."""
    model = _export_v3_zero(tmp_path, monkeypatch)
    dmsp, reference = SAMPLE / "dmsp_F15_2005_sample.tif", SAMPLE / "viirs_2015_reference_sample.tif"
    for viirs, traditional in ((reference, "reference-change"), (None, "baseline")):
        out, expected = tmp_path / f"v3_{traditional}.tif", tmp_path / f"{traditional}.tif"
        result = fuse(FuseRequest(dmsp=str(dmsp), viirs=str(viirs) if viirs else None, output=str(out), model=model))
        fuse(FuseRequest(dmsp=str(dmsp), viirs=str(viirs) if viirs else None, output=str(expected), model=traditional))
        fused, truth = _read(out), _read(expected)
        inner = (slice(40, -40), slice(40, -40))
        clipped = np.clip(truth[inner], transforms.RADIANCE_MIN, transforms.RADIANCE_MAX)
        np.testing.assert_allclose(fused[inner], clipped, rtol=1e-4, atol=1e-4)
        if viirs:
            assert result.tags["NLF_GAP_INPUT_YEARS"] == "+10"
            assert result.tags["NLF_TRADITIONAL_INPUT"].startswith("reference-change")


def test_engine_v3_without_years_uses_the_unknown_gap_and_says_so(tmp_path: Path, monkeypatch) -> None:
    model = _export_v3_zero(tmp_path, monkeypatch)
    dmsp, reference = tmp_path / "dmsp.tif", tmp_path / "viirs.tif"
    shutil.copy(SAMPLE / "dmsp_F15_2005_sample.tif", dmsp)
    shutil.copy(SAMPLE / "viirs_2015_reference_sample.tif", reference)
    result = fuse(FuseRequest(dmsp=str(dmsp), viirs=str(reference), output=str(tmp_path / "o.tif"), model=model))
    assert result.tags["NLF_GAP_INPUT_YEARS"] == "unknown"
    assert any("unknown gap" in note for note in result.notes)
    known = fuse(
        FuseRequest(
            dmsp=str(dmsp), viirs=str(reference), output=str(tmp_path / "k.tif"), model=model, year=2005, reference_year=2012
        )
    )
    assert known.tags["NLF_GAP_INPUT_YEARS"] == "+7"


@pytest.mark.real_data
def test_v3_training_tiles_carry_the_estimate_and_the_gap(real_data: Path) -> None:
    from training.data import build_dataset

    table = {
        "kind": "refaware", "condition_version": 3, "real_structure_fraction": 0.5, "semi_real_fraction": 0.0,
        "tile": 32, "length": 8, "val_length": 4, "seed": 0, "reference_dropout": 0.0, "gap_unknown": 0.0,
        "reference_gaps": [[3, 3]], "reference_before": 0.0, "real_dir": str(real_data),
    }  # fmt: skip
    dataset = build_dataset(table, "train")
    gaps = []
    for i in range(len(dataset)):
        condition = dataset[i]["condition"].numpy()
        assert condition.shape == (7, 32, 32) and np.isfinite(condition).all()
        assert np.all(condition[6] == 1)  # a reference, its gap known
        gaps.append(float(condition[5, 0, 0]) * GAP_SCALE_YEARS)
        assert condition[TRADITIONAL_CHANNEL].std() > 0 or condition[0].std() == 0
    # synthetic tiles: the reference 3 years after the DMSP; real Sudan pairs: one year either way
    assert {round(g) for g in gaps} <= {3, 1, -1} and 3 in {round(g) for g in gaps}


@pytest.mark.parametrize("inference_tile", [None, 48])
def test_v3_blocks_are_byte_identical_to_the_single_run(tmp_path: Path, monkeypatch, inference_tile) -> None:
    """A v3 model with random weights, with a reference and without, native tiles and larger inference tiles:
    fuse() and 2-D blocks in this process write the same band and the same v3 tags."""
    from nightlight_fusion_plugin.core.pipeline.distributed import ClusterOptions, fuse_blocks

    model = _export_v3_zero(tmp_path, monkeypatch, zero=False, inference_tile=inference_tile)
    dmsp, reference = SAMPLE / "dmsp_F15_2005_sample.tif", SAMPLE / "viirs_2015_reference_sample.tif"
    for viirs in (reference, None):
        results, bands = [], []
        for name, run in (("single", fuse), ("blocks", lambda r: fuse_blocks(r, ClusterOptions(block_rows=64, block_cols=96)))):
            out = tmp_path / f"{name}_{viirs is None}.tif"
            results.append(run(FuseRequest(dmsp=str(dmsp), viirs=str(viirs) if viirs else None, output=str(out), model=model)))
            bands.append(_read(out))
        assert np.isfinite(bands[0]).mean() > 0.9
        np.testing.assert_array_equal(bands[0], bands[1])
        for key in ("NLF_TRADITIONAL_INPUT", "NLF_GAP_INPUT_YEARS"):
            assert results[0].tags.get(key) == results[1].tags.get(key)


def test_larger_inference_tiles_recompute_less_and_agree_inside(tmp_path: Path, monkeypatch) -> None:
    """A tile-independent model run on 48-px tiles (overlap 4) instead of its native 16 px (overlap 4): the same
    map up to the blending at tile seams, where padding differs."""
    dmsp = SAMPLE / "dmsp_F15_2005_sample.tif"
    maps = []
    for tile in (None, 48):
        (tmp_path / str(tile)).mkdir()
        model = _export_v3_zero(tmp_path / str(tile), monkeypatch, zero=False, inference_tile=tile)
        out = tmp_path / f"t{tile}.tif"
        fuse(FuseRequest(dmsp=str(dmsp), output=str(out), model=model))
        maps.append(_read(out))
    both = np.isfinite(maps[0]) & np.isfinite(maps[1])
    close = np.isclose(maps[0][both], maps[1][both], rtol=0.01, atol=0.01)
    # the same network on the same inputs; pixels near the native 16-px tiles' seams (every 12 px) differ: 84 %
    # agree within 1 % here
    assert close.mean() > 0.75
