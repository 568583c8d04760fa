"""Sensor parameters drawn around the calibrated values, so models learn to expect real sensors' spread.

`spread` scales every range: 1.0 is the training distribution; the robustness hold-out of the design-space
study uses `outside_training_range`, which draws beyond it (wider PSF and halo, other gain curves, higher
detection threshold, larger geolocation error) so models are tested on sensors they never saw.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nightlight_fusion_plugin.core.sensor.intercalibration import published_coefficients
from nightlight_fusion_plugin.core.sensor.sensors import DmspParameters, ViirsParameters

# (parameter, relative half-width of the training range); multiplicative, around the calibrated value
DMSP_SPREAD = {
    "psf_fwhm_km": 0.15,
    "halo_fwhm_km": 0.25,
    "halo_weight": 0.3,
    "amplitude_dn": 0.1,
    "half_saturation": 0.3,
    "slope": 0.15,
}
DETECTION_DN_RANGE = (1.0, 5.0)
GEOLOCATION_KM_RANGE = (0.0, 0.8)


def satellites_flying(year: int) -> list[str]:
    """DMSP satellites with published coefficients in a year (2013: F18, whose 2012 values are used)."""
    table = published_coefficients()
    flying = sorted(s for s, y in table if y == year)
    return flying or ["F18"]


def random_dmsp_parameters(
    rng: np.random.Generator, year: int, base: DmspParameters | None = None, spread: float = 1.0
) -> DmspParameters:
    base = base or DmspParameters.calibrated()
    values = {
        name: getattr(base, name) * float(np.exp(rng.uniform(-1, 1) * width * spread)) for name, width in DMSP_SPREAD.items()
    }
    values["halo_weight"] = min(values["halo_weight"], 0.9)
    lo, hi = DETECTION_DN_RANGE
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * spread
    values["detection_dn"] = float(np.clip(rng.uniform(mid - half, mid + half), 0.0, 20.0))
    values["geolocation_sigma_km"] = float(rng.uniform(0.0, GEOLOCATION_KM_RANGE[1] * spread))
    satellite = str(rng.choice(satellites_flying(year)))
    return replace(base, satellite=satellite, year=year, **values)


def outside_training_range(rng: np.random.Generator, year: int, base: DmspParameters | None = None) -> DmspParameters:
    """Parameters beyond the training spread in every varied direction (robustness hold-out)."""
    base = base or DmspParameters.calibrated()
    values = {}
    for name, width in DMSP_SPREAD.items():
        sign = rng.choice([-1.0, 1.0])
        values[name] = getattr(base, name) * float(np.exp(sign * width * rng.uniform(1.3, 1.8)))
    values["halo_weight"] = min(values["halo_weight"], 0.9)
    values["detection_dn"] = float(rng.uniform(DETECTION_DN_RANGE[1] + 1, DETECTION_DN_RANGE[1] + 4))
    values["geolocation_sigma_km"] = float(rng.uniform(1.0, 1.5))
    return replace(base, satellite=str(rng.choice(satellites_flying(year))), year=year, **values)


def random_viirs_parameters(rng: np.random.Generator, spread: float = 1.0) -> ViirsParameters:
    base = ViirsParameters()
    return replace(
        base,
        noise_floor=base.noise_floor * float(np.exp(rng.uniform(-0.5, 0.5) * spread)),
        background_offset=base.background_offset * float(rng.uniform(0.0, 2.0)),
    )
