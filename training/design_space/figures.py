"""The report's figures: quality vs NFE and time, and sample tiles of every set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .choose import default_speed, speed_levels


def plots(rows: list[dict], images: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images.mkdir(parents=True, exist_ok=True)
    made = []
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key in sorted(
        {
            (r["model"], r.get("sampler"))
            for r in rows
            if r.get("sampler") and r["set"] == "synthetic" and r["with_reference"] and not r.get("ensemble_k")
        }
    ):
        pts = sorted(
            (r["nfe"], r["psnr_log"], r["seconds_per_megapixel"])
            for r in rows
            if (r["model"], r.get("sampler")) == key
            and r["set"] == "synthetic"
            and r["with_reference"]
            and not r.get("ensemble_k")
        )
        a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} {key[1]}")
        b.plot([p[2] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} {key[1]}")
    for r in rows:
        if r["family"] == "baseline" and r["set"] == "synthetic" and r["with_reference"]:
            a.axhline(r["psnr_log"], ls="--", lw=0.8, color="grey")
            a.text(1, r["psnr_log"], r["model"], fontsize=7, color="grey")
    a.set_xscale("log")
    a.set_xlabel("NFE (model evaluations)")
    a.set_ylabel("PSNR, log radiance (dB)")
    b.set_xscale("log")
    b.set_xlabel("CPU seconds per megapixel")
    a.legend(fontsize=7)
    a.set_title("Quality vs NFE (synthetic test set, with reference)")
    b.set_title("Quality vs time")
    fig.tight_layout()
    fig.savefig(images / "design_space_psnr_nfe.png", dpi=90)
    plt.close(fig)
    made.append("images/design_space_psnr_nfe.png")
    return made


def sample_tiles(zoo_models: list, sets: dict[str, Path], images: Path, rows: list[dict] | None = None) -> list[str]:
    """Side-by-side tiles per set: DMSP, reference, truth, the traditional baseline and each fp32 model at its
    default speed level, on the first scene, log1p colour scale. A model without speed levels in its manifest
    (a design-space model) is shown at the level `update_manifest` would give it from `rows`."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rasterio.enums import Resampling

    from nightlight_fusion_plugin.core.raster.grids import Grid, inspect_raster

    from ..evaluate import predict_scene, read_on

    made = []
    shown = [m for m in zoo_models if m.precision == "fp32"]
    for set_name, data in sets.items():
        scene = json.loads((data / "manifest.json").read_text())["scenes"][0]
        files = {k: str(data / v) for k, v in scene["files"].items()}
        info = inspect_raster(files["viirs_truth"], "truth")
        grid = Grid(info.crs, info.transform, info.width, info.height)
        with_reference = "viirs_reference" in files  # the no-reference class has none
        reference = read_on(files["viirs_reference"], grid, Resampling.nearest) if with_reference else None
        panels = [
            ("DMSP (DN, bilinear)", read_on(files["dmsp"], grid), (0, 63)),
            ("reference VIIRS" if with_reference else "no reference", reference, None),
            ("truth VIIRS", read_on(files["viirs_truth"], grid, Resampling.nearest), None),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            for model_id in ["baseline", *(m.id for m in shown)]:
                # each model at its default speed level (the manifest's, as the plugin runs it)
                model = next((m for m in shown if m.id == model_id), None)
                options = {}
                if model is not None and not model.speed_levels:
                    levels = speed_levels(rows or [], model_id)
                    if levels:
                        level = levels[default_speed(levels) - 1]
                        options = {k: level[k] for k in ("sampler", "steps", "strength")}
                prediction = predict_scene(model_id, files, scene, grid, Path(tmp), with_reference=with_reference, **options)
                panels.append((model_id, prediction, None))
        vmax = float(np.log1p(np.nanpercentile(panels[2][1], 99.5)))
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
        for ax, (title, array, fixed) in zip(np.atleast_1d(axes), panels):
            if fixed:
                ax.imshow(array, cmap="gray", vmin=fixed[0], vmax=fixed[1])
            elif array is not None:
                ax.imshow(np.log1p(np.clip(array, 0, None)), cmap="magma", vmin=0, vmax=vmax)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.suptitle(
            f"{set_name} test set, scene {scene['index']} (radiance panels: log1p, same scale; models at their default speed)",
            fontsize=9,
        )
        fig.tight_layout()
        name = f"images/design_space_tiles_{set_name}.png"
        fig.savefig(images.parent / name, dpi=80)
        plt.close(fig)
        made.append(name)
    return made
