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


# --- Condition v2 and the residual target ---------------------------------------------------------------------
# Condition version 1 (metadata nlf_condition_version absent or "1"): [dmsp, reference, reference_mask].
# Condition version 2 adds a 4th channel, the reference simulated to DMSP ("the DMSP expected if nothing changed"):
# core's sensor model (calibrated parameters) on the reference, digitised and intercalibrated like the DMSP channel
# and scaled by dmsp_to_model; 0 where the mask is 0. What the DMSP says changed is then channel 0 - channel 3.
CONDITION_CHANNELS = {
    1: ("dmsp", "reference", "reference_mask"),
    2: ("dmsp", "reference", "reference_mask", "reference_dmsp"),
    3: ("dmsp", "reference", "reference_mask", "reference_dmsp", "traditional", "gap_years", "gap_known"),
}
# Condition version 3 ("construct, then refine"): version 2's channels, then the traditional estimate in model space
# (reference-change where a reference exists, the calibrated baseline elsewhere: methods.construct) and the signed
# years from the DMSP to the reference as two constant channels: (reference year - DMSP year) / GAP_SCALE_YEARS and
# 1 where that gap is known. Unknown (or no reference): both 0, so the first convolution's weights on the indicator
# are the network's learned "unknown gap" value.
TRADITIONAL_CHANNEL = 4
GAP_SCALE_YEARS = 10.0  # training draws gaps up to 20 years each way: the channel stays within [-2, 2]
# Targets (metadata nlf_target): "absolute" (absent = absolute) predicts model-space radiance; "residual_log"
# predicts the change in model space (log radiance) relative to the reference: output = reference + prediction
# where the mask is 1, the plain prediction where it is 0. An all-zero prediction is "nothing changed".
# "residual_traditional" (condition v3) predicts the correction to the traditional estimate in model space:
# output = traditional + prediction everywhere, so an all-zero prediction is the traditional answer.
TARGETS = ("absolute", "residual_log", "residual_traditional")


def condition_version(props: dict[str, str]) -> int:
    """Condition version from a model's metadata (nlf_condition_version; absent = 1)."""
    value = str(props.get("nlf_condition_version", "1") or "1")
    if value not in ("1", "2", "3"):
        raise ValueError(f"unknown nlf_condition_version {value!r} (known: 1, 2, 3)")
    return int(value)


def model_target(props: dict[str, str]) -> str:
    value = str(props.get("nlf_target", "absolute") or "absolute")
    if value not in TARGETS:
        raise ValueError(f"unknown nlf_target {value!r} (known: {', '.join(TARGETS)})")
    return value


def reference_dmsp(reference: np.ndarray, pixel_km: tuple[float, float], intercal, params=None) -> np.ndarray:
    """The reference (radiance on the VIIRS grid, NaN = absent) simulated to intercalibrated DMSP DN on the same
    grid: footprint + halo blur, saturating response, the satellite-year's digitising (inverse intercalibration,
    6-bit, detection threshold), then the intercalibration again — as reference_change does. Holes count as
    dark. Give it the reference read with a halo (ReferenceChangeFusion.margin) and crop afterwards."""
    from ..sensor.sensors import DmspParameters, digitise, dmsp_blur, dmsp_response

    params = params or DmspParameters.calibrated()
    filled = np.where(np.isfinite(reference), reference, 0.0).astype(np.float32)
    raw = digitise(dmsp_response(dmsp_blur(filled, pixel_km, params), params), intercal, params)
    return np.asarray(intercal.apply(raw), dtype=np.float32)


def gap_channels(gap_years: float | None, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Condition v3's two constant channels: the signed gap (reference year - DMSP year) / GAP_SCALE_YEARS and
    whether it is known; both 0 when it is not."""
    if gap_years is None or not np.isfinite(gap_years):
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    return np.full(shape, np.float32(gap_years / GAP_SCALE_YEARS), np.float32), np.ones(shape, np.float32)


def condition_stack_v(
    dnc: np.ndarray,
    reference: np.ndarray | None,
    reference_dnc: np.ndarray | None,
    version: int,
    traditional: np.ndarray | None = None,
    gap_years: float | None = None,
) -> np.ndarray:
    """condition_stack for any version: version 2 appends reference_dnc (reference_dmsp's output) scaled like
    the DMSP channel, 0 where the reference mask is 0; version 3 then appends the traditional estimate (radiance,
    scaled like the reference; NaN -> 0 radiance) and the gap channels (the gap counts only with a reference)."""
    stack = condition_stack(dnc, reference)
    if version == 1:
        return stack
    if version not in (2, 3):
        raise ValueError(f"unknown condition version {version}")
    if reference is None or reference_dnc is None:
        extra = np.zeros_like(stack[0])
    else:
        extra = np.where(stack[2] > 0, dmsp_to_model(np.nan_to_num(reference_dnc, nan=0.0)), 0.0).astype(np.float32)
    stack = np.concatenate([stack, extra[None]])
    if version == 2:
        return stack.astype(np.float32)
    if traditional is None:
        raise ValueError("condition version 3 needs the traditional estimate (methods.construct)")
    estimate = radiance_to_model(np.nan_to_num(traditional, nan=0.0))
    gap, known = gap_channels(gap_years if reference is not None else None, estimate.shape)
    return np.concatenate([stack, estimate[None], gap[None], known[None]]).astype(np.float32)


def apply_target(prediction: np.ndarray, condition: np.ndarray, target: str) -> np.ndarray:
    """Network output [B, 1, H, W] -> model-space radiance. residual_log: reference + prediction where the
    reference mask (condition channel 2) is 1, the prediction itself where it is 0; residual_traditional: the
    traditional estimate (condition v3's channel 4) + prediction everywhere."""
    if target == "absolute":
        return prediction
    if target == "residual_traditional":
        estimate = condition[:, TRADITIONAL_CHANNEL : TRADITIONAL_CHANNEL + 1]
        return (estimate + prediction).astype(np.float32)
    if target != "residual_log":
        raise ValueError(f"unknown target {target!r}")
    mask = condition[:, 2:3]
    return np.where(mask > 0, condition[:, 1:2] + prediction, prediction).astype(np.float32)
