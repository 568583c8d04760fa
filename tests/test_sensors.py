"""Physics of the sensor models (core/sensors.py)."""

import numpy as np
import pytest

from nightlight_fusion_plugin.core.sensor.sensors import (
    DmspParameters,
    ViirsParameters,
    aggregate,
    dmsp_blur,
    dmsp_digitise,
    dmsp_response,
    gaussian_blur,
    shift_image,
    simulate_dmsp,
    simulate_viirs,
)

PIXEL_KM = (0.40, 0.46)


def point_source(size=96, value=1000.0):
    image = np.zeros((size, size), np.float32)
    image[size // 2, size // 2] = value
    return image


def test_blur_conserves_total_light_before_quantisation():
    image = point_source()
    blurred = dmsp_blur(image, PIXEL_KM, DmspParameters())
    assert blurred.sum() == pytest.approx(image.sum(), rel=1e-4)
    assert blurred.max() < image.max() / 10  # and it really spreads
    assert aggregate(blurred).sum() * 4 == pytest.approx(image.sum(), rel=1e-4)  # 2×2 mean keeps the total


def test_blur_width_follows_the_footprint():
    narrow = dmsp_blur(point_source(), PIXEL_KM, DmspParameters(halo_weight=0.0, psf_fwhm_km=2.7))
    profile = narrow[48]
    fwhm_px = (profile > profile.max() / 2).sum()
    assert fwhm_px * PIXEL_KM[0] == pytest.approx(2.7, abs=0.8)


def test_saturation_at_63_in_bright_cores():
    params = DmspParameters()
    dn = dmsp_digitise(dmsp_response(np.array([1e3, 1e4, 5.0], np.float32), params), params)
    assert dn[0] == 63 and dn[1] == 63 and dn[2] < 63


def test_six_bit_quantisation():
    params = DmspParameters()
    dn = dmsp_digitise(dmsp_response(np.linspace(0, 200, 5000).astype(np.float32), params), params)
    assert dn.dtype == np.uint8 and dn.max() <= 63
    assert set(np.unique(dn)) <= set(range(64))


def test_background_removal_sets_dim_lights_to_zero():
    params = DmspParameters(detection_dn=6.0, satellite="F12", year=1999)
    reference_dn = np.array([2.0, 5.4, 6.0, 20.0], np.float32)
    assert dmsp_digitise(reference_dn, params).tolist() == [0, 0, 6, 20]


def test_satellite_gain_follows_the_elvidge_curves():
    params = DmspParameters()
    reference_dn = np.array([10.0, 30.0], np.float32)
    f10 = dmsp_digitise(reference_dn, params.with_satellite("F10", 1992))
    f18 = dmsp_digitise(reference_dn, params.with_satellite("F18", 2012))
    # F10 1992 has gain > 1 relative to F12 1999, so it records lower raw DN; F18 the opposite
    assert (f10 < reference_dn).all() and (f18 > reference_dn).all()


def test_geolocation_shift_moves_light_and_conserves_it():
    image = point_source()
    moved = shift_image(image, 3.0, -2.0)
    assert np.unravel_index(moved.argmax(), moved.shape) == (51, 46)
    assert moved.sum() == pytest.approx(image.sum(), rel=1e-4)


def test_dmsp_and_viirs_models_are_deterministic_for_a_seed():
    image = gaussian_blur(point_source(), (3, 3)) * 50
    a = simulate_dmsp(image, PIXEL_KM, DmspParameters(geolocation_sigma_km=0.5), np.random.default_rng(1))
    b = simulate_dmsp(image, PIXEL_KM, DmspParameters(geolocation_sigma_km=0.5), np.random.default_rng(1))
    assert a.shape == (48, 48) and np.array_equal(a, b)
    v1 = simulate_viirs(image, PIXEL_KM, ViirsParameters(), np.random.default_rng(2))
    v2 = simulate_viirs(image, PIXEL_KM, ViirsParameters(), np.random.default_rng(2))
    assert np.array_equal(v1, v2)


def test_viirs_noise_floor_and_negative_background():
    dark = np.zeros((200, 200), np.float32)
    params = ViirsParameters(outlier_rate=0.0)
    observed = simulate_viirs(dark, PIXEL_KM, params, np.random.default_rng(0))
    assert observed.mean() == pytest.approx(params.background_offset, abs=0.01)
    assert observed.std() == pytest.approx(params.noise_floor, rel=0.1)
    assert (observed < 0).mean() > 0.3  # slightly negative values are part of VIIRS composites


def test_calibrated_parameters_are_shipped_with_provenance():
    import json

    from nightlight_fusion_plugin.core.sensor.sensors import CALIBRATED_DMSP_JSON

    payload = json.loads(CALIBRATED_DMSP_JSON.read_text())
    assert payload["command"].startswith("python -m training.simulate calibrate")
    assert payload["after"]["pearson_r"] >= 0.92
    assert DmspParameters.calibrated().psf_fwhm_km == payload["parameters"]["psf_fwhm_km"]
