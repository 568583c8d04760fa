"""onnxruntime sessions: device choice with fallback, verified model files, metadata read from the model.

Model settings (family, prediction type, noise schedule, transforms, tile size) are read from the ONNX
file's metadata, as Deepness does, so the engine never guesses how a model was trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, require

LOG = logging.getLogger("nightlight_fusion")
DEVICE_PROVIDERS = {
    "cuda": ["CUDAExecutionProvider"],
    "directml": ["DmlExecutionProvider"],
    "coreml": ["CoreMLExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
}
AUTO_ORDER = ["CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider"]


@dataclass(frozen=True)
class ModelMetadata:
    """What the ONNX file says about itself (keys prefixed nlf_ in its metadata_props)."""

    family: str
    model_id: str = ""
    prediction_type: str = ""
    schedule: dict = field(default_factory=dict)
    transforms: dict = field(default_factory=dict)
    input_channels: list = field(default_factory=list)
    tile_size: int = 64
    multiple_of: int = 8
    # Tile-independent models (no normalisation over the tile: models/unet.py norm="none") may run on larger tiles
    # than they were trained on, with a small overlap: the engine's tiles then recompute a few percent of the
    # pixels instead of 78 % (64-px tiles at a 48-px stride). None: the native tile with OVERLAP_FRACTION.
    inference_tile: int | None = None
    inference_overlap: int | None = None
    native_resolution: str = "15 arcsec"
    training_data: str = ""
    version: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        def get(key, default=""):
            return props.get(f"nlf_{key}", default)

        if not get("family"):
            raise InputError("The ONNX model has no 'nlf_family' metadata: it was not exported by training.export.")
        known = {
            f"nlf_{k}"
            for k in (
                "family",
                "model_id",
                "prediction_type",
                "schedule",
                "transforms",
                "input_channels",
                "tile_size",
                "multiple_of",
                "inference_tile",
                "inference_overlap",
                "native_resolution",
                "training_data",
                "version",
            )
        }
        return cls(
            family=get("family"),
            model_id=get("model_id"),
            prediction_type=get("prediction_type"),
            schedule=json.loads(get("schedule", "{}") or "{}"),
            transforms=json.loads(get("transforms", "{}") or "{}"),
            input_channels=json.loads(get("input_channels", "[]") or "[]"),
            tile_size=int(get("tile_size", "64")),
            multiple_of=int(get("multiple_of", "8")),
            inference_tile=int(get("inference_tile")) if get("inference_tile") else None,
            inference_overlap=int(get("inference_overlap")) if get("inference_overlap") else None,
            native_resolution=get("native_resolution", "15 arcsec"),
            training_data=get("training_data"),
            version=get("version"),
            extra={k: v for k, v in props.items() if k not in known},
        )


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def choose_providers(device: str = "auto", available: list[str] | None = None) -> tuple[list[str], str | None]:
    """Providers to ask onnxruntime for, and a warning when the requested device is not available."""
    ort = require("onnxruntime", "running the bundled models")
    available = list(available if available is not None else ort.get_available_providers())
    device = (device or "auto").lower()
    if device == "auto":
        return [p for p in AUTO_ORDER if p in available] or ["CPUExecutionProvider"], None
    if device not in DEVICE_PROVIDERS:
        raise InputError(f"Unknown device '{device}': use auto, cpu, cuda, directml or coreml.")
    wanted = [p for p in DEVICE_PROVIDERS[device] if p in available]
    if wanted:
        return list(dict.fromkeys(wanted + ["CPUExecutionProvider"])), None
    return ["CPUExecutionProvider"], (
        f"Device '{device}' requested but onnxruntime here has no {DEVICE_PROVIDERS[device][0]} "
        f"(available: {', '.join(available)}); running on the CPU. For CUDA install onnxruntime-gpu."
    )


PROVIDER_DEVICES = {"CUDAExecutionProvider": "cuda", "DmlExecutionProvider": "directml", "CoreMLExecutionProvider": "coreml"}


def resolved_device(device: str = "auto") -> str:
    """The device a session for `device` runs on here (auto: the first available of AUTO_ORDER)."""
    providers, _ = choose_providers(device)
    return PROVIDER_DEVICES.get(providers[0], "cpu")


class OnnxModel:
    """One onnxruntime session plus the model's metadata; `run` takes and returns float32 numpy arrays."""

    def __init__(
        self, path: str | os.PathLike, device: str = "auto", threads: int | None = None, expected_sha256: str | None = None
    ):
        ort = require("onnxruntime", "running the bundled models")
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Model file {path} is missing; reinstall the plugin or re-run training.export.")
        if expected_sha256 and sha256_of(path) != expected_sha256:
            raise InputError(
                f"Model file {path} does not match its sha256 in the zoo manifest (corrupt or replaced); reinstall the plugin."
            )
        providers, warning = choose_providers(device)
        self.warnings = [warning] if warning else []
        if warning:
            LOG.warning(warning)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Spinning worker threads burn CPU between calls and make QGIS sluggish: turn it off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise InputError(f"Model file {path} cannot be loaded by onnxruntime ({exc}); reinstall the plugin.") from exc
        self.path = path
        self.metadata = ModelMetadata.from_props(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]
        # fp16 models exported without float32 I/O take half-precision tensors
        self.input_types = {i.name: np.float16 if i.type == "tensor(float16)" else np.float32 for i in self.session.get_inputs()}
        self.output_name = self.session.get_outputs()[0].name
        self.provider = self.session.get_providers()[0]

    @property
    def device(self) -> str:
        return PROVIDER_DEVICES.get(self.provider, "cpu")

    def run(self, **inputs: np.ndarray) -> np.ndarray:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=self.input_types[name]) for name in self.input_names}
        return np.asarray(self.session.run([self.output_name], feed)[0], dtype=np.float32)


_SESSIONS: dict[tuple, OnnxModel] = {}
MAX_CACHED_SESSIONS = 4


def load_model(
    path: str | os.PathLike,
    device: str = "auto",
    threads: int | None = None,
    expected_sha256: str | None = None,
    cache: bool = False,
) -> OnnxModel:
    """An OnnxModel; with cache=True sessions are kept between runs (QGIS setting "keep models loaded"),
    keyed by file, size and modification time so a replaced file is verified and loaded again."""
    if not cache:
        return OnnxModel(path, device, threads, expected_sha256)
    stat = os.stat(path) if os.path.exists(path) else None
    key = (str(Path(path).resolve()), device, threads, expected_sha256, stat and (stat.st_size, stat.st_mtime_ns))
    if key not in _SESSIONS:
        if len(_SESSIONS) >= MAX_CACHED_SESSIONS:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        _SESSIONS[key] = OnnxModel(path, device, threads, expected_sha256)
    return _SESSIONS[key]


def clear_session_cache() -> None:
    _SESSIONS.clear()
