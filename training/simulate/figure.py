"""Simulated tiles next to real ones at the same ground scale (docs/images/simulator_vs_real.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nightlight_fusion_plugin.core.sensor.sensors import DmspParameters

from .calibrate import MARGIN, load_scene, simulate
from .pairs import make_pair

ATHENS = (23.73, 37.98)  # lon, lat of the tile centre
TILE = 128  # VIIRS pixels (≈ 59 km); DMSP tiles are 64 pixels


def make_figure(real_dir: Path, output: Path, seed: int = 6) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from matplotlib.colors import LogNorm

    pair = make_pair(seed, TILE, year=2005, reference_year=2017)
    scene = load_scene(real_dir)
    with rasterio.open(real_dir / "athens" / "dmsp_F18_2013_stable_lights.tif") as src:
        row, col = src.index(*ATHENS)
    r0, c0 = row - TILE // 4, col - TILE // 4
    real_dmsp = scene.real_dn[r0 : r0 + TILE // 2, c0 : c0 + TILE // 2]
    sim_dmsp = simulate(scene, DmspParameters.calibrated())[r0 : r0 + TILE // 2, c0 : c0 + TILE // 2]
    fr, fc = 2 * r0 + MARGIN, 2 * c0 + MARGIN
    real_viirs = scene.radiance[fr : fr + TILE, fc : fc + TILE]

    panels = [
        (pair.dmsp_dn, f"simulated DMSP {pair.satellite} {pair.year} (DN)", "dn"),
        (pair.viirs_reference, f"simulated VIIRS reference {pair.reference_year}", "rad"),
        (pair.viirs_truth, f"simulated VIIRS truth {pair.year}", "rad"),
        (real_dmsp, "real DMSP F18 2013, Athens (DN)", "dn"),
        (real_viirs, "real VIIRS 2017 mean, Athens", "rad"),
        (sim_dmsp, "DMSP simulated from real VIIRS (DN)", "dn"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4))
    for ax, (data, title, kind) in zip(axes.ravel(), panels):
        if kind == "dn":
            im = ax.imshow(data, cmap="magma", vmin=0, vmax=63, interpolation="nearest")
        else:
            im = ax.imshow(np.clip(data, 0.1, None), cmap="inferno", norm=LogNorm(0.1, 300), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="DN" if kind == "dn" else "nW/cm²/sr")
    fig.suptitle(
        "Top: one simulated scene. Bottom: real Athens data. Same ground scale: 64 DMSP (30″) / 128 VIIRS (15″) pixels ≈ 59 km",
        fontsize=11,
    )
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return output
