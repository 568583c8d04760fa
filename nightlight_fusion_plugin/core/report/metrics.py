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


def ssim_log(prediction: np.ndarray, truth: np.ndarray, win_size: int = 7) -> float:
    """SSIM (Wang et al. 2004) of log1p radiance with the fixed LOG_DATA_RANGE, as scikit-image computes it by
    default (7×7 uniform window, sample covariance, border windows dropped); windows touching nodata are skipped."""
    x, y = _log(np.nan_to_num(prediction)).astype(np.float64), _log(np.nan_to_num(truth)).astype(np.float64)
    valid = (np.isfinite(prediction) & np.isfinite(truth)).astype(np.float64)
    if min(x.shape) < win_size:
        return float("nan")
    n = win_size * win_size
    cov_norm = n / (n - 1)
    ux, uy = _window_mean(x, win_size), _window_mean(y, win_size)
    vx = cov_norm * (_window_mean(x * x, win_size) - ux * ux)
    vy = cov_norm * (_window_mean(y * y, win_size) - uy * uy)
    vxy = cov_norm * (_window_mean(x * y, win_size) - ux * uy)
    c1, c2 = (0.01 * LOG_DATA_RANGE) ** 2, (0.03 * LOG_DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    full = _window_mean(valid, win_size) > 1 - 1e-9
    return float(s[full].mean()) if full.any() else float("nan")
