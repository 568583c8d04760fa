"""The harness's metrics against scikit-image's reference implementations (test-only oracle)."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nightlight_fusion_plugin.core.report.metrics import LOG_DATA_RANGE, all_metrics, psnr_log, ssim_log


def _pair(seed=0, shape=(64, 80)):
    rng = np.random.default_rng(seed)
    truth = np.exp(rng.normal(0, 1.5, shape)).astype(np.float32)
    prediction = np.clip(truth * rng.lognormal(0, 0.3, shape), 0, None).astype(np.float32)
    return prediction, truth


def test_psnr_matches_scikit_image_with_the_fixed_data_range():
    p, t = _pair()
    expected = peak_signal_noise_ratio(np.log1p(t), np.log1p(p), data_range=LOG_DATA_RANGE)
    assert psnr_log(p, t) == pytest.approx(expected, rel=1e-6)


def test_ssim_matches_scikit_image():
    p, t = _pair(1)
    expected = structural_similarity(np.log1p(t).astype(np.float64), np.log1p(p).astype(np.float64), data_range=LOG_DATA_RANGE)
    assert ssim_log(p, t) == pytest.approx(expected, abs=1e-6)


def test_flare_beyond_the_clip_does_not_move_psnr():
    p, t = _pair(2)
    t2, p2 = t.copy(), p.copy()
    t2[5, 5], p2[5, 5] = 5000.0, 3000.0  # both above the 1000 nW clip
    t[5, 5], p[5, 5] = 1000.0, 1000.0
    assert psnr_log(p2, t2) == pytest.approx(psnr_log(p, t))


def test_saturated_core_errors_and_nodata():
    p, t = _pair(3)
    p[0, :] = np.nan
    mask = np.zeros_like(t, bool)
    mask[10:20, 10:20] = True
    scores = all_metrics(p, t, saturated=mask)
    assert scores["pixels"] == t.size - t.shape[1] and scores["saturated_pixels"] == 100
    assert np.isfinite(scores["saturated_rmse"]) and np.isfinite(scores["ssim_log"])


def test_bright_errors_catch_squashed_cores():
    p, t = _pair(4, (100, 100))
    squashed = t.copy()
    top = t >= np.quantile(t, 0.99)
    squashed[top] *= 0.5  # the brightest 1 % at half their light, the rest exact
    from nightlight_fusion_plugin.core.report.metrics import bright_errors

    errors = bright_errors(squashed, t)
    assert errors["bright_sum_error"] == pytest.approx(-0.5, abs=1e-6)
    assert bright_errors(t, t)["bright_sum_error"] == 0.0


def test_pooled_metrics_weigh_scenes_by_their_light():
    from nightlight_fusion_plugin.core.report.metrics import pooled_metrics

    bright = np.full((10, 10), 100.0)
    dark = np.full((10, 10), 0.01)
    # the dark scene is 5x too bright: a mean of per-scene ratios says +200 %, the region's map is 0.04 % off
    prediction = np.concatenate([bright.ravel(), (5 * dark).ravel()])
    truth = np.concatenate([bright.ravel(), dark.ravel()])
    per_scene = np.mean([all_metrics(bright, bright)["sum_of_lights_error"], all_metrics(5 * dark, dark)["sum_of_lights_error"]])
    pooled = pooled_metrics(prediction, truth)
    assert per_scene == pytest.approx(2.0)
    assert pooled["sum_of_lights_error"] == pytest.approx(0.04 / 100.01, rel=1e-6)
    prediction[3] = np.nan  # nodata is left out, not counted as dark
    assert pooled_metrics(prediction, truth)["pixels"] == truth.size - 1


def test_scene_sums_do_not_cancel_between_the_two_directions_of_a_pair():
    from nightlight_fusion_plugin.core.report.metrics import pooled_metrics, scene_sum_of_lights_error

    year_a, year_b = np.full((4, 4), 10.0), np.full((4, 4), 12.0)
    # persistence on a->b and b->a: each scene's map is the other year; the signed pooled error is exactly 0
    predictions, truths = [year_a, year_b], [year_b, year_a]
    signed = pooled_metrics(np.concatenate([p.ravel() for p in predictions]), np.concatenate([t.ravel() for t in truths]))
    assert signed["sum_of_lights_error"] == 0.0
    assert scene_sum_of_lights_error(predictions, truths) == pytest.approx((32 + 32) / (16 * 22))
    hole = year_a.copy()
    hole[0, 0] = np.nan  # nodata in a scene leaves that pixel out of both sums
    assert scene_sum_of_lights_error([hole], [year_a]) == 0.0


def test_the_detail_metric_pools_power_over_scenes_and_sees_blur():
    from scipy.ndimage import gaussian_filter

    from nightlight_fusion_plugin.core.report.metrics import high_frequency_power, high_frequency_ratio
    from training.evaluate import pooled_detail

    rng = np.random.default_rng(0)
    truth = np.exp(rng.normal(0, 1.5, (64, 64)))
    blurred = gaussian_filter(truth, 2.0)
    assert high_frequency_ratio(truth, truth) == pytest.approx(1.0)
    assert high_frequency_ratio(blurred, truth) < 0.3
    sharp, blur = high_frequency_power(truth, truth), high_frequency_power(blurred, truth)
    pooled = pooled_detail([(*sharp, 0.9, 100), (*blur, float("nan"), 10)])
    assert pooled["set_high_frequency_ratio"] == pytest.approx((sharp[0] + blur[0]) / (sharp[1] + blur[1]))
    assert pooled["set_bright_ssim_log"] == pytest.approx(0.9)  # a scene without bright windows is left out
