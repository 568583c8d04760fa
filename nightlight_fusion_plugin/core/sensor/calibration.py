"""DMSP DN -> VIIRS radiance: the traditional calibration curve.

    radiance = dark                    where DNc == 0 (below the OLS detection limit)
    radiance = a · DNc^b               where 0 < DNc and the raw DN is below saturation
    radiance = saturated               where the raw DN is saturated (63)

With a VIIRS reference the curve is fitted on the overlap: b from a weighted least-squares fit of the
per-DN median log radiance against log DNc (medians, because single lit pixels with near-zero VIIRS
radiance would otherwise dominate the log fit), a so that the sum of lights over the lit pixels matches
VIIRS (sum of lights is what night-light studies aggregate), and `dark`/`saturated` as the mean
VIIRS radiance of the unlit/saturated pixels. Negative VIIRS radiance is valid background and is kept.
Without a reference the fixed curve in `data/default_radiance_curve.json` is used; it was fitted the
same way on real data (Athens DMSP F18 2013 against the 2017 mean of Greece VIIRS, `make default-curve`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .intercalibration import DN_SATURATED

DEFAULT_CURVE_JSON = Path(__file__).parent / "data" / "default_radiance_curve.json"
SATURATION_THRESHOLD = DN_SATURATED - 0.5  # raw DN after bilinear resampling
MIN_LIT_PAIRS = 50
MIN_SATURATED_PAIRS = 10


@dataclass(frozen=True)
class RadianceCurve:
    a: float
    b: float
    dark: float
    saturated: float
    source: str
    lit_pairs: int = 0

    def radiance(self, dnc: np.ndarray, dmsp_dn: np.ndarray) -> np.ndarray:
        """Radiance (nW/cm²/sr) from intercalibrated DN, with saturation judged on the raw DN."""
        dnc = np.asarray(dnc, dtype=np.float32)
        lit = np.float32(self.a) * np.power(np.maximum(dnc, 0.0), np.float32(self.b), dtype=np.float32)
        out = np.where(dnc > 0, lit, np.float32(self.dark))
        out = np.where(np.asarray(dmsp_dn) >= SATURATION_THRESHOLD, np.float32(self.saturated), out)
        return np.where(np.isnan(dnc), np.nan, out).astype(np.float32)

    def describe(self) -> str:
        return (
            f"radiance = {self.a:.4g}·DNc^{self.b:.4g} (DNc>0), {self.dark:.4g} at DN 0, "
            f"{self.saturated:.4g} where saturated; {self.source}"
        )

    def to_json(self, path: str | os.PathLike, provenance: dict | None = None) -> None:
        payload = {**asdict(self), "provenance": provenance or {}}
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> RadianceCurve:
        payload = json.loads(Path(path).read_text())
        payload.pop("provenance", None)
        return cls(**payload)


def default_curve() -> RadianceCurve:
    return RadianceCurve.from_json(DEFAULT_CURVE_JSON)


def fit_radiance_curve(dnc: np.ndarray, dmsp_dn: np.ndarray, viirs_radiance: np.ndarray, source: str) -> RadianceCurve | None:
    """Fit the curve on co-located samples; None when the overlap has too few lit pixels to fit."""
    dnc, dmsp_dn, rad = (np.asarray(x, dtype=np.float64).ravel() for x in (dnc, dmsp_dn, viirs_radiance))
    ok = np.isfinite(dnc) & np.isfinite(rad) & np.isfinite(dmsp_dn)
    dnc, dmsp_dn, rad = dnc[ok], dmsp_dn[ok], rad[ok]
    saturated = dmsp_dn >= SATURATION_THRESHOLD
    lit = (dnc > 0) & ~saturated
    positive = lit & (rad > 0)
    if positive.sum() < MIN_LIT_PAIRS:
        return None
    bins = np.rint(dnc[positive]).astype(int)
    levels = np.unique(bins)
    if levels.size < 3:
        return None
    log_rad = np.log(rad[positive])
    medians = np.array([np.median(log_rad[bins == level]) for level in levels])
    counts = np.array([(bins == level).sum() for level in levels], dtype=np.float64)
    b, _ = np.polyfit(np.log(np.maximum(levels, 0.5)), medians, 1, w=np.sqrt(counts))
    b = float(np.clip(b, 0.3, 5.0))
    # Sum-of-lights matching over all lit, unsaturated pixels (including those VIIRS sees as ~0).
    a = float(max(rad[lit].sum(), 1e-6) / np.power(dnc[lit], b).sum())
    dark = float(rad[dnc <= 0].mean()) if (dnc <= 0).any() else 0.0
    if saturated.sum() >= MIN_SATURATED_PAIRS:
        sat_level = float(rad[saturated].mean())
    else:
        sat_level = a * DN_SATURATED**b
    return RadianceCurve(a, b, dark, max(sat_level, a * DN_SATURATED**b), source, int(lit.sum()))
