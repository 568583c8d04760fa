import numpy as np
import pytest

from nightlight_fusion_plugin.core.errors import InputError
from nightlight_fusion_plugin.core.sensor.intercalibration import (
    intercalibration_for,
    parse_satellite_year,
    published_coefficients,
)


def test_published_table_is_shipped_and_complete():
    table = published_coefficients()
    assert len(table) == 33
    assert table[("F12", 1999)] == (0.0, 1.0, 0.0)  # the reference satellite-year
    assert table[("F18", 2012)] == (1.875, 0.6203, 0.0052)


def test_quadratic_applied_to_lit_pixels_zero_and_nan_kept():
    ic = intercalibration_for("F10", 1992)
    dn = np.array([0.0, 10.0, 40.0, np.nan], dtype=np.float32)
    out = ic.apply(dn)
    expected = -2.057 + 1.5903 * 10 - 0.009 * 100
    assert out[0] == 0.0 and np.isnan(out[3])
    assert out[1] == pytest.approx(expected, rel=1e-5)
    assert out[2] <= 63.0  # clipped to the 6-bit range


def test_year_without_coefficients_uses_nearest_year_of_same_satellite():
    ic = intercalibration_for("F18", 2013)
    assert (ic.c0, ic.c1, ic.c2) == (1.875, 0.6203, 0.0052)
    assert "F18 2012" in ic.note


def test_satellite_inferred_from_year_and_identity_when_unknown():
    assert intercalibration_for(None, 1992).satellite == "F10"
    assert intercalibration_for(None, 2013).satellite == "F18"
    identity = intercalibration_for(None, None)
    assert (identity.c0, identity.c1, identity.c2) == (0.0, 1.0, 0.0)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("F182013.v4c_web.stable_lights.avg_vis.tif", ("F18", 2013)),
        ("dmsp_F15_2005_sample.tif", ("F15", 2005)),
        ("dmsp_1992_stable_lights.tif", (None, 1992)),
        ("lights.tif", (None, None)),
    ],
)
def test_parse_noaa_names(name, expected):
    assert parse_satellite_year(name) == expected


def test_invert_round_trips():
    ic = intercalibration_for("F15", 2005)
    dnc = np.array([0.0, 5.0, 20.0, 50.0], dtype=np.float32)
    assert np.allclose(ic.apply(ic.invert(dnc)), dnc, atol=0.05)


def test_bad_satellite_and_year_are_explained():
    with pytest.raises(InputError, match="F10 … F18"):
        intercalibration_for("X99", 2000)
    with pytest.raises(InputError, match="1992–2013"):
        intercalibration_for("F18", 2019)
