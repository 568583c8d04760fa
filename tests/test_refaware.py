"""Reference-aware groundwork (issue #12): condition v2 (the reference simulated to DMSP as a 4th channel), the
residual target (predict the change relative to the reference), real-structure training pairs outside the
real-temporal hold-out, and a 20-step smoke run of training/configs/unet_refaware.toml through export and the
engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import tomllib
import torch

from nightlight_fusion_plugin.core.engine.transforms import (
    apply_target,
    condition_stack,
    condition_stack_v,
    condition_version,
    dmsp_to_model,
    model_target,
    radiance_to_model,
    reference_dmsp,
)
from nightlight_fusion_plugin.core.sensor.intercalibration import intercalibration_for
from training import checkpoint as ckpt
from training import train
from training.data import build_dataset
from training.data.holdout import REAL_TEMPORAL_HOLDOUT, overlaps_holdout
from training.models.regression import RegressionConfig, RegressionUNet

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "training" / "configs" / "unet_refaware.toml"
SAMPLE = REPO / "nightlight_fusion_plugin" / "sample_data"


def _inputs(seed: int = 0, size: int = 24):
    rng = np.random.default_rng(seed)
    dnc = rng.uniform(0, 63, (size, size)).astype(np.float32)
    reference = rng.gamma(0.5, 5.0, (size, size)).astype(np.float32)
    reference[:4, :5] = np.nan  # a hole in the reference
    return dnc, reference


def test_condition_v1_is_the_old_stack_byte_for_byte() -> None:
    dnc, reference = _inputs()
    for ref in (reference, None):
        old = condition_stack(dnc, ref)
        new = condition_stack_v(dnc, ref, None if ref is None else np.ones_like(dnc), 1)
        assert new.dtype == old.dtype and new.tobytes() == old.tobytes()
    assert condition_version({}) == 1 and condition_version({"nlf_condition_version": "2"}) == 2
    assert model_target({}) == "absolute" and model_target({"nlf_target": "residual_log"}) == "residual_log"
    with pytest.raises(ValueError):
        condition_version({"nlf_condition_version": "4"})  # a version this plugin does not know


def test_condition_v2_channel_is_the_reference_simulated_to_dmsp() -> None:
    dnc, reference = _inputs()
    intercal = intercalibration_for("F15", 2005)
    simulated = reference_dmsp(reference, (0.46, 0.46), intercal)
    stack = condition_stack_v(dnc, reference, simulated, 2)
    assert stack.shape == (4, 24, 24)
    assert np.array_equal(stack[:3], condition_stack(dnc, reference))
    mask = stack[2] > 0
    assert np.all(stack[3][~mask] == 0)
    assert np.allclose(stack[3][mask], dmsp_to_model(simulated)[mask])
    # no reference: channel 4 is 0, like the reference channel and its mask
    empty = condition_stack_v(dnc, None, None, 2)
    assert np.all(empty[1:] == 0)
    # a lit reference simulates to lit DMSP, a dark one to dark
    assert reference_dmsp(np.full((40, 40), 50.0, np.float32), (0.46, 0.46), intercal).mean() > 20
    assert reference_dmsp(np.zeros((40, 40), np.float32), (0.46, 0.46), intercal).max() == 0


def test_residual_target_zero_output_gives_exactly_the_reference() -> None:
    """'No change' is the easy answer: with the residual target an all-zero network output is the reference
    (in model space) wherever the reference is present, and the plain (zero) prediction where it is absent."""
    dnc, reference = _inputs()
    condition = condition_stack_v(dnc, reference, reference_dmsp(reference, (0.46, 0.46), intercalibration_for("F15", 2005)), 2)
    mask = condition[2] > 0
    zero = np.zeros((1, 1, 24, 24), np.float32)
    out = apply_target(zero, condition[None], "residual_log")[0, 0]
    assert np.array_equal(out[mask], radiance_to_model(reference)[mask])
    assert np.all(out[~mask] == 0)
    assert np.array_equal(apply_target(zero, condition[None], "absolute"), zero)

    model = RegressionUNet(RegressionConfig(base_channels=8, channel_mult=(1, 2), condition_version=2, target="residual_log"))
    torch.nn.init.zeros_(model.net.out_conv.weight)
    torch.nn.init.zeros_(model.net.out_conv.bias)
    cond = torch.from_numpy(condition[None])
    assert torch.count_nonzero(model(cond)) == 0
    sampled = model.sample(cond)[0, 0].numpy()
    assert np.array_equal(sampled[mask], radiance_to_model(reference)[mask])
    # the loss of "nothing changed" against a target equal to the reference is exactly 0
    target = torch.from_numpy(np.where(mask, radiance_to_model(np.nan_to_num(reference)), 0.0)[None, None].astype(np.float32))
    loss, _ = model.loss({"condition": cond, "target": target, "valid": torch.from_numpy(mask[None, None].astype(np.float32))})
    assert float(loss) == 0.0
    with pytest.raises(ValueError, match="channels"):
        model(cond[:, :3])


def test_real_structure_tiles_never_touch_the_holdout(real_data: Path) -> None:
    from training.data.real_structure import RealStructurePairs, sudan_tiles, window_bounds

    if not (real_data / "sudan_blackmarble").is_dir():
        pytest.skip("Sudan Black Marble tiles not found")
    tiles = sudan_tiles(real_data)
    assert "20N30N_30E40E" not in tiles  # the hold-out tile as a whole
    assert "20N30N_20E30E" in tiles  # holds libya_flares in a corner: refused window by window
    dataset = RealStructurePairs(length=8, tile=16, real_dir=real_data)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        key, row, col, bounds = dataset.position(rng)
        assert overlaps_holdout(bounds) is None
        assert key != "20N30N_30E40E"
    # a context window touching the Libyan flares is what position() refuses
    with rasterio.open(tiles["20N30N_20E30E"][2023]) as src:
        assert overlaps_holdout(window_bounds(src.transform, 0, 0, 80)) == "libya_flares"
    assert set(REAL_TEMPORAL_HOLDOUT) >= {"sudan_tile_20N30N_30E40E", "libya_flares"}
    item = dataset[0]
    assert item["condition"].shape == (4, 16, 16) and item["target"].shape == (1, 16, 16)
    assert item is not None and dataset[0]["condition"].equal(item["condition"])  # item i is always the same tile


def test_kenya_pairs_span_one_to_three_years_both_ways_outside_nairobi(real_data: Path) -> None:
    from training.data.real_structure import RealStructurePairs

    if not (real_data / "kenya_blackmarble").is_dir():
        pytest.skip("Kenya Black Marble annual composites not found")
    dataset = RealStructurePairs(length=8, tile=16, real_dir=real_data, regions=("sudan", "kenya"), condition_version=3)
    assert sorted(dataset.tiles["kenya"]) == [2020, 2021, 2022, 2023] and len(dataset.keys) >= 4
    rng = np.random.default_rng(1)
    gaps = set()
    for _ in range(400):
        target, reference = dataset.years("kenya", rng)
        assert target != reference
        gaps.add(reference - target)
        key, row, col, bounds = dataset.position(rng)
        assert overlaps_holdout(bounds) is None  # never Nairobi (kenya_nairobi), nor Sudan's hold-outs
    assert gaps == {-3, -2, -1, 1, 2, 3}
    # Sudan alone draws exactly what it always drew (one draw for a two-year source)
    sudan = RealStructurePairs(length=8, tile=16, real_dir=real_data)
    both_rng, alone_rng = np.random.default_rng(5), np.random.default_rng(5)
    assert [dataset.years("20N30N_20E30E", both_rng) for _ in range(20)] == [
        sudan.years("20N30N_20E30E", alone_rng) for _ in range(20)
    ]
    assert dataset[3]["condition"].shape == (7, 16, 16)
    with pytest.raises(ValueError, match="real_regions"):
        RealStructurePairs(length=1, real_dir=real_data, regions=("mumbai",))


def test_nigeria_gives_reference_free_tiles_outside_lagos(real_data: Path) -> None:
    from training.data.real_structure import RealStructurePairs

    if not (real_data / "nigeria_blackmarble").is_dir():
        pytest.skip("Nigeria Black Marble annual composite not found")
    dataset = RealStructurePairs(length=40, tile=16, real_dir=real_data, regions=("nigeria",), condition_version=3)
    rng = np.random.default_rng(2)
    assert dataset.years("nigeria", rng) == (2023, None)
    for _ in range(300):
        assert overlaps_holdout(dataset.position(rng)[3]) is None  # never Lagos and the western delta
    for i in range(3):
        condition = dataset[i]["condition"].numpy()
        assert condition.shape == (7, 16, 16)
        assert not condition[2].any()  # the reference mask: no reference
        assert condition[6].max() == 0.0  # the gap is unknown


def test_refaware_dataset_mixes_real_semi_real_and_synthetic(real_data: Path) -> None:
    config = tomllib.loads(CONFIG.read_text())["data"]
    dataset = build_dataset({**config, "tile": 16, "length": 20, "real_dir": str(real_data)}, "train")
    sizes = [len(d) for d in dataset.datasets]
    assert sum(sizes) == 20 and len(sizes) == 3
    for i in (0, 9, 19):
        assert dataset[i]["condition"].shape == (4, 16, 16)
    v1 = build_dataset({"kind": "synthetic", "tile": 16, "length": 2}, "train")
    assert v1[0]["condition"].shape == (3, 16, 16)


def test_unet_refaware_smoke_train_export_fuse(real_data: Path, tmp_path: Path) -> None:
    """20 steps of unet_refaware.toml (tiny), exported to ONNX, and the bundled sample fused with it."""
    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
    from training.evaluate import model_zoo_for

    text = CONFIG.read_text()
    config = tomllib.loads(text)
    assert config["model"]["condition_version"] == 2 and config["model"]["target"] == "residual_log"
    assert config["data"]["kind"] == "refaware" and config["data"]["condition_version"] == 2
    small = (
        text.replace("base_channels = 32", "base_channels = 8")
        .replace("channel_mult = [1, 2, 2, 2]", "channel_mult = [1, 2]")
        .replace("tile = 64", "tile = 16")
        .replace("length = 100000", "length = 64")
        .replace("val_length = 64", "val_length = 4")
        .replace("batch_size = 16", "batch_size = 4")
        .replace("val_every = 1000", "val_every = 10")
        .replace("checkpoint_every = 250", "checkpoint_every = 10")
        .replace("warmup_steps = 100", "warmup_steps = 2")
        .replace('init_from = "runs/unet_refaware_stage1/checkpoint.pt"\n', "")  # a tiny net: random init
        .replace("num_workers = 1", "num_workers = 0")
        .replace("seed = 0\nreference_dropout", f'seed = 0\nreal_dir = "{real_data}"\nreference_dropout')
    )
    path = tmp_path / "refaware_smoke.toml"
    path.write_text(small)
    out = tmp_path / "run"
    assert train.main(["--config", str(path), "--max-steps", "20", "--out", str(out)]) == 0
    state = ckpt.load(out)
    assert state["step"] == 20
    assert state["meta"]["condition_version"] == 2 and state["meta"]["target"] == "residual_log"

    with model_zoo_for(str(out / "checkpoint.pt")) as model_id:
        import os

        zoo = Path(os.environ["NLF_MODEL_ZOO"])
        onnx_path = next(zoo.glob("*.onnx"))
        props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
        assert props["nlf_condition_version"] == "2" and props["nlf_target"] == "residual_log"
        assert props["nlf_input_channels"] == '["dmsp", "reference", "reference_mask", "reference_dmsp"]'
        for viirs in (SAMPLE / "viirs_2015_reference_sample.tif", None):
            result = tmp_path / f"fused_{viirs is not None}.tif"
            fuse(
                FuseRequest(
                    dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"),
                    viirs=None if viirs is None else str(viirs),
                    output=str(result),
                    overwrite=True,
                    model=model_id,
                )
            )
            with rasterio.open(result) as src:
                band = src.read(1, masked=True)
                assert band.count() > 0 and np.isfinite(band.compressed()).all()


def assert_fused_is_the_reference(fused_path: Path, reference: Path) -> None:
    """The fused raster equals the reference (read on its grid, clipped to the model's radiance range) wherever
    both have values, over at least half the area."""
    from nightlight_fusion_plugin.core.engine import transforms
    from nightlight_fusion_plugin.core.raster.grids import Grid
    from training.evaluate import read_on

    with rasterio.open(fused_path) as src:
        grid = Grid(src.crs, src.transform, src.width, src.height)
        fused = src.read(1, masked=True).filled(np.nan)
    expected = read_on(str(reference), grid, rasterio.enums.Resampling.nearest)
    both = np.isfinite(fused) & np.isfinite(expected)
    assert both.mean() > 0.5
    clipped = np.clip(expected[both], transforms.RADIANCE_MIN, transforms.RADIANCE_MAX)
    np.testing.assert_allclose(fused[both], clipped, rtol=1e-4, atol=1e-4)


def test_engine_residual_zero_network_returns_the_reference(tmp_path: Path, monkeypatch) -> None:
    """Through the engine: a v2 residual model whose network outputs 0 everywhere fuses the bundled sample to the
    reference itself wherever the reference (and the DMSP) is present."""
    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

    _export_v2_residual(tmp_path, monkeypatch, zero=True)
    reference = SAMPLE / "viirs_2015_reference_sample.tif"
    out = tmp_path / "fused.tif"
    fuse(FuseRequest(dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"), viirs=str(reference), output=str(out), model="zero-residual"))
    assert_fused_is_the_reference(out, reference)


def test_block_runner_builds_the_v2_condition_like_the_engine(tmp_path: Path, monkeypatch) -> None:
    """A v2 residual model with random weights (so the 4th channel matters): fuse() and the block runner
    (core/distributed.py, in-process blocks of rows) write the same band, bit for bit."""
    from nightlight_fusion_plugin.core.pipeline.distributed import ClusterOptions, fuse_blocks
    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

    _export_v2_residual(tmp_path, monkeypatch, zero=False)
    bands = []
    for name, run in (("single", fuse), ("blocks", lambda r: fuse_blocks(r, ClusterOptions(block_rows=64)))):
        out = tmp_path / f"{name}.tif"
        run(
            FuseRequest(
                dmsp=str(SAMPLE / "dmsp_F15_2005_sample.tif"),
                viirs=str(SAMPLE / "viirs_2015_reference_sample.tif"),
                output=str(out),
                model="zero-residual",
            )
        )
        with rasterio.open(out) as src:
            bands.append(src.read(1))
    assert np.isfinite(bands[0]).any()
    np.testing.assert_array_equal(bands[0], bands[1])


def _export_v2_residual(tmp_path: Path, monkeypatch, zero: bool) -> None:
    """A tiny v2 residual UNet exported to a one-model zoo (NLF_MODEL_ZOO), id 'zero-residual'."""
    import json

    from nightlight_fusion_plugin.core.engine import transforms
    from training.export import add_metadata, export_onnx, register, sha256_of

    torch.manual_seed(0)
    model = RegressionUNet(RegressionConfig(base_channels=8, channel_mult=(1, 2), condition_version=2, target="residual_log"))
    if zero:
        torch.nn.init.zeros_(model.net.out_conv.weight)
        torch.nn.init.zeros_(model.net.out_conv.bias)
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    path = zoo / "zero-residual.onnx"
    export_onnx(model.eval(), "unet", path, 16)
    add_metadata(
        path,
        {
            "nlf_family": "unet",
            "nlf_model_id": "zero-residual",
            "nlf_transforms": json.dumps(transforms.describe()),
            "nlf_input_channels": json.dumps(list(transforms.CONDITION_CHANNELS[2])),
            "nlf_condition_version": "2",
            "nlf_target": "residual_log",
            "nlf_tile_size": "16",
            "nlf_multiple_of": "2",
        },
    )
    register(zoo, {"id": "zero-residual", "family": "unet", "file": path.name, "precision": "fp32", "sha256": sha256_of(path)})
    monkeypatch.setenv("NLF_MODEL_ZOO", str(zoo))

