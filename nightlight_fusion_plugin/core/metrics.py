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


def all_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Metrics over the pixels valid in both arrays."""
    ok = np.isfinite(prediction) & np.isfinite(truth)
    p, t = np.asarray(prediction, np.float64)[ok], np.asarray(truth, np.float64)[ok]
    return {
        "pixels": int(ok.sum()),
        "psnr_log": psnr_log(p, t),
        "rmse": rmse(p, t),
        "r2": r2(p, t),
        "sum_of_lights_error": sum_of_lights_error(p, t),
    }
