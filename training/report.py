"""The design-space report: every zoo model × sampler × NFE × ensemble size, and the baselines, evaluated by
the harness on the three held-out sets; tables, plots, sample tiles and a recommendation written to
docs/design_space.md; measured speed levels, metrics and the default model written back into the zoo manifest.

python -m training.report [--zoo model_zoo] [--eval-dir data/eval] [--quick] [--no-manifest]

--quick runs a tiny grid (CI smoke scale). Numbers in the report are whatever was measured on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .design_space.choose import (
    INT8_TOLERANCE_DB,
    LEVEL_FLOOR_DB,
    LEVEL_MIN_SAVING,
    best,
    choose_default,
    default_margins,
    default_speed,
    margins,
    report_default,
    speed_levels,
)
from .design_space.figures import plots, sample_tiles
from .design_space.manifest import drop_failing_int8, machine_description, update_manifest
from .design_space.markdown import markdown, recommendation, training_curves, tried_section
from .design_space.measure import (
    ENSEMBLES,
    GRID,
    KEY_NFE,
    QUICK_GRID,
    SCENES,
    SPEED_NFE,
    STAGED_NFE,
    STAGED_STRENGTH,
    TEMPERATURES,
    bad_references,
    run_grid,
    steps_for,
)
from .design_space.rows_cache import RowCache, engine_fingerprint
from .design_space.sets import QUICK_SETS, SETS, design_space_zoo, ensure_sets
from .design_space.tables import GENERATIVE, setting, sharpness_rows, target_rows, temperature_cell
from .real_report import fp32_twin, is_real

# The report's parts live in training/design_space/ (sets, measuring, the rows cache, choices, tables, markdown,
# figures, the manifest); their public names stay importable from here.
__all__ = [
    "ENSEMBLES",
    "GENERATIVE",
    "GRID",
    "INT8_TOLERANCE_DB",
    "KEY_NFE",
    "LEVEL_FLOOR_DB",
    "LEVEL_MIN_SAVING",
    "QUICK_GRID",
    "QUICK_SETS",
    "RowCache",
    "SCENES",
    "SETS",
    "SPEED_NFE",
    "STAGED_NFE",
    "STAGED_STRENGTH",
    "TEMPERATURES",
    "bad_references",
    "best",
    "choose_default",
    "default_margins",
    "default_speed",
    "design_space_zoo",
    "drop_failing_int8",
    "engine_fingerprint",
    "ensure_sets",
    "fp32_twin",
    "is_real",
    "machine_description",
    "main",
    "margins",
    "markdown",
    "plots",
    "recommendation",
    "report_default",
    "run_grid",
    "sample_tiles",
    "setting",
    "sharpness_rows",
    "speed_levels",
    "steps_for",
    "target_rows",
    "temperature_cell",
    "training_curves",
    "tried_section",
    "update_manifest",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, default=Path("model_zoo"))
    parser.add_argument("--eval-dir", type=Path, default=Path("data/eval"))
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real")
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-manifest", action="store_true", help="do not write speed levels back into the manifest")
    parser.add_argument(
        "--rows-cache",
        type=Path,
        help="JSON-lines file of measured rows to reuse (default: EVAL_DIR/rows.jsonl; rows are keyed by model sha256)",
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="training runs whose validation curves the report lists"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the rows cache and measure everything again")
    parser.add_argument(
        "--only-real",
        action="store_true",
        help="measure only the real-temporal sets; keep the simulated sets' rows committed in DOCS/design_space.json "
        "(for the models still in the zoo) instead of measuring them again",
    )
    parser.add_argument(
        "--measure",
        nargs="+",
        metavar="ID",
        help="measure only these models (and the baselines) again; every other model keeps its rows committed in "
        "DOCS/design_space.json (for adding one model to the zoo without re-measuring the rest)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        nargs="*",
        default=[],
        help="training runs (folders with checkpoint.pt) that are not shipped, measured beside the zoo as design-space models",
    )
    args = parser.parse_args(argv)
    from nightlight_fusion_plugin.core.engine.zoo import load_manifest

    shipped = {m.id for m in load_manifest(args.zoo)}
    zoo = design_space_zoo(args.zoo, args.eval_dir / "design_space_zoo", args.runs) if args.runs else args.zoo
    os.environ["NLF_MODEL_ZOO"] = str(zoo.resolve())
    models = load_manifest(zoo)
    sets = ensure_sets(args.eval_dir, args.quick, args.real)
    cache_path = None if args.fresh else (args.rows_cache or args.eval_dir / ("rows_quick.jsonl" if args.quick else "rows.jsonl"))
    # Real imagery judges the shipped models (and the fp32 twins of shipped int8 models), not design-space runs.
    real_models = shipped | {fp32_twin(m.__dict__) for m in models if m.id in shipped} - {None}
    kept: list[dict] = []
    measured = models
    if args.only_real or args.measure:
        known = {m.id for m in models}
        unknown = sorted(set(args.measure or []) - known)
        if unknown:
            parser.error(f"--measure: {', '.join(unknown)} not in the zoo (known: {', '.join(sorted(known))})")
        previous = json.loads((args.docs / "design_space.json").read_text())
        measured = [m for m in models if m.id in args.measure] if args.measure else models
        again = {m.id for m in measured}

        def keep(row: dict) -> bool:
            if row["family"] != "baseline" and row["model"] not in known:
                return False  # left the zoo
            if is_real(row["set"]) and row["set"] not in sets:
                return False  # a real set no longer measured (the region sets before the gap classes)
            if args.only_real and not is_real(row["set"]):
                return True
            return row["family"] != "baseline" and row["model"] not in again  # baselines are measured again

        kept = [r for r in previous if keep(r)]
        if args.only_real:
            sets = {k: v for k, v in sets.items() if is_real(k)}
    rows = kept + run_grid(measured, sets, args.quick, RowCache(cache_path), real_models)
    (args.docs / "design_space.json").write_text(json.dumps(rows, indent=1) + "\n")
    figures = plots(rows, args.docs / "images") + sample_tiles(models, sets, args.docs / "images", rows)
    for name in sorted({r["set"] for r in kept}):  # tiles of the kept sets, made when they were measured
        if (args.docs / "images" / f"design_space_tiles_{name}.png").exists():
            figures.append(f"images/design_space_tiles_{name}.png")
    entries = [
        {
            "id": m.id,
            "family": m.family,
            "precision": m.precision,
            "variant_of": m.variant_of,
            "shipped": m.id in shipped,
            "regression_model": m.regression_model,
        }
        for m in models
    ]
    bad = bad_references(rows, entries, sets, args.quick)
    command = " ".join(["python -m training.report", *(sys.argv[1:] if argv is None else argv)])
    (args.docs / "design_space.md").write_text(markdown(rows, figures, args.quick, entries, args.runs_dir, kept, bad, command))
    if models and not args.no_manifest:
        update_manifest(args.zoo, rows)
    print(args.docs / "design_space.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
