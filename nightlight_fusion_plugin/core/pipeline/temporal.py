"""The temporal step of `series`: one whole-scene factor per DMSP year, so that the series' year levels carry the
real change (across the DMSP→VIIRS seam too) while satellite gain jumps are taken out.

Two fits (SeriesRequest.temporal_fit):

`prior` (default) — year levels measured from the DMSP itself, then a joint fit with the known gain uncertainty:
1. Level of a DMSP year, where a VIIRS reference exists: the scene factor k that makes the DMSP sensor model
   (core/sensors.py, the same one reference-change inverts) of k × the nearest reference reproduce the DMSP's
   intercalibrated DN, summed over the DMSP pixels that are not saturated (saturated ones say nothing about the
   level), so it is the change the DMSP sees through its non-linear response, not through the model's output
   (reference-change's DN ratio, for one, moves several times less than the radiance on a saturated city). The level is then
   log(k · sum of lights of that reference). Without any reference: the fused map's own log sum of lights.
2. Observation model: level_y = T_y + g_y with the residual satellite gain g_y ~ N(0, σ_g²), σ_g = the spread of
   the Elvidge curves (gain_sigma(); what intercalibration may leave uncorrected, an upper bound); the real VIIRS
   years observe T_y directly (VIIRS_LEVEL_SIGMA). The true level T is a random walk with drift whose yearly
   steps are Student-t with scale τ: real light changes by trends, small yearly changes and a few large steps
   (a crisis, a new town) that must stay steps.
3. τ is not set by hand: it is the restricted-maximum-likelihood estimate from the same series (a white jump
   pattern is gain, a persistent one is change); with fewer than MIN_YEARS_FOR_TAU years τ = σ_g.
4. Each DMSP year's map is scaled so that its sum of lights is exp(E[T_y | all levels]) (the posterior mean,
   a Kalman smoother in closed form). A jump the neighbours and the VIIRS anchor do not share is shrunk by the
   gain prior; a step that persists into the real VIIRS years is kept.

`local-trend` (the earlier fit, kept for comparison) — per-year robust gain fitted on pixels lit in every year:
the scene's log level of year y is the median over pixels of log x_y minus the pixel's mean over the years, and
the gain is that level minus its robust local trend (Theil–Sen line over ±2 years); real VIIRS years gain 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from ..methods.reference_change import _dmsp_pixel_in, expanded, grid_pixel_km, sensor_parameters
from ..raster.grids import AlignedReader, Grid, RasterInfo
from ..sensor.calibration import SATURATION_THRESHOLD
from ..sensor.intercalibration import Intercalibration, published_coefficients
from ..sensor.sensors import DmspParameters, aggregate, digitise, dmsp_blur, dmsp_response, fwhm_to_sigma
from .dmsp_like import fine_resampling

FITS = ("prior", "local-trend")
VIIRS_LEVEL_SIGMA = 0.01  # log level of a real VIIRS year: the data itself (annual composites, ~1 %)
MIN_YEARS_FOR_TAU = 4  # REML of τ needs at least two degrees of freedom beyond the level and the drift
LEVEL_SAMPLES = 200_000  # DMSP pixels kept for the level fit (a random sample beyond): sums need no more
BLOCK = 256  # DMSP pixels per block side in the level pass (memory does not grow with the area)
STEP_DOF = 2.0  # Student-t steps: heavy tails (a few large real changes), not so heavy that noise becomes steps
STEP_ITERATIONS = 20  # reweighting rounds (converged well before on 10–30 years)
LOG_K_RANGE = (-3.0, 3.0)  # a twentyfold change of the whole scene between a DMSP year and its reference


@lru_cache(maxsize=1)
def gain_sigma() -> float:
    """σ of the log gain across the published satellite-years: log of the DNc each Elvidge curve gives at
    mid-scale DN 30. The spread the intercalibration corrects, so an upper bound of what it leaves."""
    dnc = [c0 + c1 * 30 + c2 * 900 for c0, c1, c2 in published_coefficients().values()]
    return float(np.std(np.log(dnc)))


def _coarse_grid(dmsp: RasterInfo, grid: Grid) -> Grid:
    """The series area at the DMSP's own pixel size, snapped to the DMSP's pixel edges where the CRSs match
    (so the DN are read as they are, not averaged across two pixels); else the nearest whole division of the area."""
    if dmsp.crs == grid.crs:
        step_x, step_y = dmsp.transform.a, dmsp.transform.e
        col = math.floor((grid.transform.c - dmsp.transform.c) / step_x + 1e-6)
        row = math.floor((grid.transform.f - dmsp.transform.f) / step_y + 1e-6)
        left, top = dmsp.transform.c + col * step_x, dmsp.transform.f + row * step_y
        right, bottom = grid.transform.c + grid.width * grid.transform.a, grid.transform.f + grid.height * grid.transform.e
        width = max(1, math.ceil((right - left) / step_x - 1e-6))
        height = max(1, math.ceil((bottom - top) / step_y - 1e-6))
    else:
        factor = max(1.0, _dmsp_pixel_in(dmsp, grid) / abs(grid.transform.a))
        width, height = max(1, int(round(grid.width / factor))), max(1, int(round(grid.height / factor)))
        left, top = grid.transform.c, grid.transform.f
        step_x, step_y = grid.width * grid.transform.a / width, grid.height * grid.transform.e / height
    return Grid(grid.crs, Affine(step_x, 0.0, left, 0.0, step_y, top), width, height)


def dmsp_scene_change(
    dmsp: RasterInfo, reference: RasterInfo, grid: Grid, intercal: Intercalibration, params: DmspParameters | None = None
) -> float | None:
    """log k: the whole-scene factor on the reference whose simulated DMSP (sensor model, this satellite-year's
    intercalibration) sums to the DMSP's intercalibrated DN over its unsaturated pixels. None where nothing
    is lit or the change lies outside LOG_K_RANGE."""
    params = params or sensor_parameters()
    coarse = _coarse_grid(dmsp, grid)
    fine = Grid(coarse.crs, coarse.transform * Affine.scale(0.5), 2 * coarse.width, 2 * coarse.height)
    dx, dy = grid_pixel_km(fine, fine.height / 2)
    margin = 2 * int(math.ceil(2 * fwhm_to_sigma(params.halo_fwhm_km) / max(min(dx, dy), 1e-6))) + 2  # 4σ, even
    wide = expanded(fine, margin)
    rng = np.random.default_rng(0)
    keep = min(1.0, LEVEL_SAMPLES / max(coarse.width * coarse.height, 1))
    observed_dn, blurred = [], []
    with (
        AlignedReader(dmsp, coarse, Resampling.average) as dmsp_reader,
        AlignedReader(reference, wide, fine_resampling(reference)) as ref_reader,
    ):
        for window in coarse.blocks(BLOCK):
            dn = dmsp_reader.read(window)
            read = Window(2 * window.col_off, 2 * window.row_off, 2 * window.width + 2 * margin, 2 * window.height + 2 * margin)
            radiance = ref_reader.read(read)
            half = margin // 2
            crop = (slice(half, half + window.height), slice(half, half + window.width))
            seen = aggregate(np.isfinite(radiance).astype(np.float32))[crop]
            pixel_km = grid_pixel_km(fine, 2 * window.row_off + window.height)
            blur = aggregate(dmsp_blur(radiance, pixel_km, params))[crop]  # outside the reference: dark
            ok = np.isfinite(dn) & (seen >= 0.5) & (dn < SATURATION_THRESHOLD)
            idx = np.flatnonzero(ok)
            if keep < 1.0 and idx.size:
                idx = rng.choice(idx, size=max(1, int(round(idx.size * keep))), replace=False)
            observed_dn.append(dn.ravel()[idx])
            blurred.append(blur.ravel()[idx])
    dn, blur = np.concatenate(observed_dn), np.concatenate(blurred)
    target = float(intercal.apply(dn).sum())
    if dn.size == 0 or target <= 0:
        return None

    def simulated(log_k: float) -> float:
        return float(intercal.apply(digitise(dmsp_response(np.exp(log_k) * blur, params), intercal, params)).sum())

    lo, hi = LOG_K_RANGE
    if simulated(lo) > target or simulated(hi) < target:
        return None
    for _ in range(40):  # the simulated sum grows with k: bisection to ~1e-11 in log k
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if simulated(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def smooth_levels(t: np.ndarray, levels: np.ndarray, sigma: np.ndarray, tau: float | None = None) -> tuple[np.ndarray, float]:
    """Posterior mean of the true levels T at the observation years (duplicates allowed) and the τ used.

    levels = T + e, e ~ N(0, sigma²) independent; T = a + b·t + a random walk; a, b get flat priors (restricted
    likelihood). The walk's steps are heavy-tailed (Student-t, STEP_DOF degrees of freedom, scale τ per year):
    most years change a little, a few change a lot (a crisis, a new town), and such a step must stay a step,
    not be spread over the neighbouring years as a Gaussian walk would. Fitted by iteratively reweighting each
    interval's step variance; τ is the Gaussian walk's REML estimate over a log grid unless given (with fewer
    than MIN_YEARS_FOR_TAU distinct years: σ_g)."""
    t = np.asarray(t, np.float64)
    y = np.asarray(levels, np.float64)
    noise = np.diag(np.asarray(sigma, np.float64) ** 2)
    years, where = np.unique(t, return_inverse=True)
    gaps = np.diff(years)
    design = np.stack([np.ones_like(t), t - t.mean()], axis=1) if years.size > 1 else np.ones((t.size, 1))

    def fit(step: float, weights: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        cumulative = np.concatenate([[0.0], np.cumsum(step**2 * gaps / weights)])
        cov_t = cumulative[np.minimum.outer(where, where)]
        inv = np.linalg.inv(cov_t + noise)
        info = design.T @ inv @ design
        beta = np.linalg.solve(info, design.T @ inv @ y)
        resid = y - design @ beta
        loglik = -0.5 * (np.linalg.slogdet(cov_t + noise)[1] + np.linalg.slogdet(info)[1] + resid @ inv @ resid)
        return loglik, design @ beta + cov_t @ inv @ resid, cov_t @ inv @ resid

    uniform = np.ones_like(gaps)
    if tau is None and years.size < MIN_YEARS_FOR_TAU:
        tau = gain_sigma()
    if tau is None:
        grid = np.geomspace(1e-3, 1.0, 61)
        tau = float(grid[int(np.argmax([fit(step, uniform)[0] for step in grid]))])
    weights = uniform
    for _ in range(STEP_ITERATIONS):
        walk = fit(tau, weights)[2]  # the walk's part, without the drift a + b·t
        level = np.array([walk[where == k].mean() for k in range(years.size)])
        z2 = np.diff(level) ** 2 / (tau**2 * gaps) if gaps.size else gaps
        weights = (STEP_DOF + 1.0) / (STEP_DOF + z2)
    return fit(tau, weights)[1], tau


def prior_gains(
    t: np.ndarray, levels: np.ndarray, fused: np.ndarray, is_viirs: np.ndarray, n_satellites: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Log gain of every band (0 for the real VIIRS ones): fused log sum of lights minus the smoothed level.

    t, levels: every observation (DMSP years' measured levels, then the VIIRS years'); fused: each band's log
    sum of lights (the DMSP bands' before the step; used only for them); n_satellites: DMSP files averaged into
    each DMSP level (their gains are independent, so σ shrinks by √n)."""
    count = np.where(is_viirs, 1.0, n_satellites if n_satellites is not None else 1.0)
    sigma = np.where(is_viirs, VIIRS_LEVEL_SIGMA, gain_sigma() / np.sqrt(count))
    smoothed, tau = smooth_levels(t, levels, sigma)
    return np.where(is_viirs, 0.0, fused - smoothed), tau


def local_trend(t: np.ndarray, level: np.ndarray, half_window: float = 2.0) -> np.ndarray:
    """Robust local line through a short series: at each year, the Theil–Sen line (median of pairwise slopes)
    of the points within ±half_window years, evaluated there. A straight piece keeps real trends; the medians
    ignore the one or two years whose satellite gain is off."""
    out = np.empty_like(level, dtype=np.float64)
    for i, ti in enumerate(t):
        near = np.flatnonzero(np.abs(t - ti) <= half_window)
        if near.size < 3:  # too short a window: widen to the three nearest years
            near = np.argsort(np.abs(t - ti), kind="stable")[:3]
        tt, yy = t[near], level[near]
        slopes = [(yy[b] - yy[a]) / (tt[b] - tt[a]) for a in range(len(tt)) for b in range(a + 1, len(tt)) if tt[b] != tt[a]]
        slope = float(np.median(slopes)) if slopes else 0.0
        out[i] = float(np.median(yy - slope * (tt - ti)))
    return out


def lit_log_sample(stacks: Iterable[np.ndarray], bands: int, area: int, lit: float) -> np.ndarray:
    """`local-trend`'s input: log values [N, bands] of a random sample (≤ LEVEL_SAMPLES) of the pixels lit above
    `lit` in every band, from the [bands, rows, cols] blocks of the series."""
    rng = np.random.default_rng(0)
    keep = min(1.0, LEVEL_SAMPLES / max(area, 1))
    samples = [np.empty((0, bands))]
    for block in stacks:
        values = block.reshape(bands, -1).T
        # lit in every band, and valid in every band: a pixel that is nodata in one year (inputs' nodata areas
        # differ) would put log(NaN) into the fit and make every year's gain NaN
        finite = np.all(np.isfinite(values), axis=1)
        idx = np.flatnonzero(finite & (np.where(finite[:, None], values, 0.0).min(axis=1) > lit))
        if keep < 1.0 and idx.size:
            idx = rng.choice(idx, size=max(1, int(round(idx.size * keep))), replace=False)
        samples.append(np.log(values[idx]))
    return np.concatenate(samples)


def fit_year_gains(log_values: np.ndarray, t: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """`local-trend`: per-year log gains [Y] from a [N, Y] sample of log radiance of pixels lit in every year:
    the scene's level in year y is the median over pixels of log x_y minus the pixel's mean over the years; the
    gain is that level minus its robust local trend. `fixed` years (real VIIRS) keep gain 0 and so anchor the
    level; without any, the gains are centred (geometric mean 1)."""
    gains = np.zeros(log_values.shape[1])
    if log_values.shape[1] < 3 or log_values.shape[0] == 0:
        return gains
    level = np.median(log_values - log_values.mean(axis=1, keepdims=True), axis=0)
    gains = np.where(fixed, 0.0, level - local_trend(np.asarray(t, np.float64), level))
    if not fixed.any():
        gains = gains - gains.mean()
    return gains


@dataclass(frozen=True)
class LevelInput:
    """One DMSP file of the series, as the `prior` fit needs it."""

    info: RasterInfo
    intercal: Intercalibration
    year: int
    reference: int | None  # index of its (nearest) reference in the references list; None without any


def prior_year_gains(
    files: list[LevelInput],
    references: list[tuple[RasterInfo, int]],
    grid: Grid,
    dmsp_years: list[int],
    fused_sums: np.ndarray,
    reference_sums: np.ndarray,
) -> tuple[np.ndarray, float, list[str]]:
    """`prior`: log gain of each DMSP year's map (divide the map by exp(gain)), the τ used, and notes.

    fused_sums: each DMSP year's sum of lights before the step; reference_sums: each reference's; both over
    the pixels valid in all of them, so that every level is of the same area."""
    notes: list[str] = []
    t, levels, n_sat = [], [], []
    for k, year in enumerate(dmsp_years):
        measured, count = [], 0
        for f in (f for f in files if f.year == year):
            count += 1
            change = None if f.reference is None else dmsp_scene_change(f.info, references[f.reference][0], grid, f.intercal)
            if change is not None:
                measured.append(change + math.log(reference_sums[f.reference]))
            elif f.reference is not None:
                notes.append(f"{year}: the DMSP's level could not be measured against its reference (nothing lit, or "
                             "over twentyfold change); the fused map's own level stands in.")  # fmt: skip
        t.append(year)
        levels.append(float(np.mean(measured)) if measured else math.log(fused_sums[k]))
        n_sat.append(len(measured) or count)
    t += [year for _, year in references]
    levels += [math.log(s) for s in reference_sums]
    is_viirs = np.array([False] * len(dmsp_years) + [True] * len(references))
    fused = np.concatenate([np.log(fused_sums), np.zeros(len(references))])
    gains, tau = prior_gains(np.array(t, np.float64), np.array(levels), fused, is_viirs, np.array(n_sat + [1] * len(references)))
    return gains[: len(dmsp_years)], tau, notes
