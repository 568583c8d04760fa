import json

import numpy as np
import pytest

from nightlight_fusion_plugin.core.sensor.calibration import DEFAULT_CURVE_JSON, default_curve, fit_radiance_curve


def _pairs(a=0.08, b=1.3, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    dn = rng.integers(0, 64, n).astype(np.float32)
    rad = np.where(dn > 0, a * np.maximum(dn, 1) ** b, 0.0) * rng.lognormal(0, 0.1, n)
    rad = np.where(dn == 0, rng.normal(-0.2, 0.05, n), rad)  # negative background is valid VIIRS
    return dn, rad


def test_fit_recovers_a_power_law():
    dn, rad = _pairs()
    curve = fit_radiance_curve(dn, dn, rad, "test")
    assert curve.b == pytest.approx(1.3, abs=0.05)
    lit = (dn > 0) & (dn < 62.5)
    assert curve.radiance(dn, dn)[lit].sum() == pytest.approx(rad[lit].sum(), rel=1e-4)  # sum of lights kept


def test_negative_background_is_kept_not_treated_as_nodata():
    dn, rad = _pairs()
    curve = fit_radiance_curve(dn, dn, rad, "test")
    assert curve.dark == pytest.approx(-0.2, abs=0.01)
    assert curve.radiance(np.array([0.0]), np.array([0.0]))[0] < 0


def test_saturated_pixels_get_the_saturated_level():
    dn, rad = _pairs()
    rad = np.where(dn >= 63, 150.0, rad)
    curve = fit_radiance_curve(dn, dn, rad, "test")
    assert curve.saturated == pytest.approx(150.0, rel=0.05)
    assert curve.radiance(np.array([63.0]), np.array([63.0]))[0] == pytest.approx(curve.saturated)


def test_too_few_lit_pixels_gives_no_fit():
    dn = np.zeros(1000, np.float32)
    dn[:10] = 5
    assert fit_radiance_curve(dn, dn, np.ones(1000), "test") is None


def test_default_curve_records_its_provenance():
    payload = json.loads(DEFAULT_CURVE_JSON.read_text())
    assert "athens" in payload["provenance"]["command"].lower() or "F18_2013" in payload["provenance"]["dmsp"]
    curve = default_curve()
    assert curve.radiance(np.array([30.0]), np.array([30.0]))[0] > curve.radiance(np.array([5.0]), np.array([5.0]))[0]
