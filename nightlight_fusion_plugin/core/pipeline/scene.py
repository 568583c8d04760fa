"""What a run measures once over its whole area, before any window: the change prior at the gap between the DMSP
and the reference, the DMSP/reference agreement (correlation, scene-wide level; noted when they disagree), the
DMSP's scene gain, and for models that refine the traditional estimate its scene-wide part and the signed gap.
fuse() and pipeline/distributed (which hands the values to every block) both call these."""

from __future__ import annotations

import numpy as np

from ..sensor.intercalibration import parse_reference_year, parse_satellite_year


def scene_wide(request, job):
    """(change prior, DMSP/reference agreement), once on the whole area, tagged and noted ((None, None) without a
    reference): shared by fuse() and pipeline/distributed, which hands them to every block."""
    if job.viirs is None:
        return None, None
    prior = change_prior(request, job.result)
    return prior, note_reference_disagreement(job.dmsp, job.viirs, job.grid, job.intercal, job.result, prior)


def change_prior(request, result):
    """scene_gain's prior at the gap between the DMSP and the reference year (tagged): the request's explicit
    gap, else its years, else the years in the file names, else the prior's assumed gap."""
    from ..sensor.scene_gain import ChangePrior, reference_gap

    dmsp_year = request.year or parse_satellite_year(request.dmsp)[1]
    reference_year = request.reference_year or parse_reference_year(request.viirs)
    gap, source = reference_gap(dmsp_year, reference_year, request.reference_gap_years)
    prior = ChangePrior.load().at_gap(gap)
    result.tags["NLF_REFERENCE_GAP_YEARS"] = (
        f"{gap:g} ({source})" if gap is not None else f"{source}; the prior assumes {prior.gap_years:g} years"
    )
    return prior


def note_reference_disagreement(dmsp, viirs, grid, intercal, result, prior=None):
    """Tag how well the reference explains the DMSP (any model); a note when it hardly does (bad input)."""
    from ..methods.reference_change import CORRELATION_NOTE_BELOW, correlation_note, level_note, reference_dmsp_agreement
    from ..sensor.scene_gain import ChangePrior

    agreement = reference_dmsp_agreement(dmsp, viirs, grid, intercal)
    r = agreement.correlation
    result.tags["NLF_REFERENCE_DMSP_CORRELATION"] = "not measured (too few or uniform pixels)" if r is None else f"{r:.3f}"
    if agreement.log_gain is not None:
        result.tags["NLF_REFERENCE_DMSP_LOG_GAIN"] = f"{agreement.log_gain:.3f} over {agreement.pixels} DMSP pixels"
    if r is not None and r < CORRELATION_NOTE_BELOW:
        result.notes.append(correlation_note(r))
    # A scene-wide level beyond what a DMSP sensor and real change together explain (2.5σ of the prior): another
    # product, season or satellite-year. The bundled sample's ten years of growth are -1.07 (no note).
    prior = prior or ChangePrior.load()
    limit = 2.5 * float(np.hypot(prior.sigma_calibration, prior.sigma_change))
    if agreement.log_gain is not None and abs(agreement.log_gain) > limit:
        result.notes.append(level_note(agreement.log_gain, limit))
    return agreement


def scene_dmsp_gain(agreement, result, prior=None) -> float:
    """The scene-wide sensor correction for methods that read change against the reference (tagged, noted)."""
    from ..methods.reference_change import gain_notes
    from ..sensor.scene_gain import ChangePrior, dmsp_gain_correction

    prior = prior or ChangePrior.load()
    gain = dmsp_gain_correction(agreement, prior)
    result.tags["NLF_DMSP_SCENE_GAIN"] = f"{gain:.4f} (k={prior.calibration_share:.3f})"
    result.notes.extend(gain_notes(agreement, prior, gain) if agreement is not None else [])
    return gain


def construct_for(request, dmsp, viirs, grid, intercal, result, report, check_cancel, agreement=None, prior=None):
    """(SceneConstruct, signed gap) for a model that refines the traditional estimate (condition v3), measured once
    on the whole area: reference-change's scene-wide part with a reference (its fitted curve, scene gain and
    change weight at the gap), the fixed-curve baseline without one. Tagged; the gap's absence is noted."""
    from ..methods.construct import SceneConstruct
    from ..methods.reference_change import prepare_reference_change
    from ..sensor.calibration import default_curve

    if viirs is None:
        result.tags["NLF_TRADITIONAL_INPUT"] = "baseline (fixed DN->radiance curve, no reference)"
        return SceneConstruct(intercal, default_curve()), None
    method = prepare_reference_change(request, dmsp, viirs, grid, intercal, report, check_cancel, agreement, prior)
    construct = SceneConstruct(intercal, method.traditional.curve, method.dmsp_gain, method.change_weight)
    result.tags["NLF_TRADITIONAL_INPUT"] = (
        f"reference-change (scene gain {method.dmsp_gain:.4f}, change weight {method.change_weight:.4f}; "
        f"{method.traditional.curve.describe()})"
    )
    gap = signed_gap_years(request)
    result.tags["NLF_GAP_INPUT_YEARS"] = "unknown" if gap is None else f"{gap:+g}"
    if gap is None:
        result.notes.append(
            "The years of the DMSP and the reference are not known (file names, --year/--reference-year): the model "
            "ran with its 'unknown gap' input; give them for a gap-aware result."
        )
    return construct, gap


def signed_gap_years(request) -> float | None:
    """Reference year minus DMSP year: the request's explicit gap (signed; it wins, as for the prior: evaluation sets
    give it where the DMSP's year is its sensor's), else its years or the file names; None when nothing says."""
    if request.reference_gap_years is not None:
        return float(request.reference_gap_years)
    dmsp_year = request.year or parse_satellite_year(request.dmsp)[1]
    reference_year = request.reference_year or (parse_reference_year(request.viirs) if request.viirs else None)
    if dmsp_year and reference_year:
        return float(reference_year - dmsp_year)
    return None
