"""`reference-change`: the VIIRS reference scaled by the change the DMSP sees (a STARFM-like baseline).

    fine(t) = reference(t_ref) × ratio,   ratio = (DNc(t) + ε) / (DNsim + ε)   (clipped to RATIO_RANGE)

- DNc(t): the DMSP of the requested year, intercalibrated (Elvidge 2014, core/intercalibration.py) and warped
  to the reference's grid like the baseline does.
- DNsim: what the DMSP would have recorded of the reference: core's calibrated sensor model (sensors.py:
  footprint + blooming halo, saturating response, the satellite-year's gain, 6-bit digitising, stable-lights
  background removal), then intercalibrated the same way, so both sides sit on the F12 1999 DN scale.
- DNc(t) is first divided by the share of the scene-wide DMSP/simulation level difference that the prior
  attributes to the DMSP's sensor rather than to change (core/scene_gain.py): a sensor gain or saturation
  level unlike the model's otherwise reads as the whole city brightening or dimming.
- Both are smoothed with a Gaussian of the DMSP footprint (psf_fwhm_km) so that the ratio compares like with
  like (the simulation is made on the fine grid, the real DMSP is a bilinear warp of 30″ pixels) and single
  quantisation steps do not become pixel noise.
- The ratio is of DN, not of DN linearised to radiance through the inverse sensor response: on the bundled
  sample the DN ratio scored 31.6 dB psnr_log against the 2005 truth, the linearised one 26.9 dB (the inverse
  of the calibrated slope, 1/0.79, amplifies every DN difference); persistence scores 27.3 dB.
- ε = EPSILON_DN in DN, so dark against dark (0/0) gives ratio 1: no change evidence, the reference is kept.
- Saturated DMSP (raw DN ≥ 62.5 after the warp) on both sides carries no change evidence: ratio 1 there.
- Reference dark at the DMSP footprint (DNsim below the detection level) but DMSP(t) lit: new light the
  reference cannot place; a ratio over ~ε would only amplify background noise, so the output there blends to
  the traditional method's estimate (`baseline`: intercalibration + DN→radiance curve fitted to this
  reference), weighted by how dark the simulation is (weight 1 at DNsim = 0, 0 at the detection level).
- Reference nodata holes (and pixels outside it): the traditional estimate, never zeros taken as unlit; for the
  simulation around holes the hole is filled with that estimate too, so a hole does not look like a dark area.

Windowed like the baseline: blocks of the output grid, each read with a margin wide enough for the halo blur,
so memory does not grow with the area. Vectorised numpy, no randomness: the same inputs give the same bytes.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.windows import Window

from ..engine.models import REFERENCE_CHANGE
from ..errors import InputError
from ..raster.grids import AlignedReader, Grid, RasterInfo
from ..sensor.calibration import SATURATION_THRESHOLD
from ..sensor.intercalibration import Intercalibration
from ..sensor.scene_gain import Agreement, ChangePrior, dmsp_gain_correction, measure_log_gain
from ..sensor.sensors import (
    KM_PER_DEGREE,
    DmspParameters,
    aggregate,
    digitise,
    dmsp_blur,
    dmsp_response,
    fwhm_to_sigma,
    gaussian_blur,
    pixel_size_km,
)
from .baseline import TraditionalFusion

METHOD_ID = REFERENCE_CHANGE
RATIO_RANGE = (0.1, 10.0)  # beyond a tenfold change the reference's pattern no longer says where the light is
EPSILON_DN = 0.5  # in DN: 0/0 -> 1, and a lone quantisation step over darkness is not a tenfold change
CORRELATION_NOTE_BELOW = 0.7  # see reference_dmsp_agreement: real pairs ≥ 0.79, wrong references ≤ 0.56
CORRELATION_MAX_PIXELS = 512  # per side of the coarse grid the correlation is computed on (decimated beyond)


def sensor_parameters() -> DmspParameters:
    return DmspParameters.calibrated()


def grid_pixel_km(grid: Grid, row: float) -> tuple[float, float]:
    """(dx, dy) in km of the grid's pixels at a row (geographic: at that latitude; projected: metres)."""
    a, e = abs(grid.transform.a), abs(grid.transform.e)
    if grid.crs.is_geographic:
        latitude = grid.transform.f + grid.transform.e * row
        dx = pixel_size_km(latitude, a)[0]
        return dx, e * KM_PER_DEGREE
    factor = grid.crs.linear_units_factor[1] / 1000.0 if grid.crs.linear_units_factor else 0.001
    return a * factor, e * factor


def expanded(grid: Grid, margin: int) -> Grid:
    return Grid(
        grid.crs, grid.transform * Affine.translation(-margin, -margin), grid.width + 2 * margin, grid.height + 2 * margin
    )


class ReferenceChangeFusion:
    """fine(t) = reference × ratio of DMSP(t) to the reference simulated to DMSP; falls back to `baseline`."""

    model_id = METHOD_ID

    def __init__(self, intercalibration: Intercalibration, dmsp_gain: float = 1.0, change_weight: float = 1.0):
        self.intercalibration = intercalibration
        self.dmsp_gain = dmsp_gain  # scene_gain.dmsp_gain_correction: the sensor's share of the level difference
        self.change_weight = change_weight  # exponent of the local ratio (scene_gain.ChangePrior.change_weight)
        self.params = sensor_parameters()
        self.traditional = TraditionalFusion(intercalibration)
        self.notes: list[str] = []
        self.fallback_pixels = 0
        self.valid_pixels = 0

    def margin(self, grid: Grid) -> int:
        """Pixels of context each block needs: 4σ of the halo plus 4σ of the footprint smoothing, at the
        grid's smallest pixel (the latitude farthest from the equator)."""
        dx = min(grid_pixel_km(grid, 0)[0], grid_pixel_km(grid, grid.height)[0])
        dy = grid_pixel_km(grid, 0)[1]
        smallest = max(min(dx, dy), 1e-6)
        sigma = fwhm_to_sigma(self.params.halo_fwhm_km) + fwhm_to_sigma(self.params.psf_fwhm_km)
        return int(math.ceil(4 * sigma / smallest)) + 2

    def change_fields(self, dn: np.ndarray, reference: np.ndarray, pixel_km: tuple[float, float]) -> dict[str, np.ndarray]:
        """The arrays the change is read from (dn: raw DMSP warped; reference: radiance; both with a margin):
        DNc(t) and DNsim smoothed at the DMSP footprint, the raw simulated DN, the traditional estimate, the
        reference with its holes filled by that estimate, and where reference and DMSP are valid."""
        params = self.params
        base = self.traditional.predict(dn, None)
        has_ref = np.isfinite(reference)
        filled = np.where(has_ref, reference, base)  # holes: the traditional estimate, never "unlit"
        filled = np.where(np.isfinite(filled), filled, 0.0).astype(np.float32)
        sim_raw = digitise(dmsp_response(dmsp_blur(filled, pixel_km, params), params), self.intercalibration, params)
        sim = self.intercalibration.apply(sim_raw)
        dnc = self.intercalibration.apply(dn) * np.float32(self.dmsp_gain)
        has_dmsp = np.isfinite(dnc)
        sigma = fwhm_to_sigma(params.psf_fwhm_km)
        blur_sigma = (sigma / pixel_km[0], sigma / pixel_km[1])
        # Normalised convolution: DMSP nodata neither darkens nor brightens its neighbours.
        weight = gaussian_blur(has_dmsp.astype(np.float32), blur_sigma)
        dnc_s = gaussian_blur(np.where(has_dmsp, dnc, 0.0), blur_sigma) / np.maximum(weight, 1e-6)
        sim_s = np.maximum(gaussian_blur(sim, blur_sigma), 0.0)
        return {
            "base": base, "filled": filled, "has_ref": has_ref, "has_dmsp": has_dmsp,
            "sim_raw": sim_raw, "dnc_s": dnc_s, "sim_s": sim_s,
        }  # fmt: skip

    def detect_dn(self) -> float:
        """The detection level in intercalibrated DN (below it the stable lights are 0)."""
        return max(float(self.intercalibration.apply(np.float32(self.params.detection_dn))), EPSILON_DN)

    def predict(
        self, dn: np.ndarray, reference: np.ndarray, pixel_km: tuple[float, float], crop: tuple[slice, slice]
    ) -> np.ndarray:
        """Output for the block `crop` of arrays read with a margin (dn: raw DMSP warped; reference: radiance)."""
        f = self.change_fields(dn, reference, pixel_km)
        base, filled, has_ref, has_dmsp, dnc_s, sim_s = (
            f["base"], f["filled"], f["has_ref"], f["has_dmsp"], f["dnc_s"], f["sim_s"]
        )  # fmt: skip
        ratio = np.clip((dnc_s + EPSILON_DN) / (sim_s + EPSILON_DN), *RATIO_RANGE)
        # The local log ratio is change plus sensor noise (another footprint, halo, response): shrunk by the
        # prior's Wiener weight (scene_gain.ChangePrior.change_weight), 1 = read it as all change.
        ratio = ratio ** np.float32(self.change_weight)
        both_saturated = (dn >= SATURATION_THRESHOLD) & (f["sim_raw"] >= SATURATION_THRESHOLD)
        ratio = np.where(both_saturated, 1.0, ratio)
        # New light over a reference that is dark at the DMSP footprint: blend to the traditional estimate.
        new_light = dnc_s > sim_s + EPSILON_DN
        trust = np.where(new_light, np.clip(sim_s / self.detect_dn(), 0.0, 1.0), 1.0)
        out = trust * filled * ratio + (1.0 - trust) * np.nan_to_num(base)
        out = np.where(has_ref, out, base)  # inside holes: the traditional estimate as it is
        out = np.where(has_dmsp, out, np.nan).astype(np.float32)
        out, has_ref, trust, has_dmsp = out[crop], has_ref[crop], trust[crop], has_dmsp[crop]
        self.valid_pixels += int(has_dmsp.sum())
        self.fallback_pixels += int((has_dmsp & (~has_ref | (trust < 0.5))).sum())
        return out

    def tags(self) -> dict[str, str]:
        return {
            **self.traditional.tags(),
            "NLF_REFERENCE_CHANGE": (
                f"reference × (DNc+{EPSILON_DN:g})/(DNsim+{EPSILON_DN:g}), both smoothed at the "
                f"{self.params.psf_fwhm_km:.3g} km DMSP footprint, ratio clipped to {RATIO_RANGE[0]:g}–{RATIO_RANGE[1]:g}, "
                f"1 where both saturated; DNc × {self.dmsp_gain:.3f} (the sensor's share of the scene-wide gain), "
                f"ratio^{self.change_weight:.3f} (the change's share of the local log ratio); "
                "traditional estimate in reference holes and where new light falls on a dark reference"
            ),
            "NLF_DMSP_SENSOR": repr(self.params.to_dict()),
            "NLF_DMSP_SCENE_GAIN": f"{self.dmsp_gain:.4f}",
            "NLF_CHANGE_WEIGHT": f"{self.change_weight:.4f}",
        }


def prepare_reference_change(
    request,
    dmsp: RasterInfo,
    viirs: RasterInfo | None,
    grid: Grid,
    intercal: Intercalibration,
    report: Callable[[float, str], None],
    check_cancel: Callable[[], None],
    agreement: Agreement | None = None,
    prior: ChangePrior | None = None,
) -> ReferenceChangeFusion:
    """The scene-wide part, once on the whole area: the sensor's share of the level difference, the change weight,
    and the fallback curve (one windowed pass, as the baseline). `agreement`: reference_dmsp_agreement's result
    when the caller has it already (measured here otherwise). The blocks of a distributed run get this method."""
    if viirs is None:
        raise InputError(
            "The reference-change model scales a VIIRS reference by the change the DMSP sees, so it needs a "
            "VIIRS reference: give one (--viirs / VIIRS), or choose another model (e.g. --model baseline)."
        )
    if agreement is None:
        agreement = reference_dmsp_agreement(dmsp, viirs, grid, intercal)
    prior = prior or ChangePrior.load()
    method = ReferenceChangeFusion(intercal, dmsp_gain_correction(agreement, prior), prior.change_weight)
    method.notes.extend(gain_notes(agreement, prior, method.dmsp_gain))
    resampling = Resampling[request.dmsp_resampling]
    with AlignedReader(dmsp, grid, resampling) as dmsp_reader, AlignedReader(viirs, grid, Resampling.nearest) as viirs_reader:
        method.traditional.prepare(
            dmsp_reader,
            viirs_reader,
            grid,
            request.block_size,
            lambda f: report(0.3 * f, "Fitting the calibration"),
            check_cancel,
        )
    method.notes.extend(method.traditional.notes)
    return method


def predict_window(
    method: ReferenceChangeFusion, dmsp_reader: AlignedReader, viirs_reader: AlignedReader, grid: Grid, window: Window
) -> np.ndarray:
    """Output for one of the grid's windows (grid.blocks of the request's block size), the readers on
    expanded(grid, method.margin(grid)): the unit of work of fuse() and of every distributed block alike."""
    margin = method.margin(grid)
    read = Window(window.col_off, window.row_off, window.width + 2 * margin, window.height + 2 * margin)
    crop = (slice(margin, margin + window.height), slice(margin, margin + window.width))
    pixel_km = grid_pixel_km(grid, window.row_off + window.height / 2)
    return method.predict(dmsp_reader.read(read), viirs_reader.read(read), pixel_km, crop)


def closing_notes(method: ReferenceChangeFusion) -> list[str]:
    """The fallback share (from the method's pixel counts) and the fallback curve."""
    notes = []
    if method.valid_pixels:
        share = 100.0 * method.fallback_pixels / method.valid_pixels
        notes.append(
            f"reference-change: the traditional estimate was used on {share:.1f} % of the pixels "
            "(reference holes, or new light where the reference is dark)"
        )
    return notes + [f"Calibration (fallback): {method.traditional.curve.describe()}"]


def run_reference_change(
    request,
    dmsp: RasterInfo,
    viirs: RasterInfo | None,
    grid: Grid,
    intercal: Intercalibration,
    writer_factory: Callable,
    report: Callable[[float, str], None],
    check_cancel: Callable[[], None],
    mask=None,
    agreement: Agreement | None = None,
    prior: ChangePrior | None = None,
) -> ReferenceChangeFusion:
    """prepare_reference_change, then write block by block."""
    method = prepare_reference_change(request, dmsp, viirs, grid, intercal, report, check_cancel, agreement, prior)
    resampling = Resampling[request.dmsp_resampling]
    wide = expanded(grid, method.margin(grid))
    total = grid.block_count(request.block_size)
    with (
        AlignedReader(dmsp, wide, resampling) as dmsp_reader,
        AlignedReader(viirs, wide, Resampling.nearest) as viirs_reader,
        writer_factory(method.tags()) as writer,
    ):
        for i, window in enumerate(grid.blocks(request.block_size)):
            check_cancel()
            values = predict_window(method, dmsp_reader, viirs_reader, grid, window)
            writer.write(mask.apply(values, window) if mask is not None else values, window)
            report(0.3 + 0.65 * (i + 1) / total, f"Block {i + 1}/{total}")
        check_cancel()
        report(0.95, "Building overviews")
        writer.finish()
    method.notes.extend(closing_notes(method))
    return method


def reference_dmsp_correlation(dmsp: RasterInfo, viirs: RasterInfo, grid: Grid, intercal: Intercalibration) -> float | None:
    """reference_dmsp_agreement's correlation."""
    return reference_dmsp_agreement(dmsp, viirs, grid, intercal).correlation


def gain_notes(agreement: Agreement, prior: ChangePrior, correction: float) -> list[str]:
    """A note when the scene-wide level difference is large (over 25 %) and part of it was corrected."""
    if agreement.log_gain is None or abs(agreement.log_gain) < np.log(1.25) or correction == 1.0:
        return []
    level = 100.0 * (np.exp(agreement.log_gain) - 1.0)
    return [
        f"Over the whole area the DMSP is {abs(level):.0f} % {'brighter' if level > 0 else 'darker'} than the "
        f"reference simulated to DMSP; {100 * prior.calibration_share:.0f} % of that level difference (in log) was "
        "taken as the DMSP's sensor and calibration, not as change (scene-wide prior, core/scene_gain.py, "
        f"{_gap_words(prior)}): the DMSP was scaled by {correction:.2f} before the change was read."
    ]


def _gap_words(prior: ChangePrior) -> str:
    if prior.gap_years is None:
        return "the years between DMSP and reference not known"
    return f"for DMSP and reference {prior.gap_years:g} years apart"


def reference_dmsp_agreement(dmsp: RasterInfo, viirs: RasterInfo, grid: Grid, intercal: Intercalibration) -> Agreement:
    """Pearson r and the scene-wide log gain between the intercalibrated DMSP and the reference simulated to DMSP,
    over the output area at DMSP resolution
    (coarser, decimated, where the area is more than CORRELATION_MAX_PIXELS DMSP pixels wide).
    r is None where it cannot be measured (too few pixels, or one side constant, e.g. all dark).

    A low r says the reference shows another light pattern than the DMSP: another season or product, a year
    far from the DMSP's, or the wrong area. Measured: real pairs 0.79–0.96 (Athens F18 2013 against each of the
    twelve 2017 Greece VIIRS monthlies 0.94–0.96; São Tomé 1992 against VIIRS 2014-01 0.79; the bundled
    sample 0.87), wrong references 0.12–0.45 (Greece flipped upside-down 0.12, shifted 0.25° 0.45, 0.5° 0.11;
    the sample's reference flipped 0.31; the real-temporal scenes 0.86–0.99 with their real reference 1–9 years
    away, including DMSP sensors outside the calibrated range, and 0.53–0.56 with the Mumbai clip's reference
    upside down: `python -m training.report`'s bad-reference table); the note threshold CORRELATION_NOTE_BELOW
    sits in between.
    The log gain (scene_gain.measure_log_gain) is measured on the same coarse pixels."""
    params = sensor_parameters()
    dmsp_px = _dmsp_pixel_in(dmsp, grid)
    factor = max(1.0, dmsp_px / abs(grid.transform.a))
    coarse_w, coarse_h = grid.width / factor, grid.height / factor
    factor *= max(1.0, max(coarse_w, coarse_h) / CORRELATION_MAX_PIXELS)
    width, height = max(1, int(grid.width / factor)), max(1, int(grid.height / factor))
    coarse = Grid(grid.crs, grid.transform * Affine.scale(grid.width / width, grid.height / height), width, height)
    fine = Grid(grid.crs, coarse.transform * Affine.scale(0.5), 2 * width, 2 * height)
    with AlignedReader(dmsp, coarse, Resampling.average) as reader:
        dn = reader.read(Window(0, 0, width, height))
    with AlignedReader(viirs, fine, Resampling.average) as reader:
        radiance = reader.read(Window(0, 0, 2 * width, 2 * height))
    return agreement_of_arrays(dn, radiance, intercal, grid_pixel_km(fine, fine.height / 2), params)


def agreement_of_arrays(
    dn: np.ndarray, radiance: np.ndarray, intercal: Intercalibration, pixel_km: tuple[float, float], params=None
) -> Agreement:
    """reference_dmsp_agreement on arrays: raw DMSP DN at DMSP resolution and the reference radiance on a grid of
    half its pixel size (pixel_km: of that fine grid). Training measures a tile's agreement with it."""
    params = params or sensor_parameters()
    observed = aggregate(np.isfinite(radiance).astype(np.float32))
    blurred = aggregate(dmsp_blur(radiance, pixel_km, params))
    sim_raw = digitise(dmsp_response(blurred, params), intercal, params)
    sim = intercal.apply(sim_raw)
    dnc = intercal.apply(dn)
    h, w = min(sim.shape[0], dnc.shape[0]), min(sim.shape[1], dnc.shape[1])
    sim, sim_raw, dnc, dn, observed = sim[:h, :w], sim_raw[:h, :w], dnc[:h, :w], dn[:h, :w], observed[:h, :w]
    ok = np.isfinite(dnc) & np.isfinite(sim) & (observed >= 0.5)
    lit = max(float(intercal.apply(np.float32(params.detection_dn))), EPSILON_DN)
    log_gain, pixels = measure_log_gain(
        np.where(ok, dnc, np.nan), sim, dn, sim_raw, lit, SATURATION_THRESHOLD
    )
    if ok.sum() < 30:
        return Agreement(None, log_gain, pixels)
    a, b = dnc[ok].astype(np.float64), sim[ok].astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return Agreement(None, log_gain, pixels)
    return Agreement(float(np.corrcoef(a, b)[0, 1]), log_gain, pixels)


def level_note(log_gain: float, limit: float) -> str:
    level = 100.0 * (np.exp(log_gain) - 1.0)
    return (
        f"The VIIRS reference disagrees strongly with the DMSP in level: over the whole area the DMSP is "
        f"{abs(level):.0f} % {'brighter' if level > 0 else 'darker'} than the reference simulated to DMSP, more "
        f"than DMSP sensors and real change together explain (a factor {np.exp(limit):.1f}, 2.5 times their measured "
        "spread, core/scene_gain.py): the reference "
        "may be of another product or season (monthly vs annual, VNL vs Black Marble), or the DMSP's satellite and "
        "year may be wrong; compare with a run without the reference."
    )


def correlation_note(r: float) -> str:
    return (
        f"The VIIRS reference disagrees strongly with the DMSP (correlation r={r:.2f} between the DMSP and the "
        "reference simulated to DMSP): it may be of another season, product or a year far from the DMSP year; "
        "compare with a run without the reference."
    )


def _dmsp_pixel_in(dmsp: RasterInfo, grid: Grid) -> float:
    """The DMSP pixel width in the grid's CRS units (bounds-based where the CRSs differ)."""
    if dmsp.crs == grid.crs:
        return abs(dmsp.transform.a)
    left, _, right, _ = dmsp.bounds_in(grid.crs)
    return abs(right - left) / max(dmsp.width, 1)
