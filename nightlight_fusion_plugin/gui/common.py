"""Small helpers the dialog's panels share: onnxruntime's presence and devices, time formatting."""

from __future__ import annotations

import importlib.util

SETTINGS = "NightlightFusion/"
DEVICE_NAMES = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "directml",
    "CoreMLExecutionProvider": "coreml",
}


def onnxruntime_available() -> bool:
    """Whether the ONNX models can run here; find_spec, not an import, so opening the dialog stays cheap."""
    try:  # the dependency installer's check: it also sees the plugin's own _deps folder once activated
        from ..core.install.dependencies import importable
    except ImportError:
        return importlib.util.find_spec("onnxruntime") is not None
    return importable("onnxruntime")


def onnx_devices() -> list[str]:
    """Devices onnxruntime offers here (cpu always)."""
    providers: list[str] = []
    if onnxruntime_available():
        try:
            import onnxruntime

            providers = onnxruntime.get_available_providers()
        except ImportError:
            pass
    devices = [DEVICE_NAMES[p] for p in providers if p in DEVICE_NAMES]
    return list(dict.fromkeys(["cpu"] + devices))


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
