"""The evaluation harness: any model (zoo id, ONNX file or training checkpoint) and the baselines, run through
the plugin's own engine on held-out scenes, scored with core.metrics.

python -m training.evaluate --model CKPT_OR_ONNX_OR_ID --data DIR [--sampler S --steps N --ensemble K]
                            [--speed L] [--no-reference] [--out results.json]

DIR holds scenes written by `python -m training.simulate pairs` (synthetic test set, robustness hold-out)
or `python -m training.simulate greece` (semi-real Greece hold-out). Baselines are models too:
`baseline` (intercalibration + calibration), `persistence` (the reference as the prediction) and `bicubic`
(bicubic-upsampled DMSP through the same calibration). Metrics are averaged over scenes; time is the
engine's wall time per megapixel on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.raster.grids import AlignedReader, Grid, inspect_raster
from nightlight_fusion_plugin.core.report.metrics import (
    all_metrics,
    bright_ssim_log,
    high_frequency_power,
    pooled_metrics,
    scene_sum_of_lights_error,
)

BASELINES = ("baseline", "persistence", "bicubic", "reference-change")


def read_on(path: str, grid: Grid, resampling: Resampling = Resampling.bilinear) -> np.ndarray:
    with AlignedReader(inspect_raster(path, "raster"), grid, resampling) as reader:
        return reader.read(Window(0, 0, grid.width, grid.height))


@contextlib.contextmanager
def model_zoo_for(model: str):
    """Yield a model id usable by the engine: zoo ids as they are; an ONNX file or a checkpoint through a
    temporary one-model zoo (checkpoints are exported to fp32 ONNX first, so the engine is what is scored)."""
    path = Path(model)
    if model in BASELINES or not path.exists():
        yield model
        return
    previous = os.environ.get("NLF_MODEL_ZOO")
    with tempfile.TemporaryDirectory() as tmp:
        zoo = Path(tmp)
        if path.suffix == ".onnx":
            import onnxruntime as ort

            from .export import register, sha256_of

            family = (
                ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                .get_modelmeta()
                .custom_metadata_map["nlf_family"]
            )
            model_id = path.stem
            register(
                zoo,
                {
                    "id": model_id,
                    "family": family,
                    "file": str(path.resolve()),
                    "precision": "unknown",
                    "sha256": sha256_of(path),
                },
            )
        else:
            from .export import export

            model_id = export(str(path), zoo, quantize="none", model_id="evaluated")[0]["id"]
        os.environ["NLF_MODEL_ZOO"] = str(zoo)
        try:
            yield model_id
        finally:
            if previous is None:
                os.environ.pop("NLF_MODEL_ZOO", None)
            else:
                os.environ["NLF_MODEL_ZOO"] = previous


def named_precision(model_id: str) -> str:
    """The precision that runs exactly the model named: a score belongs to that file, never to the variant the
    plugin's automatic choice would time as faster on this machine (fp32 root -> fp32, int8 variant -> int8)."""
    from nightlight_fusion_plugin.core.engine.precision import PRECISIONS
    from nightlight_fusion_plugin.core.engine.zoo import load_manifest

    if model_id in BASELINES:
        return "auto"
    named = next((m for m in load_manifest() if m.id == model_id), None)
    return named.precision if named is not None and named.precision in PRECISIONS else "auto"


def predict_scene(
    model_id: str,
    files: dict[str, str],
    scene: dict[str, Any],
    grid: Grid,
    tmp: Path,
    with_reference: bool = True,
    seed: int = 0,
    **options: Any,
) -> np.ndarray:
    """One scene's prediction on `grid` by the engine (or the persistence baseline). options: sampler, steps,
    speed, ensemble, strength (FuseRequest fields)."""
    reference = files["viirs_reference"] if with_reference else None
    if model_id == "persistence":
        if reference is None:
            raise ValueError("persistence needs the reference: drop --no-reference")
        return read_on(reference, grid, Resampling.nearest)
    out = tmp / "prediction.tif"
    options.setdefault("precision", named_precision(model_id))
    fuse(
        FuseRequest(
            dmsp=files["dmsp"],
            viirs=reference,
            output=str(out),
            overwrite=True,
            grid_like=files["viirs_truth"],
            model="baseline" if model_id == "bicubic" else model_id,
            seed=seed + scene["index"],
            dmsp_resampling="cubic" if model_id == "bicubic" else "bilinear",
            satellite=scene.get("satellite"),
            year=scene.get("year"),
            # The scene's own dates: simulated DMSP carries a satellite-year for its sensor, not the truth's year
            # (real-temporal sets), so the gap to the reference is given when the set records it.
            reference_year=scene.get("reference_year") if with_reference else None,
            reference_gap_years=scene.get("signed_gap_years", scene.get("gap_years")) if with_reference else None,
            **options,
        )
    )
    return read_on(str(out), grid, Resampling.nearest)


def pooled_by_group(predictions: list[np.ndarray], truths: list[np.ndarray], groups: list[Any]) -> dict[str, dict]:
    """`pooled_metrics` over the pixels of every scene of each group (scenes of no group left out), with the
    group's scene count: {group: {pixels, scenes, psnr_log, r2, sum_of_lights_error,
    scene_sum_of_lights_error, bright_*}}."""
    out = {}
    for group in sorted({str(g) for g in groups if g is not None}):
        chosen = [i for i, g in enumerate(groups) if g is not None and str(g) == group]
        metrics = pooled_metrics(np.concatenate([predictions[i] for i in chosen]), np.concatenate([truths[i] for i in chosen]))
        out[group] = {"scenes": len(chosen), **{k: (int(v) if k == "pixels" else float(v)) for k, v in metrics.items()}}
        out[group]["scene_sum_of_lights_error"] = scene_sum_of_lights_error(
            [predictions[i] for i in chosen], [truths[i] for i in chosen]
        )
    return out


def pooled_detail(detail: list[tuple[float, float, float, int]]) -> dict[str, float]:
    """The detail metric of a set: high-frequency power summed over its scenes (prediction over truth: 1 keeps the
    truth's fine detail, < 1 blurs) and SSIM over bright cores weighted by each scene's pixels."""
    hf_prediction, hf_truth = sum(d[0] for d in detail), sum(d[1] for d in detail)
    weighted = [(d[2], d[3]) for d in detail if np.isfinite(d[2])]
    weight = sum(w for _, w in weighted)
    return {
        "set_high_frequency_ratio": hf_prediction / hf_truth if hf_truth > 0 else float("nan"),
        "set_bright_ssim_log": sum(v * w for v, w in weighted) / weight if weight else float("nan"),
    }


def evaluate(
    model: str,
    data_dir: Path,
    sampler: str | None = None,
    steps: int | None = None,
    speed: int | None = None,
    ensemble: int = 1,
    with_reference: bool = True,
    seed: int = 0,
    limit: int | None = None,
    strength: float | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    scenes = manifest["scenes"][:limit] if limit else manifest["scenes"]
    rows, seconds, megapixels = [], 0.0, 0.0
    pooled_prediction, pooled_truth, pooled_region = [], [], []
    detail: list[tuple[float, float, float, int]] = []  # per scene: HF power (prediction, truth), bright SSIM, pixels
    extra = {} if temperature is None else {"temperature": temperature}  # else the engine's default (0.8)
    with model_zoo_for(model) as model_id, tempfile.TemporaryDirectory() as tmp:
        for scene in scenes:
            files = {k: str(data_dir / v) for k, v in scene["files"].items()}
            truth_info = inspect_raster(files["viirs_truth"], "truth")
            grid = Grid(truth_info.crs, truth_info.transform, truth_info.width, truth_info.height)
            truth = read_on(files["viirs_truth"], grid, Resampling.nearest)
            saturated = read_on(files["dmsp"], grid, Resampling.nearest) >= 62.5
            started = time.perf_counter()
            prediction = predict_scene(
                model_id,
                files,
                scene,
                grid,
                Path(tmp),
                with_reference=with_reference,
                seed=seed,
                sampler=sampler,
                steps=steps,
                speed=speed,
                ensemble=ensemble,
                strength=strength,
                **extra,
            )
            seconds += time.perf_counter() - started
            megapixels += grid.width * grid.height / 1e6
            rows.append(all_metrics(prediction, truth, saturated))
            detail.append((*high_frequency_power(prediction, truth), bright_ssim_log(prediction, truth), rows[-1]["pixels"]))
            pooled_prediction.append(prediction.ravel())
            pooled_truth.append(truth.ravel())
            pooled_region.append(scene.get("region"))
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, float)})
    summary = {k: float(np.nanmean([r.get(k, np.nan) for r in rows])) for k in keys}
    # The whole set as one area: what a user's map of the region would score (sum of lights, bright cores).
    pooled = pooled_metrics(np.concatenate(pooled_prediction), np.concatenate(pooled_truth)) if rows else {}
    summary.update({f"set_{k}": float(v) for k, v in pooled.items() if k != "pixels"})
    summary["set_pixels"] = int(pooled.get("pixels", 0))
    if rows:
        summary["set_scene_sum_of_lights_error"] = scene_sum_of_lights_error(pooled_prediction, pooled_truth)
        summary.update(pooled_detail(detail))
    if any(pooled_region):  # real-temporal sets: each region's pixels pooled too, beside the whole set's
        summary["set_regions"] = pooled_by_group(pooled_prediction, pooled_truth, pooled_region)
    return {
        "model": model,
        "data": str(data_dir),
        "scenes": len(rows),
        "with_reference": with_reference,
        "sampler": sampler,
        "steps": steps,
        "speed": speed,
        "ensemble": ensemble,
        "strength": strength,
        "temperature": temperature,
        "seconds_per_megapixel": seconds / max(megapixels, 1e-9),
        **summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="zoo id, ONNX file, checkpoint, or baseline/persistence/bicubic")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--sampler")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--speed", type=int)
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--temperature", type=float, help="normalizing flows: latent temperature (default 0.8)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="evaluate only the first N scenes")
    parser.add_argument("--out", type=Path, help="append the result as one JSON line to this file")
    args = parser.parse_args(argv)
    result = evaluate(
        args.model,
        args.data,
        args.sampler,
        args.steps,
        args.speed,
        args.ensemble,
        not args.no_reference,
        args.seed,
        args.limit,
        temperature=args.temperature,
    )
    line = json.dumps(result)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
