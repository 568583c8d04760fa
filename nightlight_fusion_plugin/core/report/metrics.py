"""Agreement metrics between a fused raster and a VIIRS truth (shared with the training harness).

PSNR and SSIM are computed on log1p(radiance) with a fixed data range, LOG_DATA_RANGE = log1p(1000):
radiance above 1000 nW/cm²/sr (gas flares, fires) is clipped first, so a single flare cannot move the
score and scores are comparable between scenes (a per-image maximum would make them incomparable).
"""

from __future__ import annotations

import numpy as np

RADIANCE_CLIP = 1000.0
LOG_DATA_RANGE = float(np.log1p(RADIANCE_CLIP))


def _log(radiance: np.ndarray) -> np.ndarray:
    return np.log1p(np.clip(radiance, 0.0, RADIANCE_CLIP))


def psnr_log(prediction: np.ndarray, truth: np.ndarray) -> float:
    mse = float(np.mean((_log(prediction) - _log(truth)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(LOG_DATA_RANGE**2 / mse))


def rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(prediction, np.float64) - truth) ** 2)))


def r2(prediction: np.ndarray, truth: np.ndarray) -> float:
    truth = np.asarray(truth, np.float64)
    residual = np.sum((truth - prediction) ** 2)
    total = np.sum((truth - truth.mean()) ** 2)
    return float(1 - residual / total) if total > 0 else float("nan")


def sum_of_lights_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Relative error of the total light, (Σpred − Σtruth) / Σtruth."""
    total = float(np.sum(truth, dtype=np.float64))
    return float((np.sum(prediction, dtype=np.float64) - total) / total) if total else float("nan")


def scene_sum_of_lights_error(predictions: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Σ over scenes of |Σpred − Σtruth| / Σ over scenes of Σtruth (valid pixels of each scene): the pooled
    sum-of-lights error without cancellation, since a set holding both directions of a pair (2020→2021 and
    2021→2020) makes the signed pooled error of persistence exactly zero however far each scene is off."""
    off, total = 0.0, 0.0
    for prediction, truth in zip(predictions, truths):
        ok = np.isfinite(prediction) & np.isfinite(truth)
        t = float(np.sum(np.asarray(truth, np.float64)[ok]))
        off += abs(float(np.sum(np.asarray(prediction, np.float64)[ok])) - t)
        total += t
    return off / total if total else float("nan")


BRIGHT_FRACTION = 0.01


def bright_errors(prediction: np.ndarray, truth: np.ndarray, fraction: float = BRIGHT_FRACTION) -> dict[str, float]:
    """Errors on the brightest `fraction` of truth pixels (city cores, flares), where a squashed output shows
    first: the relative error of their total light and the PSNR of their log radiance."""
    p, t = np.asarray(prediction, np.float64).ravel(), np.asarray(truth, np.float64).ravel()
    count = max(1, int(round(fraction * t.size)))
    top = np.argpartition(t, t.size - count)[t.size - count :]
    return {"bright_sum_error": sum_of_lights_error(p[top], t[top]), "bright_psnr_log": psnr_log(p[top], t[top])}


def pooled_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Metrics of a whole set at once (valid pixels of all scenes concatenated): a dark scene's tiny total
    cannot dominate the sum-of-lights error as it would in a mean of per-scene ratios."""
    ok = np.isfinite(prediction) & np.isfinite(truth)
    p, t = np.asarray(prediction, np.float64)[ok], np.asarray(truth, np.float64)[ok]
    return {
        "pixels": int(ok.sum()),
        "psnr_log": psnr_log(p, t),
        "r2": r2(p, t),
        "sum_of_lights_error": sum_of_lights_error(p, t),
        **bright_errors(p, t),
    }


def all_metrics(prediction: np.ndarray, truth: np.ndarray, saturated: np.ndarray | None = None) -> dict[str, float]:
    """Metrics over the pixels valid in both arrays; with a saturated-DMSP mask, also the errors inside the
    saturated cores (where DMSP carries no information)."""
    ok = np.isfinite(prediction) & np.isfinite(truth)
    p, t = np.asarray(prediction, np.float64)[ok], np.asarray(truth, np.float64)[ok]
    scores = {
        "pixels": int(ok.sum()),
        "psnr_log": psnr_log(p, t),
        "rmse": rmse(p, t),
        "r2": r2(p, t),
        "sum_of_lights_error": sum_of_lights_error(p, t),
        **bright_errors(p, t),
    }
    if np.ndim(prediction) == 2 and np.ndim(truth) == 2:
        scores["ssim_log"] = ssim_log(prediction, truth)
    if saturated is not None:
        core = ok & saturated
        scores["saturated_pixels"] = int(core.sum())
        if core.any():
            pc, tc = np.asarray(prediction, np.float64)[core], np.asarray(truth, np.float64)[core]
            scores["saturated_rmse"] = rmse(pc, tc)
            scores["saturated_psnr_log"] = psnr_log(pc, tc)
    return scores


def _window_mean(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over every size×size window lying fully inside the array ('valid' positions)."""
    c = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), axis=0), axis=1)
    s = c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]
    return s / (size * size)


def _ssim_map(prediction: np.ndarray, truth: np.ndarray, win_size: int) -> tuple[np.ndarray, np.ndarray]:
    """SSIM of every win_size window lying inside the arrays, and whether the window is free of nodata."""
    x, y = _log(np.nan_to_num(prediction)).astype(np.float64), _log(np.nan_to_num(truth)).astype(np.float64)
    valid = (np.isfinite(prediction) & np.isfinite(truth)).astype(np.float64)
    n = win_size * win_size
    cov_norm = n / (n - 1)
    ux, uy = _window_mean(x, win_size), _window_mean(y, win_size)
    vx = cov_norm * (_window_mean(x * x, win_size) - ux * ux)
    vy = cov_norm * (_window_mean(y * y, win_size) - uy * uy)
    vxy = cov_norm * (_window_mean(x * y, win_size) - ux * uy)
    c1, c2 = (0.01 * LOG_DATA_RANGE) ** 2, (0.03 * LOG_DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s, _window_mean(valid, win_size) > 1 - 1e-9


def ssim_log(prediction: np.ndarray, truth: np.ndarray, win_size: int = 7) -> float:
    """SSIM (Wang et al. 2004) of log1p radiance with the fixed LOG_DATA_RANGE, as scikit-image computes it by
    default (7×7 uniform window, sample covariance, border windows dropped); windows touching nodata are skipped."""
    if min(np.shape(prediction)) < win_size:
        return float("nan")
    s, full = _ssim_map(prediction, truth, win_size)
    return float(s[full].mean()) if full.any() else float("nan")


# --- detail ------------------------------------------------------------------------------------------------------
# Whether a method keeps fine detail or blurs it: the power of the fused map's finest spatial frequencies relative
# to the truth's (radially averaged spectrum of log radiance), and SSIM over the bright cores, where detail lives.
HIGH_FREQUENCY_FROM = 0.25  # cycles per pixel: wavelengths under 4 px (1 km at 15″), finer than the DMSP can see


def radial_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequency in cycles per pixel, mean power) of log1p radiance, radially averaged (NaN filled with the
    mean, a Hann window against edge leakage)."""
    x = _log(np.nan_to_num(np.asarray(image, np.float64), nan=0.0))
    x = np.where(np.isfinite(image), x, x[np.isfinite(image)].mean() if np.isfinite(image).any() else 0.0)
    h, w = x.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2((x - x.mean()) * window))) ** 2
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij")
    radius = np.hypot(fy, fx)
    bins = np.linspace(0.0, 0.5, 33)
    which = np.digitize(radius.ravel(), bins) - 1
    keep = (which >= 0) & (which < len(bins) - 1)
    sums = np.bincount(which[keep], power.ravel()[keep], len(bins) - 1)
    counts = np.bincount(which[keep], minlength=len(bins) - 1)
    return (bins[:-1] + bins[1:]) / 2, sums / np.maximum(counts, 1)


def high_frequency_ratio(prediction: np.ndarray, truth: np.ndarray, above: float = HIGH_FREQUENCY_FROM) -> float:
    """Power of the prediction's frequencies above `above` cycles/pixel over the truth's: 1 keeps the truth's fine
    detail, below 1 blurs it, above 1 adds texture (or noise) the truth does not have."""
    power, total = high_frequency_power(prediction, truth, above)
    return power / total if total > 0 else float("nan")


def high_frequency_power(prediction: np.ndarray, truth: np.ndarray, above: float = HIGH_FREQUENCY_FROM) -> tuple[float, float]:
    """(prediction's, truth's) radially averaged power above `above` cycles/pixel, over the pixels valid in both:
    summed over the scenes of a set, their ratio is the set's high_frequency_ratio with no tiny scene deciding."""
    f, p = radial_spectrum(np.where(np.isfinite(truth), prediction, np.nan))
    _, t = radial_spectrum(np.where(np.isfinite(prediction), truth, np.nan))
    band = f >= above
    return float(p[band].sum()), float(t[band].sum())


def bright_ssim_log(prediction: np.ndarray, truth: np.ndarray, fraction: float = 0.05, win_size: int = 7) -> float:
    """ssim_log over the windows centred on the brightest `fraction` of truth pixels (city cores and their edges)."""
    valid = np.isfinite(prediction) & np.isfinite(truth)
    if min(np.shape(prediction)) < win_size or valid.sum() < win_size * win_size:
        return float("nan")
    threshold = np.quantile(np.asarray(truth)[valid], 1.0 - fraction)
    s, full = _ssim_map(prediction, truth, win_size)
    half = win_size // 2
    centre = np.nan_to_num(np.asarray(truth, np.float64))[half : half + s.shape[0], half : half + s.shape[1]] >= threshold
    keep = centre & full
    return float(s[keep].mean()) if keep.any() else float("nan")


def detail_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The detail columns of the report: high_frequency_ratio and bright_ssim_log."""
    return {
        "high_frequency_ratio": high_frequency_ratio(prediction, truth),
        "bright_ssim_log": bright_ssim_log(prediction, truth),
    }
