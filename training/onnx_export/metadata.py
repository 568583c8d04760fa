"""What an exported model says about itself: the ONNX metadata the engine reads (nlf_*), and the commit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import onnx

from nightlight_fusion_plugin.core.engine import transforms


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def add_metadata(path: Path, meta: dict[str, str]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


INFERENCE_TILE = 256  # engine tiles for tile-independent models: (256/240)^2 = 1.14x pixels computed, not 1.78x
INFERENCE_OVERLAP = 16


def model_metadata(state: dict, model_id: str, precision: str, tile: int, multiple: int) -> dict[str, str]:
    meta = state["meta"]
    family = meta["family"]
    schedule = dict(meta.get("schedule") or {})
    prediction = schedule.get("prediction_type", "velocity" if family == "flow_matching" else "")
    version = int(meta.get("condition_version") or 1)
    table = meta.get("model_table") or {}
    # A network without normalisation over the tile (models/unet.py norm="none") computes a pixel from its
    # receptive field only: the engine may run it on INFERENCE_TILE tiles with a small overlap (runtime.py).
    tile_free = table.get("norm") == "none" and family in ("unet", "diffusion", "flow_matching")
    larger = {"nlf_inference_tile": str(INFERENCE_TILE), "nlf_inference_overlap": str(INFERENCE_OVERLAP)} if tile_free else {}
    return {
        "nlf_family": family,
        "nlf_model_id": model_id,
        "nlf_precision": precision,
        "nlf_prediction_type": prediction,
        "nlf_schedule": json.dumps(schedule),
        "nlf_transforms": json.dumps(meta.get("transforms") or transforms.describe()),
        "nlf_input_channels": json.dumps(list(transforms.CONDITION_CHANNELS[version])),
        "nlf_condition_version": str(version),
        "nlf_target": str(meta.get("target") or "absolute"),
        "nlf_tile_size": str(tile),
        "nlf_multiple_of": str(multiple),
        "nlf_native_resolution": "15 arcsec (VIIRS DNB grid)",
        "nlf_training_data": json.dumps(meta.get("data") or {}),
        "nlf_version": f"{model_id} step {state.get('step')} commit {meta.get('git_commit', 'unknown')}",
        "nlf_config": json.dumps(table),
        **larger,
    }


def condition_of(meta: dict) -> tuple[int, str]:
    """(condition version, target) of a checkpoint's meta; absent = (1, 'absolute'), as in model_metadata."""
    return int(meta.get("condition_version") or 1), str(meta.get("target") or "absolute")
