"""The bundled model zoo: `model_zoo/manifest.json`, validated, and where each model's file is.

The manifest is written by `python -m training.export`; every model has an id, family, file, sha256, size,
precision, `variant_of` (the fp32 model it was quantized from), speed levels (sampler + steps per level,
with measured quality and time), metrics and a model card.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

ZOO_DIR = Path(__file__).resolve().parents[2] / "model_zoo"  # the plugin folder's (core/engine/zoo.py)
MANIFEST = "manifest.json"
REQUIRED = ("id", "family", "file", "sha256", "precision")
FAMILIES = ("unet", "diffusion", "flow_matching", "normalizing_flow")


@dataclass(frozen=True)
class SpeedLevel:
    level: int
    sampler: str
    steps: int
    nfe: int
    strength: float = 1.0  # < 1: staged warm start from the regression estimate
    psnr: float | None = None
    seconds_per_megapixel: float | None = None


@dataclass(frozen=True)
class ZooModel:
    id: str
    family: str
    file: str
    sha256: str
    precision: str
    size_bytes: int = 0
    variant_of: str | None = None
    default: bool = False
    summary: str = ""
    card: str = ""
    regression_model: str | None = None
    speed_levels: list[SpeedLevel] = field(default_factory=list)
    default_speed: int = 1
    metrics: dict = field(default_factory=dict)
    throughput: dict = field(default_factory=dict)
    zoo_dir: str = str(ZOO_DIR)

    @property
    def path(self) -> Path:
        return Path(self.zoo_dir) / self.file

    @property
    def card_path(self) -> Path | None:
        return Path(self.zoo_dir) / self.card if self.card else None

    def speed(self, level: int | None) -> SpeedLevel | None:
        if not self.speed_levels:
            return None
        if level is None:
            level = self.default_speed
        levels = {s.level: s for s in self.speed_levels}
        if level not in levels:
            raise InputError(f"Model {self.id} has speed levels {sorted(levels)}; got {level}.")
        return levels[level]


def load_reference_default(zoo_dir: str | os.PathLike | None = None) -> str | None:
    """The model `make report` recommends when a VIIRS reference is given (it may be a traditional method such
    as reference-change): the manifest's `default_with_reference`, or None."""
    zoo = Path(zoo_dir) if zoo_dir else Path(os.environ.get("NLF_MODEL_ZOO", ZOO_DIR))
    try:
        value = json.loads((zoo / MANIFEST).read_text()).get("default_with_reference")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return value.get("model") if isinstance(value, dict) else None


GAP_CLASSES = ("1", "2-5", "6+")  # years between the DMSP and the reference (either way), as make report groups them


def gap_class(gap_years: float | None) -> str | None:
    """The report's gap class of a signed gap: "1" (up to a year), "2-5", "6+"; None when it is not known."""
    if gap_years is None:
        return None
    gap = abs(float(gap_years))
    return "1" if gap <= 1.5 else "2-5" if gap <= 5.5 else "6+"


def load_gap_defaults(zoo_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """The model `make report` recommends per gap class with a reference (manifest `default_by_gap_class`:
    {"1": {"model": ...}, "2-5": ..., "6+": ...}); {} when the manifest has none."""
    zoo = Path(zoo_dir) if zoo_dir else Path(os.environ.get("NLF_MODEL_ZOO", ZOO_DIR))
    try:
        value = json.loads((zoo / MANIFEST).read_text()).get("default_by_gap_class") or {}
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return {k: v["model"] for k, v in value.items() if k in GAP_CLASSES and isinstance(v, dict) and v.get("model")}


def load_manifest(zoo_dir: str | os.PathLike | None = None) -> list[ZooModel]:
    """All zoo models; [] when there is no manifest (a plugin without bundled models still works)."""
    zoo = Path(zoo_dir) if zoo_dir else Path(os.environ.get("NLF_MODEL_ZOO", ZOO_DIR))
    path = zoo / MANIFEST
    if not path.exists():
        return []
    try:
        payload = json.loads(path.read_text())
        entries = payload["models"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"The model zoo manifest {path} is malformed ({exc}); reinstall the plugin.") from exc
    models = []
    for i, entry in enumerate(entries):
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise InputError(
                f"The model zoo manifest {path} lacks {', '.join(missing)} for model #{i + 1}; reinstall the plugin."
            )
        if entry["family"] not in FAMILIES:
            raise InputError(f"The model zoo manifest {path} names an unknown family '{entry['family']}' for {entry['id']}.")
        try:
            levels = [SpeedLevel(**level) for level in entry.get("speed_levels", [])]
            fields = {k: v for k, v in entry.items() if k in ZooModel.__dataclass_fields__ and k != "speed_levels"}
            models.append(ZooModel(**fields, speed_levels=levels, zoo_dir=str(zoo)))
        except TypeError as exc:
            raise InputError(f"The model zoo manifest {path} has a malformed entry for {entry.get('id')}: {exc}") from exc
    return models
