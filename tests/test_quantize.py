"""int8 export: calibration tiles that span the radiance range from training regions only, and a recorded
per-node sensitivity sweep whose most damaging nodes stay fp32 (issue #20)."""

import json
from pathlib import Path

import numpy as np

from nightlight_fusion_plugin.core.engine.transforms import radiance_from_model


def test_calibration_tiles_span_the_mix_and_add_the_brightest():
    from training.onnx_export.quantize import BRIGHT_SHARE, calibration_tiles

    meta = {"data": {"kind": "synthetic", "seed": 0, "condition_version": 3, "reference_gaps": [[0, 20]]}}
    items, description = calibration_tiles(meta, 16, 16, seed=3)
    assert len(items) == 16 and items[0]["condition"].shape == (7, 16, 16)
    peaks = [float(radiance_from_model(np.nanmax(item["target"].numpy()))) for item in items]
    bright = int(round(16 * BRIGHT_SHARE))
    # the brightest extra draws close the list and are at least as bright as the median evenly drawn tile
    assert min(peaks[-bright:]) >= np.median(peaks[:-bright])
    assert "16 tiles of 16²" in description and "no real-temporal hold-out" in description
    again, _ = calibration_tiles(meta, 16, 16, seed=3)
    assert all(a["condition"].equal(b["condition"]) for a, b in zip(items, again))  # named data: reproducible


def test_the_int8_variant_records_its_calibration_and_sweep(smoke_zoo: Path):
    manifest = json.loads((smoke_zoo / "manifest.json").read_text())
    int8 = next(m for m in manifest["models"] if m["precision"] == "int8")
    sweep = int8["sensitivity_mse"]
    assert sweep and list(sweep.values()) == sorted(sweep.values(), reverse=True)
    kept = int8["nodes_kept_fp32"]
    assert kept == list(sweep)[: len(kept)] and len(kept) == 2  # the two most damaging nodes, by the sweep
    assert "tiles of" in int8["calibration"]
    card = (smoke_zoo / int8["card"]).read_text()
    assert "int8 calibration" in card and kept[0] in card
