"""DMSP-OLS intercalibration (Elvidge et al. 2014): DNc = c0 + c1·DN + c2·DN².

DMSP-OLS has no on-board calibration, so DN from different satellites and years are not comparable.
Elvidge et al. fitted second-order polynomials that map each satellite-year onto the reference
F12 1999 (coefficients (0, 1, 0)); they ship as package data (`data/elvidge2014_dmsp_intercalibration.csv`).

Years without published coefficients (F18 2013, the last DMSP year, among them): the coefficients of the
nearest published year of the same satellite are used (F18 2013 -> F18 2012), since a sensor's gain
drifts slowly and F18 differs far more from F12 than from itself a year earlier. The choice is reported
in the result's `note` and in the output tags. An unknown satellite with a known year uses the newest
satellite flying that year; nothing known -> no intercalibration (identity), also reported.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError

COEFFICIENTS_CSV = Path(__file__).parent / "data" / "elvidge2014_dmsp_intercalibration.csv"
DN_SATURATED = 63.0


@dataclass(frozen=True)
class Intercalibration:
    c0: float
    c1: float
    c2: float
    satellite: str | None = None
    year: int | None = None
    note: str = ""

    def apply(self, dmsp_dn: np.ndarray) -> np.ndarray:
        """Intercalibrated DN. Unlit pixels (DN 0) stay 0 and results are clipped to 0–63 (the 6-bit range)."""
        dn = np.asarray(dmsp_dn, dtype=np.float32)
        dnc = self.c0 + self.c1 * dn + self.c2 * dn * dn
        dnc = np.clip(dnc, 0.0, DN_SATURATED)
        return np.where(dn > 0, dnc, np.where(np.isnan(dn), np.nan, 0.0)).astype(np.float32)

    def invert(self, dnc: np.ndarray) -> np.ndarray:
        """Raw DN that intercalibrates to `dnc` (the curves are monotone on 0–63): turns reference-scale DN
        into what a given satellite-year would have recorded."""
        raw = np.linspace(0.0, DN_SATURATED, 631, dtype=np.float64)
        forward = np.maximum.accumulate(self.c0 + self.c1 * raw + self.c2 * raw * raw)
        out = np.interp(np.asarray(dnc, dtype=np.float64), forward, raw)
        return np.where(np.asarray(dnc) > 0, out, 0.0).astype(np.float32)

    def describe(self) -> str:
        who = f"{self.satellite or '?'} {self.year or '?'}"
        text = f"Elvidge et al. 2014 intercalibration for {who}: DNc = {self.c0:g} {self.c1:+g}·DN {self.c2:+g}·DN²"
        return f"{text} ({self.note})" if self.note else text


IDENTITY = Intercalibration(0.0, 1.0, 0.0, note="no intercalibration (satellite and year unknown)")


@lru_cache(maxsize=1)
def published_coefficients() -> dict[tuple[str, int], tuple[float, float, float]]:
    with open(COEFFICIENTS_CSV, newline="") as fh:
        return {
            (row["satellite"].upper(), int(row["year"])): (float(row["c0"]), float(row["c1"]), float(row["c2"]))
            for row in csv.DictReader(fh)
        }


# NOAA names stable-lights files like F182013.v4c_web.stable_lights.avg_vis.tif; people also write F18_2013.
_SAT_YEAR = re.compile(r"(?<![A-Za-z0-9])F(1[0-8])[ _-]?((?:19|20)\d\d)(?!\d)", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)((?:199\d)|(?:20[01]\d))(?!\d)")
# A VIIRS year in a file name: 2010–2049 standing alone (viirs_2015_…, VNL_v21_npp_2016_…) or NASA's AYYYYDDD.
_VIIRS_YEAR = re.compile(r"(?<!\d)(20[1-4]\d)(?!\d)")
_NASA_YEAR = re.compile(r"(?<![A-Za-z0-9])A(20[1-4]\d)\d{3}(?!\d)")
_DATE_YEAR = re.compile(r"(?<!\d)(20[1-4]\d)[01]\d[0-3]\d(?!\d)")  # EOG monthlies: SVDNB_npp_20150101-20150131_…


def parse_satellite_year(name: str | os.PathLike) -> tuple[str | None, int | None]:
    """Guess (satellite, year) from a NOAA-style file name, e.g. 'F182013.v4c…' -> ('F18', 2013)."""
    base = os.path.basename(os.fspath(name))
    match = _SAT_YEAR.search(base)
    if match:
        return f"F{match.group(1)}", int(match.group(2))
    match = _YEAR.search(base)
    return None, (int(match.group(1)) if match else None)


def parse_reference_year(name: str | os.PathLike) -> int | None:
    """A VIIRS reference's year from its file name (viirs_2015_reference.tif, VNL_v21_npp_2016_global…,
    VNP46A3.A2023032…, SVDNB_npp_20150101-20150131…); None when the name has none or two different years."""
    base = os.path.basename(os.fspath(name))
    years = {int(y) for pattern in (_VIIRS_YEAR, _NASA_YEAR, _DATE_YEAR) for y in pattern.findall(base)}
    return years.pop() if len(years) == 1 else None


def intercalibration_for(satellite: str | None, year: int | None) -> Intercalibration:
    """The published coefficients for a satellite-year, with the documented fall-backs."""
    table = published_coefficients()
    if satellite is not None:
        satellite = satellite.strip().upper()
        if not re.fullmatch(r"F1[0-8]", satellite):
            raise InputError(f"Unknown DMSP satellite '{satellite}': use one of F10 … F18 (e.g. F18), or leave it empty.")
    if year is not None and not 1992 <= year <= 2013:
        raise InputError(f"DMSP-OLS stable lights exist for 1992–2013; got year {year}. Check the DMSP year.")
    if satellite and year and (satellite, year) in table:
        return Intercalibration(*table[(satellite, year)], satellite, year)
    if satellite:
        years = sorted(y for s, y in table if s == satellite)
        if not years:
            return Intercalibration(0.0, 1.0, 0.0, satellite, year, note=f"no published coefficients for {satellite}")
        if year is None:
            return Intercalibration(0.0, 1.0, 0.0, satellite, None, note="year unknown: no intercalibration")
        nearest = min(years, key=lambda y: (abs(y - year), -y))
        return Intercalibration(
            *table[(satellite, nearest)],
            satellite,
            year,
            note=f"no published coefficients for {satellite} {year}; using {satellite} {nearest}",
        )
    if year is not None:
        flying = sorted(s for s, y in table if y == year)
        if flying:
            chosen = flying[-1]
            note = (
                f"satellite unknown; {year} was flown by {', '.join(flying)}, using {chosen}"
                if len(flying) > 1
                else (f"satellite unknown; {year} was flown only by {chosen}")
            )
            return Intercalibration(*table[(chosen, year)], chosen, year, note=note)
        nearest_year = min({y for _, y in table}, key=lambda y: (abs(y - year), -y))
        chosen = sorted(s for s, y in table if y == nearest_year)[-1]
        found = intercalibration_for(chosen, year)
        return Intercalibration(found.c0, found.c1, found.c2, chosen, year, note=f"satellite unknown; {found.note}")
    return IDENTITY
