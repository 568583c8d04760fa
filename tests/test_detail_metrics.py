"""The report's detail metrics (issue #19): high-frequency power relative to the truth, SSIM over bright cores."""

import numpy as np
from scipy.ndimage import gaussian_filter

from nightlight_fusion_plugin.core.report.metrics import bright_ssim_log, detail_metrics, high_frequency_ratio, radial_spectrum


def _city(seed: int = 0, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(gaussian_filter(rng.normal(0, 1, (size, size)), 1.0) * 2).astype(np.float32)


def test_high_frequency_ratio_tells_blur_from_detail_and_noise() -> None:
    truth = _city()
    assert high_frequency_ratio(truth, truth) == 1.0
    blurred = gaussian_filter(truth, 1.5)
    noisy = truth * np.exp(np.random.default_rng(1).normal(0, 0.3, truth.shape)).astype(np.float32)
    assert high_frequency_ratio(blurred, truth) < 0.1 < 1.0 < high_frequency_ratio(noisy, truth)
    with_holes = truth.copy()
    with_holes[:10, :10] = np.nan  # nodata is filled, never read as an edge of dark
    assert 0.8 < high_frequency_ratio(with_holes, with_holes) <= 1.0 + 1e-9


def test_radial_spectrum_of_a_stripe_peaks_at_its_frequency() -> None:
    x = np.tile(np.where(np.arange(64) % 8 < 4, 50.0, 0.0), (64, 1)).astype(np.float32)  # period 8 px
    f, p = radial_spectrum(x)
    assert abs(f[int(np.argmax(p))] - 1 / 8) < 0.02


def test_bright_ssim_scores_the_cores() -> None:
    truth = _city()
    assert bright_ssim_log(truth, truth) == 1.0
    damaged = truth.copy()
    damaged[truth > np.quantile(truth, 0.95)] *= 0.3  # cores dimmed, the rest untouched
    scores = detail_metrics(damaged, truth)
    assert scores["bright_ssim_log"] < 0.99 and set(scores) == {"high_frequency_ratio", "bright_ssim_log"}
