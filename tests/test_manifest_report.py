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


def test_a_default_names_the_model_and_leaves_the_precision_to_the_machine() -> None:
    """A quantized variant that wins a class (int8 ties go to the faster on the report's machine) is written as its
    fp32 root, so engine/precision.py picks the precision per machine; the variant measured is kept beside it."""
    from training.design_space.manifest import engine_model

    models = [{"id": "m-fp32"}, {"id": "m-int8", "variant_of": "m-fp32"}]
    assert engine_model("m-int8", models) == "m-fp32" and engine_model("reference-change", models) == "reference-change"
    manifest = json.loads((REPO / "model_zoo" / "manifest.json").read_text())
    variants = {m["id"] for m in manifest["models"] if m.get("variant_of")}
    chosen = [c["model"] for c in manifest["default_by_gap_class"].values()]
    chosen += [manifest[k]["model"] for k in ("default_with_reference", "default_without_reference") if k in manifest]
    chosen += [m["id"] for m in manifest["models"] if m.get("default")]
    assert chosen and not set(chosen) & variants
