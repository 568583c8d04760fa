"""Measured rows kept between reports: keyed by what was measured and by the engine that measured it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def engine_fingerprint(core: Path | None = None) -> str:
    """sha256 (12 hex) of the engine's sources and data (nightlight_fusion_plugin/core): a cached row is reused
    only if the engine that measured it is the same, so a change to the engine re-measures every row."""
    import hashlib

    core = core or Path(__file__).resolve().parents[2] / "nightlight_fusion_plugin" / "core"
    digest = hashlib.sha256()
    for path in sorted(p for p in core.rglob("*") if p.is_file() and p.suffix in (".py", ".json", ".csv")):
        digest.update(path.relative_to(core).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


class RowCache:
    """Measured rows keyed by what was measured (model file sha256, set, sampler, ...), kept in a JSON-lines
    file so that re-running the report after adding one model re-measures only that model."""

    def __init__(self, path: Path | None):
        self.path, self.rows = path, {}
        if path and path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.rows[entry["key"]] = entry["row"]

    def get(self, key: str, compute) -> dict[str, Any]:
        if key not in self.rows:
            self.rows[key] = compute()
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a") as f:
                    f.write(json.dumps({"key": key, "row": self.rows[key]}) + "\n")
        return self.rows[key]
