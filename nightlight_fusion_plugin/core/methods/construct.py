"""Construct, then refine: the traditional estimate that condition-v3 models take as an input and correct.

A condition-v3 model (engine/transforms.py) sees, beside the DMSP and the reference, the answer of the traditional
methods: `reference-change` where a reference exists, the calibrated `baseline` where it does not. Its target
("residual_traditional") is the correction to that estimate, so an all-zero output is the traditional answer and
the network only learns what the traditional method gets wrong.

The estimate has a scene-wide part (the DN->radiance curve, the DMSP's scene gain, the change weight at the gap:
`SceneConstruct`) and a local part (`traditional_estimate`, arrays read with a margin). A run computes the
scene-wide part once over the whole area, as `reference-change` does; training computes it over the tile it
simulates (`scene_construct_of_arrays`), through the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sensor.calibration import RadianceCurve, default_curve, fit_radiance_curve
from ..sensor.intercalibration import Intercalibration
from ..sensor.scene_gain import Agreement, ChangePrior, dmsp_gain_correction
from .baseline import TraditionalFusion
from .reference_change import ReferenceChangeFusion, agreement_of_arrays


@dataclass(frozen=True)
class SceneConstruct:
    """The scene-wide inputs of the traditional estimate (plain values: picklable for distributed blocks)."""

    intercal: Intercalibration
    curve: RadianceCurve  # fitted to the reference over the scene, or the fixed curve without one
    dmsp_gain: float = 1.0  # scene_gain.dmsp_gain_correction (with a reference)
    change_weight: float = 1.0  # ChangePrior.change_weight at the scene's gap

    def estimate(
        self,
        dn: np.ndarray,
        reference: np.ndarray | None,
        pixel_km: tuple[float, float],
        crop: tuple[slice, slice] | None = None,
    ) -> np.ndarray:
        """Radiance (nW/cm²/sr, NaN where the DMSP is nodata) for raw DMSP DN and the reference on the VIIRS grid,
        both read with a margin (`crop` selects the output; ReferenceChangeFusion.margin says how wide)."""
        crop = crop or (slice(None), slice(None))
        if reference is None:
            return TraditionalFusion(self.intercal, self.curve).predict(dn, None)[crop].astype(np.float32)
        method = ReferenceChangeFusion(self.intercal, self.dmsp_gain, self.change_weight)
        method.traditional.curve = self.curve
        return method.predict(dn, reference, pixel_km, crop)


def scene_construct(
    intercal: Intercalibration,
    curve: RadianceCurve,
    agreement: Agreement | None,
    prior: ChangePrior | None,
) -> SceneConstruct:
    """From what a run measured over its whole area (curve fitted by TraditionalFusion.prepare, agreement by
    reference_dmsp_agreement, the prior at the request's gap); agreement None: no reference."""
    if agreement is None:
        return SceneConstruct(intercal, curve)
    prior = prior or ChangePrior.load()
    return SceneConstruct(intercal, curve, dmsp_gain_correction(agreement, prior), prior.change_weight)


def scene_construct_of_arrays(
    dn_coarse: np.ndarray,
    dn_fine: np.ndarray,
    reference: np.ndarray | None,
    intercal: Intercalibration,
    pixel_km: tuple[float, float],
    gap_years: float | None,
    prior: ChangePrior | None = None,
) -> SceneConstruct:
    """The scene-wide part measured on arrays (a training tile): the curve fitted to the reference on the tile
    (the fixed curve when it cannot be fitted or there is no reference), the agreement of the DMSP at its own
    resolution (dn_coarse) with the reference, and the prior at |gap_years| (None: the prior's assumed gap)."""
    if reference is None:
        return SceneConstruct(intercal, default_curve())
    both = np.isfinite(dn_fine) & np.isfinite(reference)
    curve = fit_radiance_curve(intercal.apply(dn_fine[both]), dn_fine[both], reference[both], "the training tile")
    agreement = agreement_of_arrays(dn_coarse, reference, intercal, pixel_km)
    prior = (prior or ChangePrior.load()).at_gap(None if gap_years is None else abs(gap_years))
    return scene_construct(intercal, curve or default_curve(), agreement, prior)
