"""Bad references on the real-temporal set: what the default does with a reference of the wrong area, with nodata
holes, or of another product, against the default run without any reference, and whether the engine says so.

Each case edits a real scene's reference on its own grid (same georeference, so the engine cannot tell by the
footprint): upside down (another area's light pattern), the middle third of its rows missing (NaN holes), three
times brighter (another product or season). The engine's answer to a reference it cannot trust is a note
(`NLF_REFERENCE_DMSP_CORRELATION` below 0.5); the table shows the note, the correlation and both scores.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling

from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.raster.grids import Grid, inspect_raster
from nightlight_fusion_plugin.core.report.metrics import psnr_log

from .evaluate import model_zoo_for, read_on


def _holes(reference: np.ndarray) -> np.ndarray:
    out = reference.copy()
    third = reference.shape[0] // 3
    out[third : 2 * third] = np.nan
    return out


CASES: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {
    "as given": None,
    "upside down (wrong area)": np.flipud,
    "middle third missing (nodata)": _holes,
    "3× brighter (another product)": lambda reference: reference * 3.0,
}


def _write_like(source: str, data: np.ndarray, out: Path) -> str:
    with rasterio.open(source) as src:
        profile = {**src.profile, "dtype": "float32", "nodata": np.nan}
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data.astype(np.float32), 1)
    return str(out)


def _run(model: str, files: dict[str, str], reference: str | None, scene: dict, out: Path) -> tuple[Any, np.ndarray]:
    result = fuse(
        FuseRequest(
            dmsp=files["dmsp"],
            viirs=reference,
            output=str(out),
            overwrite=True,
            grid_like=files["viirs_truth"],
            model=model,
            seed=scene["index"],
            satellite=scene.get("satellite"),
            year=scene.get("year"),
            reference_year=scene.get("reference_year") if reference else None,  # the scene's dates, as evaluate
            reference_gap_years=scene.get("signed_gap_years", scene.get("gap_years")) if reference else None,
        )
    )
    info = inspect_raster(files["viirs_truth"], "truth")
    return result, read_on(str(out), Grid(info.crs, info.transform, info.width, info.height), Resampling.nearest)


def bad_reference_rows(data_dir: Path, with_reference: str, without_reference: str, limit: int = 2) -> list[dict]:
    """One row per scene (the first `limit` of the set) and case."""
    manifest = json.loads((data_dir / "manifest.json").read_text())
    rows = []
    with model_zoo_for(with_reference) as with_id, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for scene in manifest["scenes"][:limit]:
            files = {k: str(data_dir / v) for k, v in scene["files"].items()}
            info = inspect_raster(files["viirs_truth"], "truth")
            grid = Grid(info.crs, info.transform, info.width, info.height)
            truth = read_on(files["viirs_truth"], grid, Resampling.nearest)
            with model_zoo_for(without_reference) as without_id:
                _, alone = _run(without_id, files, None, scene, tmp / "alone.tif")
            with rasterio.open(files["viirs_reference"]) as src:
                reference = src.read(1).astype(np.float32)
            for case, edit in CASES.items():
                path = (
                    files["viirs_reference"]
                    if edit is None
                    else _write_like(files["viirs_reference"], edit(reference), tmp / "ref.tif")
                )
                result, fused = _run(with_id, files, path, scene, tmp / "fused.tif")
                rows.append(
                    {
                        "set": data_dir.name,
                        "scene": scene["index"],
                        "case": case,
                        "correlation": result.tags.get("NLF_REFERENCE_DMSP_CORRELATION"),
                        "noted": any("disagrees strongly" in note for note in result.notes),
                        "psnr_log": psnr_log(fused, truth),
                        "psnr_log_without_reference": psnr_log(alone, truth),
                        "with_reference": with_reference,
                        "without_reference": without_reference,
                    }
                )
    return rows


def bad_reference_markdown(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = [
        "### Bad references (the default with a reference vs the default without one)",
        "",
        "A real scene's reference edited on its own grid: upside down (another area's pattern), its middle third "
        f"missing, three times brighter. With a reference: `{rows[0]['with_reference']}`; without: "
        f"`{rows[0]['without_reference']}`. `noted`: the engine's note that the reference disagrees strongly with "
        "the DMSP (correlation of the DMSP with the reference simulated to DMSP below 0.5).",
        "",
        "| set | scene | reference | correlation | noted | psnr_log with it | psnr_log without | worse |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        worse = r["psnr_log"] < r["psnr_log_without_reference"]
        lines.append(
            f"| {r['set']} | {r['scene']} | {r['case']} | {r['correlation']} | {'yes' if r['noted'] else 'no'} | "
            f"{r['psnr_log']:.2f} | {r['psnr_log_without_reference']:.2f} | {'yes' if worse else 'no'} |"
        )
    unnoted = [r for r in rows if r["psnr_log"] < r["psnr_log_without_reference"] and not r["noted"]]
    lines += [
        "",
        f"Worse than the run without a reference and not noted: {len(unnoted)} of {len(rows)} runs"
        + (": " + "; ".join(f"{r['set']} scene {r['scene']}, {r['case']}" for r in unnoted) if unnoted else "."),
        "",
    ]
    return lines
