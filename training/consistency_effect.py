"""What `fuse --dmsp-consistency` does to a method on real-temporal sets: pooled psnr_log, sum of lights and the
brightest 1 % with and without the consistency pass (issue #19). Sets: `python -m training.simulate real-temporal`.

    python -m training.consistency_effect data/eval/real_sudan data/eval/real_mumbai_gap1 data/eval/real_mumbai_gap5
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from nightlight_fusion_plugin.core.raster.grids import Grid
from nightlight_fusion_plugin.core.report.metrics import pooled_metrics

from .evaluate import predict_scene

RUNS = (("baseline", False), ("unet-fp32", False), ("reference-change", True), ("unet_refaware-fp32", True))


def pooled(set_dir: Path, model: str, with_reference: bool, consistency: bool) -> dict[str, float]:
    manifest = json.loads((set_dir / "manifest.json").read_text())
    predictions, truths = [], []
    for scene in manifest["scenes"]:
        files = {k: str(set_dir / v) for k, v in scene["files"].items()}
        with rasterio.open(files["viirs_truth"]) as src:
            grid = Grid(src.crs, src.transform, src.width, src.height)
            truth = src.read(1, masked=True).filled(np.nan)
        with tempfile.TemporaryDirectory() as tmp:
            prediction = predict_scene(model, files, scene, grid, Path(tmp), with_reference, dmsp_consistency=consistency)
        ok = np.isfinite(prediction) & np.isfinite(truth)
        predictions.append(prediction[ok])
        truths.append(truth[ok])
    return pooled_metrics(np.concatenate(predictions), np.concatenate(truths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.consistency_effect", description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path)
    args = parser.parse_args(argv)
    print("| set | method | reference | psnr_log (dB) | sum of lights | brightest 1 % |")
    print("|---|---|---|---|---|---|")
    for set_dir in args.sets:
        for model, with_reference in RUNS:
            a, b = (pooled(set_dir, model, with_reference, c) for c in (False, True))
            print(
                f"| {set_dir.name} ({a['pixels']} px) | `{model}` | {'yes' if with_reference else 'no'} | "
                f"{a['psnr_log']:.2f} → {b['psnr_log']:.2f} | {100 * a['sum_of_lights_error']:+.1f} % → "
                f"{100 * b['sum_of_lights_error']:+.1f} % | {100 * a['bright_sum_error']:+.1f} % → "
                f"{100 * b['bright_sum_error']:+.1f} % |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
