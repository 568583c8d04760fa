"""The run report: one self-contained HTML file with before/after thumbnails and QA numbers.

QA: the fused radiance is put back through the DMSP-OLS sensor model (core.dmsp_like, the same model the
training data is simulated with) and compared with the input DMSP on the DMSP grid: a result that explains
its input re-simulates to DN close to it (Pearson r of DN, mean absolute DN difference). No qgis imports:
this runs in Processing's worker thread and headless.
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile

import numpy as np

THUMB = 320


def _thumbnail(path: str, size: int = THUMB) -> np.ndarray | None:
    import rasterio
    from rasterio.enums import Resampling

    if not path:
        return None
    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / size
        shape = (max(1, round(src.height / max(scale, 1))), max(1, round(src.width / max(scale, 1))))
        data = src.read(1, out_shape=shape, resampling=Resampling.average, masked=True).astype("float32")
    return data.filled(np.nan)


def thumbnails_png(panels: list[tuple[str, str | None, bool]]) -> bytes:
    """PNG of side-by-side thumbnails; each panel is (title, raster path, log stretch). b"" without matplotlib
    (an optional dependency: the report then has no pictures, never an error)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return b""

    panels = [(t, p, log) for t, p, log in panels if p]
    figure = Figure(figsize=(3.2 * len(panels), 3.4), dpi=100)
    FigureCanvasAgg(figure)
    for i, (title, path, log) in enumerate(panels):
        axis = figure.add_subplot(1, len(panels), i + 1)
        data = _thumbnail(path)
        shown = np.log1p(np.clip(data, 0, None)) if log else data
        finite = shown[np.isfinite(shown)]
        top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        image = axis.imshow(shown, cmap="magma" if log else "gray", vmin=0, vmax=max(top, 1e-6), interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def dmsp_consistency(fused: str, dmsp: str, satellite: str | None = None, year: int | None = None) -> dict:
    """The fused radiance re-simulated to DMSP DN vs the input DMSP, on the DMSP product grid."""
    from rasterio.enums import Resampling

    from ..pipeline.dmsp_like import DMSP_NODATA, simulate_dmsp_raster
    from ..raster.grids import AlignedReader, Grid, inspect_raster
    from ..sensor.intercalibration import parse_satellite_year

    parsed_satellite, parsed_year = parse_satellite_year(os.path.basename(dmsp))
    satellite, year = satellite or parsed_satellite, year or parsed_year  # the input's sensor gain, as named
    with tempfile.TemporaryDirectory(prefix="nlf-qa-") as tmp:
        simulated = simulate_dmsp_raster(fused, os.path.join(tmp, "resimulated.tif"), satellite, year)
        import rasterio

        with rasterio.open(simulated.output) as src:
            sim = src.read(1).astype("float64")
            grid = Grid(src.crs, src.transform, src.width, src.height)
    with AlignedReader(inspect_raster(dmsp, "DMSP"), grid, Resampling.nearest) as reader:
        from rasterio.windows import Window

        observed = reader.read(Window(0, 0, grid.width, grid.height)).astype("float64")
    valid = (sim != DMSP_NODATA) & np.isfinite(observed)
    a, b = sim[valid], observed[valid]
    r = float(np.corrcoef(a, b)[0, 1]) if a.size > 2 and a.std() > 0 and b.std() > 0 else float("nan")
    return {
        "pixels": int(valid.sum()),
        "pearson_r": r,
        "mean_abs_dn": float(np.abs(a - b).mean()) if a.size else float("nan"),
        "satellite_year": simulated.tags.get("NLF_DMSP_SENSOR", ""),
    }


def run_facts(result, dmsp: str, viirs: str | None) -> dict[str, str]:
    """What ran, on what, how long: the report's header table (from core.fuse.FuseResult)."""
    tags = result.tags
    return {
        "Output": result.output,
        "Model": result.model,
        "Sampler": result.sampler or "traditional (no sampling)",
        "NFE": tags.get("NLF_NFE", "—"),
        "Ensemble": tags.get("NLF_ENSEMBLE", "1"),
        "Seed": tags.get("NLF_SEED", ""),
        "Device": result.device,
        "DMSP input": dmsp,
        "VIIRS reference": viirs or "none",
        "Mask": tags.get("NLF_MASK", "none"),
        "Grid": f"{result.grid.width}×{result.grid.height} px ({result.grid.crs.to_string()})",
        "Run time": f"{result.seconds:.1f} s",
        "Created": tags.get("NLF_CREATED", ""),
        "Software": tags.get("NLF_SOFTWARE", ""),
    }


def write_report(path: str, result, dmsp: str, viirs: str | None, qa: dict | None) -> str:
    """Write the HTML report of a core.fuse.FuseResult; returns its path."""
    output, uncertainty, facts, notes = result.output, result.uncertainty, run_facts(result, dmsp, viirs), result.notes
    png = thumbnails_png(
        [
            ("DMSP-OLS input (DN)", dmsp, False),
            ("VIIRS reference (log)", viirs, True),
            ("Fused radiance (log)", output, True),
            ("Uncertainty (std)", uncertainty, False),
        ]
    )
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    if qa:
        qa_html = (
            "<h2>QA: the result re-simulated to DMSP vs the input DMSP</h2>"
            f"<table><tr><th>Pearson r of DN</th><td>{qa['pearson_r']:.3f}</td></tr>"
            f"<tr><th>Mean |ΔDN|</th><td>{qa['mean_abs_dn']:.2f}</td></tr>"
            f"<tr><th>Pixels compared</th><td>{qa['pixels']}</td></tr></table>"
            "<p>r close to 1: the fused radiance, seen through the DMSP-OLS sensor model (blur, saturation, 6-bit DN), "
            "reproduces the DMSP it was made from.</p>"
        )
    else:
        qa_html = "<p>QA not computed.</p>"
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    picture = (
        '<h2>Before / after</h2><img alt="DMSP, reference and fused thumbnails" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else "<p>(Thumbnails need the Python package matplotlib.)</p>"
    )
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Nightlight Fusion run report</title>
<style>body{{font-family:sans-serif;max-width:72em;margin:1em auto}}th{{text-align:left;padding-right:1em}}
img{{max-width:100%}}</style></head><body>
<h1>Nightlight Fusion run report</h1>
<table>{rows}</table>
{picture}
{qa_html}
<h2>Notes</h2><ul>{notes_html}</ul>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
