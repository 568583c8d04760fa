"""The manifest's per-gap-class defaults are the report's rule applied to the report's own rows (issue #19): the
engine picks per input from the gap what `make report` decided, and nothing else."""

import json
from pathlib import Path

from training.design_space.manifest import gap_class_defaults

REPO = Path(__file__).resolve().parent.parent


def test_manifest_defaults_by_gap_class_agree_with_the_report() -> None:
    rows = json.loads((REPO / "docs" / "design_space.json").read_text())
    manifest = json.loads((REPO / "model_zoo" / "manifest.json").read_text())
    assert manifest.get("default_by_gap_class") == gap_class_defaults(rows, manifest["models"])
    report = (REPO / "docs" / "design_space.md").read_text()
    for choice in manifest["default_by_gap_class"].values():  # the report names every chosen method
        assert choice["model"] in report


def test_the_engine_reads_the_committed_choice() -> None:
    from nightlight_fusion_plugin.core.engine.models import default_model

    manifest = json.loads((REPO / "model_zoo" / "manifest.json").read_text())
    for gap, key in ((1, "1"), (-3, "2-5"), (9, "6+")):
        wanted = manifest["default_by_gap_class"].get(key, {}).get("model") or manifest["default_with_reference"]["model"]
        assert default_model(True, gap).id == wanted
