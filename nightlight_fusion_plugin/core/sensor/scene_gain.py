"""How much of the scene-wide level difference between the DMSP and its reference is the sensor, not the city.

The reference simulated to DMSP (core's calibrated sensor model) and the DMSP of the requested year differ by
real change *and* by how far the DMSP's sensor departs from the model: another gain, another saturation
level, another sensor model altogether. Locally the two are told apart by their pattern (a new district, a
dimmed port); scene-wide they are not: a DMSP 40 % darker than the simulation is a dimmer city or a dimmer
sensor. Read as change, a sensor gain darkens or brightens the whole fused map (measured: −0.35 to −0.6 in
log on the real-temporal scenes whose sensor lies outside the calibrated range, where the real scene-wide
change was within ±0.25).

So the scene-wide log gain g = median log((DNc + ε)/(DNsim + ε)) over lit, unsaturated DMSP pixels is split
the Gaussian way: g = calibration + change with prior spreads σ_cal and σ_change, and the expected
calibration part, k·g with k = σ_cal² / (σ_cal² + σ_change²), is divided out of the DMSP before the change is
read. σ_cal and σ_change are measured on training regions only (`python -m training.simulate change-prior`,
never the hold-out) and stored in data/reference_change_prior.json.

The same split holds pixel by pixel for reference-change: the local log ratio (scene median removed) is real
change plus sensor noise (another footprint, halo or response curve than the model's), so reference-change
raises the ratio to α = σ_local_change² / (σ_local_change² + σ_local_noise²), the Wiener weight, both spreads
measured by the same command.

Real change grows with the years between the DMSP and the reference (a random walk: σ_change = σ_one_year·√gap,
the one-year spread measured on Sudan's Feb 2023 ↔ Feb 2024 pairs), the sensor's share does not. So the split
depends on the gap (`ChangePrior.at_gap`): with a reference one year away, k = 0.62 of the level difference is
taken as the sensor; ten years away, 0.14. The gap is the request's (`reference_year`, or the explicit
`reference_gap_years`), else the years in the file names (`intercalibration.parse_reference_year`); when neither says, the prior's
assumed gap (5 years) stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError

PRIOR_JSON = Path(__file__).parent / "data" / "reference_change_prior.json"
MIN_PIXELS = 30  # fewer lit, unsaturated pixels on both sides: no scene-wide gain is measured
GAIN_EPSILON_DN = 0.5  # as reference_change.EPSILON_DN: dark against dark is no evidence
MIN_GAP_YEARS = 1.0  # the shortest gap the prior was measured on (annual and monthly composites a year apart)


@dataclass(frozen=True)
class Agreement:
    """How the DMSP and the reference simulated to DMSP agree over the output area (at DMSP resolution)."""

    correlation: float | None  # Pearson r of intercalibrated DN; None: too few or uniform pixels
    log_gain: float | None  # g above; None: fewer than MIN_PIXELS lit, unsaturated pixels
    pixels: int  # pixels g was measured on


@dataclass(frozen=True)
class ChangePrior:
    sigma_calibration: float  # spread of g from the sensor alone (no real change)
    sigma_change: float  # spread of real scene-wide log change between the DMSP and the reference dates
    source: str
    sigma_local_noise: float = 0.0  # spread of the local log ratio (scene median removed) from the sensor alone
    sigma_local_change: float = 1.0  # ... from real change
    sigma_change_one_year: float | None = None  # σ_change and σ_local_change for a one-year gap (None: fixed)
    sigma_local_change_one_year: float | None = None
    gap_years: float | None = None  # the gap σ_change and σ_local_change stand for

    @property
    def change_weight(self) -> float:
        """α: the Wiener weight of the local log ratio, σ_local_change² / (σ_local_change² + σ_local_noise²)."""
        c, n = self.sigma_local_change**2, self.sigma_local_noise**2
        return c / (c + n) if c + n > 0 else 1.0

    @property
    def calibration_share(self) -> float:
        """k: the share of a measured scene-wide log gain attributed to the sensor."""
        c, r = self.sigma_calibration**2, self.sigma_change**2
        return c / (c + r) if c + r > 0 else 0.0

    def at_gap(self, gap_years: float | None) -> ChangePrior:
        """This prior for a known gap between the DMSP and the reference (real change grows as √gap); itself when
        the gap is unknown or the prior has no one-year spreads."""
        if gap_years is None or self.sigma_change_one_year is None:
            return self
        gap = max(float(gap_years), MIN_GAP_YEARS)
        local = self.sigma_local_change_one_year
        return replace(
            self,
            sigma_change=self.sigma_change_one_year * gap**0.5,
            sigma_local_change=self.sigma_local_change if local is None else local * gap**0.5,
            gap_years=gap,
        )

    @classmethod
    def load(cls, path: Path = PRIOR_JSON) -> ChangePrior:
        payload = json.loads(path.read_text())
        return cls(
            float(payload["sigma_calibration"]),
            float(payload["sigma_change"]),
            payload.get("command", str(path)),
            float(payload.get("sigma_local_noise", 0.0)),
            float(payload.get("sigma_local_change", 1.0)),
            _optional_float(payload.get("sigma_change_one_year")),
            _optional_float(payload.get("sigma_local_change_one_year")),
            _optional_float(payload.get("assumed_gap_years")),
        )


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def reference_gap(
    dmsp_year: int | None, reference_year: int | None, explicit_gap: float | None = None
) -> tuple[float | None, str]:
    """Years between the DMSP and the reference (a magnitude: the prior does not care which came first), and where
    that came from (for the output's tags). explicit_gap may be signed (reference year - DMSP year)."""
    if explicit_gap is not None:
        if not np.isfinite(explicit_gap):
            raise InputError(f"The years between the DMSP and the reference must be a number, got {explicit_gap}.")
        return float(abs(explicit_gap)), "given"
    if dmsp_year is not None and reference_year is not None:
        return float(abs(reference_year - dmsp_year)), f"DMSP {dmsp_year}, reference {reference_year}"
    missing = "the DMSP year" if dmsp_year is None else "the reference year"
    return None, f"not known ({missing} is neither given nor in the file name)"


def measure_log_gain(
    dnc: np.ndarray, sim: np.ndarray, dn_raw: np.ndarray, sim_raw: np.ndarray, lit_dn: float, saturated_dn: float
) -> tuple[float | None, int]:
    """g over pixels lit on both sides (≥ lit_dn, intercalibrated) and saturated on neither (raw DN)."""
    ok = (
        np.isfinite(dnc)
        & np.isfinite(sim)
        & (dnc >= lit_dn)
        & (sim >= lit_dn)
        & (np.nan_to_num(dn_raw) < saturated_dn)
        & (sim_raw < saturated_dn)
    )
    n = int(ok.sum())
    if n < MIN_PIXELS:
        return None, n
    return float(np.median(np.log((dnc[ok] + GAIN_EPSILON_DN) / (sim[ok] + GAIN_EPSILON_DN)))), n


def dmsp_gain_correction(agreement: Agreement | None, prior: ChangePrior) -> float:
    """The factor the intercalibrated DMSP is multiplied by: exp(−k·g); 1 where g was not measured."""
    if agreement is None or agreement.log_gain is None:
        return 1.0
    return float(np.exp(-prior.calibration_share * agreement.log_gain))
