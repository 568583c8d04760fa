"""What `--model` accepts. The traditional method is always there; the zoo's ONNX models join it later."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class ModelEntry:
    id: str
    family: str
    precision: str
    summary: str
    default: bool = False
    variant_of: str | None = None


BASELINE = ModelEntry(
    id="baseline",
    family="traditional",
    precision="fp32",
    summary="Elvidge intercalibration + DN→radiance curve (fitted to the VIIRS reference when given). "
    "Deterministic, no learned weights.",
    default=True,
)


def available_models() -> list[ModelEntry]:
    return [BASELINE]


def default_model() -> ModelEntry:
    return next(m for m in available_models() if m.default)


def model_entry(model_id: str | None) -> ModelEntry:
    if not model_id:
        return default_model()
    for entry in available_models():
        if entry.id == model_id:
            return entry
    known = ", ".join(m.id for m in available_models())
    raise InputError(
        f"Unknown model '{model_id}'. Available models: {known} (list them with: python -m nightlight_fusion_plugin models)."
    )
