"""A time series: one VIIRS-like map per DMSP year (1992–2013) on one reference grid, plus real VIIRS years.

How the series is made consistent in time:
- every year runs the same model with the same seed; tiles sit on the global lattice and their noise is
  seeded by geographic tile, so a pixel gets the same tiles and noise in every year;
- each DMSP file is intercalibrated with its own satellite-year coefficients (Elvidge et al. 2014); a year
  flown by two satellites is fused once per satellite and the two maps are averaged (the Elvidge practice of
  intercalibrating each satellite and averaging them);
- each DMSP year is fused with the VIIRS reference nearest to it in time (ties: the earlier);
- all inputs are warped onto the grid of the earliest reference (DMSP bilinear, VIIRS nearest), so inputs on
  other grids or CRSs are allowed;
- temporal step (on unless `temporal_smoothing=False`; core/temporal.py): one whole-scene factor per DMSP year.
  `temporal_fit="prior"` (default): each DMSP year's level is measured from the DMSP itself through the sensor
  model against its reference (the change the DMSP sees, undamped by the model), then the year levels are fitted
  jointly with the real VIIRS years as a random walk with drift observed through a residual satellite gain of
  known spread (σ from the Elvidge curves), τ by REML; each map is scaled to the smoothed level. A one-year jump
  is shrunk as gain, a step that persists into the VIIRS years (the seam) is kept as change. Without references
  the fused maps' own levels are smoothed. `temporal_fit="local-trend"`: the earlier fit (per-year gain = the
  scene level's deviation from its local Theil–Sen line, VIIRS years anchoring it). Pixel detail is not smoothed.

The report (`series.json` next to the output, also returned) gives per series: the sum of lights of every
band (over pixels valid in all bands), the year-to-year ratios, the step at the DMSP→VIIRS seam (last DMSP
year against the first real VIIRS year), and the fraction of lit pixels whose trend sign over the DMSP years
(least-squares slope of log1p radiance) disagrees with the input DMSP's (slope of intercalibrated DN).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import CancelledError, InputError, OutputError
from ..raster.grids import AlignedReader, Grid, inspect_raster, output_grid
from ..raster.output import GTIFF_OPTIONS, RasterWriter, check_output_path, overview_factors, partial_path
from ..sensor.intercalibration import intercalibration_for, parse_reference_year, parse_satellite_year
from .fuse import FuseRequest, fuse
from .temporal import FITS, LevelInput, fit_year_gains, gain_sigma, lit_log_sample, local_trend, prior_year_gains  # noqa: F401 (re-exported)

ProgressCallback = Callable[[float, str], None]
LIT = 0.5  # nW/cm²/sr: pixels below are too dark for a log-ratio gain estimate
TEMPORAL_TAGS = {
    "prior": "year levels from the DMSP via the sensor model, random-walk smoother with the Elvidge gain prior",
    "local-trend": "year-gain fit (scene log level vs its local Theil-Sen trend)",
}
STAT_ROWS = 256


@dataclass
class SeriesRequest:
    dmsp: list[str]
    viirs: list[str] = field(default_factory=list)
    output: str | None = None  # multi-band GeoTIFF, band descriptions = years
    per_year_dir: str | None = None  # one GeoTIFF per year
    years: list[int] | None = None  # one per DMSP file; else parsed from the names
    satellites: list[str] | None = None  # one per DMSP file; else parsed (or the one flying that year)
    viirs_years: list[int] | None = None
    include_viirs: bool = True  # the real VIIRS years as bands of the series
    temporal_smoothing: bool = True
    temporal_fit: str = "prior"  # "prior" or "local-trend" (core/temporal.py)
    model: str | None = None
    seed: int = 0
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str | None = None
    overwrite: bool = False
    resume: bool = False
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 8
    speed: int | None = None
    sampler: str | None = None
    steps: int | None = None
    temperature: float = 0.8


@dataclass(frozen=True)
class DmspInput:
    path: str
    satellite: str | None
    year: int


@dataclass
class SeriesResult:
    output: str | None
    per_year: list[str]
    labels: list[str]
    report: dict
    report_path: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def resolve_dmsp(request: SeriesRequest) -> list[DmspInput]:
    """Satellite and year of every DMSP file; bad or ambiguous years are explained before any work."""
    if not request.dmsp:
        raise InputError("No DMSP rasters given: a series needs at least one DMSP-OLS file (one per satellite-year).")
    for name, values in (("--years", request.years), ("--satellites", request.satellites)):
        if values is not None and len(values) != len(request.dmsp):
            raise InputError(
                f"{name} gives {len(values)} value(s) for {len(request.dmsp)} DMSP file(s): give one per file, in order."
            )
    out, seen = [], set()
    for i, path in enumerate(request.dmsp):
        sat, year = parse_satellite_year(path)
        year = request.years[i] if request.years else year
        sat = (request.satellites[i] or None) if request.satellites else sat
        if year is None:
            raise InputError(
                f"Cannot tell the year of the DMSP file {path}: name it like F15_2005 / F152005 or give --years (one per file)."
            )
        if not 1992 <= year <= 2013:
            raise InputError(f"DMSP file {path} is for {year}, but DMSP-OLS stable lights exist for 1992–2013 only.")
        intercal = intercalibration_for(sat, year)  # validates the satellite; fills it when only one flew
        sat = intercal.satellite or sat
        if (sat, year) in seen:
            raise InputError(f"Two DMSP files for {sat} {year} (the second: {path}); give each satellite-year once.")
        seen.add((sat, year))
        out.append(DmspInput(path, sat, year))
    return out


def check_temporal_fit(request: SeriesRequest) -> None:
    if request.temporal_fit not in FITS:
        raise InputError(f"Unknown temporal fit '{request.temporal_fit}': choose one of {', '.join(FITS)}.")


def resolve_viirs(request: SeriesRequest) -> list[tuple[str, int]]:
    if request.viirs_years is not None and len(request.viirs_years) != len(request.viirs):
        raise InputError(f"--viirs-years gives {len(request.viirs_years)} year(s) for {len(request.viirs)} VIIRS file(s).")
    out = []
    for i, path in enumerate(request.viirs):
        if request.viirs_years is not None:
            year = request.viirs_years[i]
        else:
            year = parse_reference_year(path)
        if year is None:
            raise InputError(f"Cannot tell the year of the VIIRS file {path}: put the year in its name or give --viirs-years.")
        if any(y == year for _, y in out):
            raise InputError(f"Two VIIRS files for {year}; give one reference per year.")
        out.append((path, year))
    return sorted(out, key=lambda item: item[1])


def nearest_reference(year: int, references: list[tuple[str, int]]) -> str | None:
    """The reference nearest in time (ties: the earlier, the one the sensor changed less since)."""
    if not references:
        return None
    return min(references, key=lambda item: (abs(item[1] - year), item[1]))[0]


def _check_outputs(request: SeriesRequest, labels: list[str], inputs: list[str]) -> tuple[Path | None, list[Path], Path]:
    if not request.output and not request.per_year_dir:
        raise OutputError("Give an output (a multi-band GeoTIFF) and/or --per-year-dir (one GeoTIFF per year).")
    output = check_output_path(request.output, inputs, request.overwrite) if request.output else None
    per_year = []
    if request.per_year_dir:
        folder = Path(request.per_year_dir)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"--per-year-dir {folder} is a file; give a folder.")
        per_year = [
            check_output_path(folder / f"nightlights_{label.replace(' ', '_')}.tif", inputs, request.overwrite)
            for label in labels
        ]
    report = output.with_suffix(".json") if output else Path(request.per_year_dir) / "series.json"
    if report.exists() and not request.overwrite:
        raise OutputError(f"The series report {report} already exists; choose another output or allow overwriting (--overwrite).")
    return output, per_year, report


class _StackWriter:
    """A multi-band float32 GeoTIFF written into a hidden partial file and renamed when complete."""

    def __init__(self, path: Path, grid: Grid, labels: list[str], tags: dict[str, str]):
        self.path, self.grid, self.labels, self.tags = path, grid, labels, tags
        self.partial = partial_path(path)
        self.dst = None

    def __enter__(self) -> _StackWriter:
        g = self.grid
        options = {**GTIFF_OPTIONS, "count": len(self.labels), "interleave": "band"}
        self.dst = rasterio.open(self.partial, "w", crs=g.crs, transform=g.transform, width=g.width, height=g.height, **options)
        return self

    def write(self, band: int, values: np.ndarray, window: Window) -> None:
        self.dst.write(values.astype(np.float32), band + 1, window=window)

    def finish(self) -> None:
        self.dst.build_overviews(overview_factors(self.grid.width, self.grid.height), Resampling.average)
        self.dst.update_tags(ns="rio_overview", resampling="average")
        self.dst.update_tags(**self.tags)
        for i, label in enumerate(self.labels):
            self.dst.set_band_description(i + 1, label)
            self.dst.set_band_unit(i + 1, "nW/cm2/sr")
        self.dst.close()
        os.replace(self.partial, self.path)

    def __exit__(self, *exc) -> None:
        if self.dst is not None and not self.dst.closed:
            self.dst.close()
        if self.partial.exists():
            self.partial.unlink()


def run_series(
    request: SeriesRequest,
    cluster=None,
    progress: ProgressCallback | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> SeriesResult:
    """Fuse every DMSP year onto one grid, make the series consistent in time, write it and its report.
    `cluster`: ClusterOptions for distributed.fuse_blocks (None: each year by fuse() in this process)."""
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    check_temporal_fit(request)
    dmsp = resolve_dmsp(request)
    references = resolve_viirs(request)
    notes: list[str] = []
    dmsp_years = sorted({d.year for d in dmsp})
    missing = sorted(set(range(dmsp_years[0], dmsp_years[-1] + 1)) - set(dmsp_years))
    if missing:
        notes.append(
            f"No DMSP for {', '.join(map(str, missing))}: the series has no band for those years (nothing is interpolated)."
        )
    viirs_bands = [(p, y) for p, y in references if request.include_viirs]
    labels = [str(y) for y in dmsp_years] + [f"{y} VIIRS" if y in dmsp_years else str(y) for _, y in viirs_bands]
    inputs = [d.path for d in dmsp] + [p for p, _ in references]
    output, per_year, report_path = _check_outputs(request, labels, inputs)

    # the series grid: the earliest reference's grid (or the 15″ lattice) over the first DMSP file
    infos = {d.path: inspect_raster(d.path, "DMSP") for d in dmsp}
    grid_ref = references[0][0] if references else None
    grid = output_grid(
        infos[dmsp[0].path], inspect_raster(grid_ref, "VIIRS") if grid_ref else None, request.extent, request.extent_crs
    )
    crs_set = {str(i.crs) for i in infos.values()} | {str(inspect_raster(p, "VIIRS").crs) for p, _ in references}
    if len(crs_set) > 1 or len({(i.transform, i.width, i.height) for i in infos.values()}) > 1:
        notes.append(f"Inputs are on different grids/CRSs: all are warped onto the series grid ({grid.crs.to_string()}, "
                     f"{grid.width}×{grid.height} px; DMSP bilinear, VIIRS nearest).")  # fmt: skip

    anchor = output or Path(request.per_year_dir) / "series.tif"
    work = anchor.with_name(f".{anchor.name}.series-work")
    if work.exists() and not request.resume:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    resumable = request.resume or bool(cluster is not None and cluster.uses_dask)
    try:
        runs: dict[int, list[str]] = {}
        total = len(dmsp)
        with ExitStack() as stack:
            client = None
            if cluster is not None and cluster.uses_dask:
                from .distributed import cluster_client

                client = stack.enter_context(cluster_client(cluster))
            for i, d in enumerate(dmsp):
                if is_cancelled is not None and is_cancelled():
                    raise CancelledError("Cancelled by the user; no series was written.")
                target = work / f"{d.year}_{d.satellite or 'unknown'}.tif"
                runs.setdefault(d.year, []).append(str(target))
                reference = nearest_reference(d.year, references)
                reference_year = dict(references).get(reference) if reference else None
                if target.exists() and request.resume:
                    notes.append(f"{d.satellite} {d.year}: already fused in an earlier run (resumed).")
                    continue
                fuse_request = FuseRequest(
                    dmsp=d.path, viirs=reference, output=str(target), model=request.model, seed=request.seed,
                    satellite=d.satellite, year=d.year, overwrite=True, grid_like=grid_ref,
                    extent=grid.bounds, extent_crs=grid.crs.to_wkt(), device=request.device, threads=request.threads,
                    batch_size=request.batch_size, speed=request.speed, sampler=request.sampler, steps=request.steps,
                    temperature=request.temperature, cache_models=True, reference_year=reference_year,
                )  # fmt: skip

                def year_progress(fraction: float, message: str, i=i, d=d) -> None:
                    report(0.8 * (i + fraction) / total, f"{d.satellite} {d.year}: {message}")

                if cluster is not None and (cluster.uses_dask or cluster.resume):
                    from .distributed import fuse_blocks

                    result = fuse_blocks(fuse_request, cluster, year_progress, is_cancelled, client=client)
                else:
                    result = fuse(fuse_request, year_progress, is_cancelled)
                if result.grid != grid:
                    raise InputError(
                        f"The DMSP file {d.path} covers only part of the series area; crop all years to a common area "
                        "or give an --extent inside every input."
                    )
                notes.append(f"{d.satellite} {d.year}: reference {os.path.basename(reference) if reference else 'none'}; "
                             f"{result.notes[0]}")  # fmt: skip
        for year, paths in runs.items():
            if len(paths) > 1:
                notes.append(f"{year}: {len(paths)} satellites, each intercalibrated and fused, then averaged per pixel.")

        report(0.8, "Temporal consistency")
        with rasterio.Env(GDAL_CACHEMAX=64), ExitStack() as stack:
            year_readers = {y: [stack.enter_context(rasterio.open(p)) for p in runs[y]] for y in dmsp_years}
            ref_readers = [
                stack.enter_context(AlignedReader(inspect_raster(p, "VIIRS"), grid, Resampling.nearest)) for p, _ in references
            ]
            viirs_readers = ref_readers if request.include_viirs else []
            dmsp_readers = {
                y: [(stack.enter_context(AlignedReader(infos[d.path], grid)), intercalibration_for(d.satellite, d.year))
                    for d in dmsp if d.year == y]
                for y in dmsp_years
            }  # fmt: skip

            def read_band(window: Window, viirs: list = viirs_readers) -> np.ndarray:
                maps = []
                for y in dmsp_years:
                    parts = np.stack([r.read(1, window=window) for r in year_readers[y]])
                    with np.errstate(invalid="ignore"):
                        maps.append(np.nanmean(parts, axis=0) if len(parts) > 1 else parts[0])
                maps += [r.read(window) for r in viirs]
                return np.stack(maps)  # [bands, rows, width]

            def rows() -> list[Window]:
                return [Window(0, r, grid.width, min(STAT_ROWS, grid.height - r)) for r in range(0, grid.height, STAT_ROWS)]

            n_dmsp = len(dmsp_years)
            fixed = np.array([False] * n_dmsp + [True] * len(viirs_bands))
            gains = np.zeros(len(labels))
            tau = None
            if request.temporal_smoothing and len(labels) >= 2 and request.temporal_fit == "local-trend":
                sample = lit_log_sample((read_band(w) for w in rows()), len(labels), grid.width * grid.height, LIT)
                gains = fit_year_gains(sample, np.array(dmsp_years + [y for _, y in viirs_bands], np.float64), fixed)
                if sample.shape[0] == 0:
                    notes.append(f"Temporal step skipped: no pixel is lit (> {LIT} nW/cm²/sr) in every year.")
            elif request.temporal_smoothing and n_dmsp + len(references) >= 2:
                sums_all = np.zeros(n_dmsp + len(references))  # over pixels valid in every DMSP map and reference
                for window in rows():
                    maps = read_band(window, ref_readers)
                    sums_all += np.where(np.all(np.isfinite(maps), axis=0), maps, 0.0).sum(axis=(1, 2))
                if np.all(sums_all > 0):
                    ref_index = {p: i for i, (p, _) in enumerate(references)}
                    files = [LevelInput(infos[d.path], intercalibration_for(d.satellite, d.year), d.year,
                                        ref_index.get(nearest_reference(d.year, references))) for d in dmsp]  # fmt: skip
                    ref_infos = [(inspect_raster(p, "VIIRS"), y) for p, y in references]
                    dmsp_gains, tau, level_notes = prior_year_gains(
                        files, ref_infos, grid, dmsp_years, sums_all[:n_dmsp], sums_all[n_dmsp:]
                    )
                    gains[:n_dmsp] = dmsp_gains
                    notes += level_notes
                else:
                    notes.append("Temporal step skipped: a year has no light on the pixels valid in every year.")
            factors = np.exp(-gains)

            tags = {
                "NLF_SERIES_YEARS": ",".join(labels),
                "NLF_SERIES_TEMPORAL": TEMPORAL_TAGS[request.temporal_fit] if request.temporal_smoothing else "none",
                "NLF_SERIES_GAINS": ",".join(f"{np.exp(g):.4f}" for g in gains),
                **({"NLF_SERIES_LEVEL_TAU": f"{tau:.4f}"} if tau is not None else {}),
                "NLF_SEED": str(request.seed),
                "NLF_METHOD": request.model or "default",
            }
            stack_writer = stack.enter_context(_StackWriter(output, grid, labels, tags)) if output else None
            year_writers = [
                stack.enter_context(
                    RasterWriter(p, grid, {**tags, "NLF_SERIES_YEAR": label}, f"VIIRS-like radiance {label} (nW/cm2/sr)")
                )
                for p, label in zip(per_year, labels)
            ]
            sums = np.zeros(len(labels))
            t = np.array(dmsp_years, np.float64)
            disagree = considered = 0
            for k, window in enumerate(rows()):
                if is_cancelled is not None and is_cancelled():
                    raise CancelledError("Cancelled by the user; no series was written.")
                values = read_band(window) * factors[:, None, None].astype(np.float32)
                for b in range(len(labels)):
                    if stack_writer:
                        stack_writer.write(b, values[b], window)
                    if year_writers:
                        year_writers[b].write(values[b], window)
                valid = np.all(np.isfinite(values), axis=0)
                sums += np.where(valid, values, 0.0).sum(axis=(1, 2))
                if n_dmsp >= 2:
                    dnc = []
                    for y in dmsp_years:
                        parts = np.stack([ic.apply(r.read(window)) for r, ic in dmsp_readers[y]])
                        with np.errstate(invalid="ignore"):
                            dnc.append(np.nanmean(parts, axis=0))
                    dnc = np.stack(dnc)
                    fused = np.log1p(np.maximum(values[:n_dmsp], 0.0))
                    tc = (t - t.mean())[:, None, None]
                    slope_in = (tc * (dnc - dnc.mean(axis=0))).sum(axis=0)
                    slope_out = (tc * (fused - fused.mean(axis=0))).sum(axis=0)
                    ok = valid & np.all(np.isfinite(dnc), axis=0) & (dnc.max(axis=0) > 0) & (np.abs(slope_in) > 1e-6)
                    considered += int(ok.sum())
                    disagree += int((ok & (np.sign(slope_in) != np.sign(slope_out))).sum())
                report(0.8 + 0.15 * (k + 1) / len(rows()), "Writing the series")
            report(0.95, "Building overviews")
            if stack_writer:
                stack_writer.finish()
            for w in year_writers:
                w.finish()
        shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        # a failed run leaves nothing, unless it can be resumed (then the finished years and blocks are kept)
        if not resumable:
            shutil.rmtree(work, ignore_errors=True)
        raise

    ratios = [
        {"from": labels[i], "to": labels[i + 1], "ratio": float(sums[i + 1] / sums[i]) if sums[i] > 0 else None}
        for i in range(len(labels) - 1)
    ]
    seam = None
    if viirs_bands:
        last, first = n_dmsp - 1, n_dmsp
        seam = {
            "last_dmsp": labels[last],
            "first_viirs": labels[first],
            "step": float(sums[first] / sums[last] - 1.0) if sums[last] > 0 else None,
        }
    body = {
        "labels": labels,
        "kinds": ["dmsp"] * n_dmsp + ["viirs"] * len(viirs_bands),
        "model": request.model or "default",
        "seed": request.seed,
        "temporal_smoothing": request.temporal_smoothing,
        "temporal_fit": request.temporal_fit if request.temporal_smoothing else None,
        "gain_prior_sigma": round(gain_sigma(), 4) if request.temporal_smoothing and request.temporal_fit == "prior" else None,
        "level_step_sigma": tau,
        "year_gains": {label: float(np.exp(g)) for label, g in zip(labels, gains)},
        "references": {str(d.year): os.path.basename(nearest_reference(d.year, references) or "") for d in dmsp},
        "sum_of_lights": {label: float(s) for label, s in zip(labels, sums)},
        "year_to_year_ratios": ratios,
        "seam": seam,
        "trend_sign_disagreement": (disagree / considered) if considered else None,
        "trend_pixels": considered,
        "grid": {"crs": grid.crs.to_string(), "width": grid.width, "height": grid.height},
        "notes": notes,
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(body, indent=2) + "\n")
    report(1.0, "Done")
    return SeriesResult(
        str(output) if output else None, [str(p) for p in per_year], labels, body, str(report_path),
        time.perf_counter() - started, notes,
    )  # fmt: skip
