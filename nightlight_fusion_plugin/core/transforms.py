"""Normalisation between physical units and model space: defined once, here.

The training package imports these to build its tensors, the export records `describe()` in every
model's ONNX metadata, and the inference engine applies the same functions, so a model always sees at
inference exactly the scaling it was trained with.

- DMSP: intercalibrated DN (F12 1999 scale, 0–63) -> [-1, 1], linearly.
- Radiance (VIIRS reference and target): log1p of radiance clipped to [RADIANCE_MIN, RADIANCE_MAX],
  scaled so 0 nW/cm²/sr -> -1 and RADIANCE_MAX -> 1. The log keeps dim rural light and bright cores in one
  range (radiance spans five decades); the clip keeps single gas flares/fires (1000+) from dominating and
  keeps slightly negative VIIRS background (stray-light correction) representable.
- Reference-present mask: 1 where a reference value exists, 0 where it is absent or dropped.
"""

from __future__ import annotations

import numpy as np

TRANSFORMS_VERSION = "nlf-transforms-1"
DN_MAX = 63.0
RADIANCE_MIN = -0.5
RADIANCE_MAX = 1000.0
_LOG_MAX = float(np.log1p(RADIANCE_MAX))


def dmsp_to_model(dnc: np.ndarray) -> np.ndarray:
    return (np.asarray(dnc, dtype=np.float32) / np.float32(DN_MAX / 2.0) - 1.0).astype(np.float32)


def dmsp_from_model(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, dtype=np.float32) + 1.0) * np.float32(DN_MAX / 2.0)).astype(np.float32)


def radiance_to_model(radiance: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(radiance, dtype=np.float32), RADIANCE_MIN, RADIANCE_MAX)
    return (np.log1p(clipped) / np.float32(_LOG_MAX / 2.0) - 1.0).astype(np.float32)


def radiance_from_model(y: np.ndarray) -> np.ndarray:
    log = (np.asarray(y, dtype=np.float32) + 1.0) * np.float32(_LOG_MAX / 2.0)
    return np.expm1(np.clip(log, np.log1p(RADIANCE_MIN), _LOG_MAX)).astype(np.float32)


def describe() -> dict[str, object]:
    """What a model's metadata records about its input/output scaling."""
    return {
        "version": TRANSFORMS_VERSION,
        "dmsp": f"dnc / {DN_MAX / 2} - 1 (intercalibrated DN, F12 1999 scale)",
        "radiance": f"log1p(clip(r, {RADIANCE_MIN}, {RADIANCE_MAX})) / {(_LOG_MAX / 2):.6f} - 1",
        "mask": "1 where a reference value exists, else 0",
        "dn_max": DN_MAX,
        "radiance_min": RADIANCE_MIN,
        "radiance_max": RADIANCE_MAX,
    }


def condition_stack(dnc: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Model condition [3, H, W] from intercalibrated DMSP and an optional reference on the VIIRS grid:
    DMSP scaled (nodata -> 0 DN), the reference scaled (absent/nodata -> 0 with mask 0), the mask."""
    dmsp = dmsp_to_model(np.nan_to_num(dnc, nan=0.0))
    if reference is None:
        return np.stack([dmsp, np.zeros_like(dmsp), np.zeros_like(dmsp)]).astype(np.float32)
    mask = np.isfinite(reference).astype(np.float32)
    ref = np.where(mask > 0, radiance_to_model(np.nan_to_num(reference, nan=0.0)), 0.0).astype(np.float32)
    return np.stack([dmsp, ref, mask]).astype(np.float32)
