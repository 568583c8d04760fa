"""What `--model` accepts: the traditional method, always, and the zoo's ONNX models."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .zoo import ZooModel, gap_class, load_gap_defaults, load_manifest, load_reference_default


@dataclass(frozen=True)
class ModelEntry:
    id: str
    family: str
    precision: str
    summary: str
    default: bool = False
    variant_of: str | None = None
    zoo: ZooModel | None = None

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "family": self.family,
            "precision": self.precision,
            "variant_of": self.variant_of,
            "default": self.default,
            "summary": self.summary,
            "file": self.zoo.file if self.zoo else None,
            "speed_levels": [s.__dict__ for s in self.zoo.speed_levels] if self.zoo else [],
        }


BASELINE_SUMMARY = (
    "Elvidge intercalibration + DN→radiance curve (fitted to the VIIRS reference when given). Deterministic, no learned weights."
)


REFERENCE_CHANGE = "reference-change"
REFERENCE_CHANGE_SUMMARY = (
    "The VIIRS reference scaled by the change the DMSP sees (DMSP vs the reference simulated to DMSP); "
    "STARFM-like, needs a reference. Deterministic, no learned weights."
)


def available_models() -> list[ModelEntry]:
    zoo = load_manifest()
    has_default = any(m.default for m in zoo)
    entries = [ModelEntry("baseline", "traditional", "fp32", BASELINE_SUMMARY, default=not has_default)]
    # Always there like the baseline, never the default: it cannot run without a reference.
    entries.append(ModelEntry(REFERENCE_CHANGE, "traditional", "fp32", REFERENCE_CHANGE_SUMMARY))
    entries += [ModelEntry(m.id, m.family, m.precision, m.summary, m.default, m.variant_of, m) for m in zoo]
    return entries


def default_model(with_reference: bool = False, gap_years: float | None = None) -> ModelEntry:
    """The recommended model: with a VIIRS reference, the manifest's choice for the gap class of `gap_years`
    (reference year - DMSP year; `default_by_gap_class`, decided per class on real imagery by `make report`), else
    its `default_with_reference` (decided over every class: the choice when the gap is not known); without a
    reference the zoo's default (the baseline when the zoo has none)."""
    models = available_models()
    if with_reference:
        for wanted in (load_gap_defaults().get(gap_class(gap_years) or ""), load_reference_default()):
            match = next((m for m in models if m.id == wanted), None)
            if match is not None:
                return match
    return next(m for m in models if m.default)


def model_entry(model_id: str | None, with_reference: bool = False, gap_years: float | None = None) -> ModelEntry:
    if not model_id:
        return default_model(with_reference, gap_years)
    models = available_models()
    for entry in models:
        if entry.id == model_id:
            return entry
    known = ", ".join(m.id for m in models)
    raise InputError(
        f"Unknown model '{model_id}'. Available models: {known} (list them with: python -m nightlight_fusion_plugin models)."
    )
