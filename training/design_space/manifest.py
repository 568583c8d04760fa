"""What the report writes back into model_zoo/manifest.json: speed levels, metrics, throughput, defaults, and
the int8 models that fail the real-imagery gate removed."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..real_report import (
    choose_real_default,
    int8_gate,
    real_rows,
)
from .choose import best, default_margins, default_speed, margins, report_default, speed_levels


def machine_description() -> str:
    import platform

    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores, {model or platform.processor() or platform.machine()}"


def drop_failing_int8(zoo: Path, manifest: dict, rows: list[dict]) -> list[str]:
    """Remove from the zoo every int8 model that fails the real-imagery gate (its file too): it would ship a
    brightness loss that its fp32 model does not have."""
    gates = int8_gate(rows, manifest["models"])
    failing = [k for k, g in gates.items() if not g["passes"]]
    for entry in [e for e in manifest["models"] if e["id"] in failing]:
        manifest["models"].remove(entry)
        for key in ("file", "card"):
            if entry.get(key) and (zoo / entry[key]).exists():
                (zoo / entry[key]).unlink()
        print(f"removed {entry['id']} from {zoo}: {gates[entry['id']]}", file=sys.stderr)
    for entry in manifest["models"]:
        if entry["id"] in gates:
            entry["real_imagery_int8_gate"] = gates[entry["id"]]
    return failing


def engine_model(model_id: str | None, models: list[dict]) -> str | None:
    """The id the plugin runs for a chosen method: a quantized variant's fp32 root, since the precision is picked
    per machine (engine/precision.py: the faster gated variant, measured once); int8 won the tie here because it
    was faster on the report's machine, which says nothing of the user's."""
    entry = next((m for m in models if m["id"] == model_id), None)
    return entry["variant_of"] if entry is not None and entry.get("variant_of") else model_id


ENGINE_CLASS = {"1 year": "1", "2–5 years": "2-5", "≥ 6 years": "6+"}  # report class -> engine/zoo.GAP_CLASSES key


def gap_class_defaults(rows: list[dict], models: list[dict]) -> dict[str, dict]:
    """The per-class rule's choices (design_space.class_defaults) as the engine reads them: manifest
    `default_by_gap_class`, keyed by engine/zoo.GAP_CLASSES, each with the margins it was decided on."""
    from .class_defaults import choose_class_defaults

    out = {}
    for cls, choice in choose_class_defaults(rows, models).items():
        if choice is None or cls not in ENGINE_CLASS:
            continue  # no reference: default_without_reference and the zoo's default flag stay the choice
        runs = engine_model(choice["model"], models)
        out[ENGINE_CLASS[cls]] = {
            "model": runs,
            **({"measured_as": choice["model"]} if runs != choice["model"] else {}),
            "pooled_margin_db": round(choice["pooled_margin_db"], 3),
            "versus": choice["versus"],
            "worst_region_db": None if choice["worst_region_db"] is None else round(choice["worst_region_db"], 3),
            "worst_region": choice["worst_region"],
            "holds": choice["holds"],
            "decided_on": f"real-temporal gap-class set {choice['set']} (make report)",
        }
    return out


def update_manifest(zoo: Path, rows: list[dict]) -> None:
    path = zoo / "manifest.json"
    manifest = json.loads(path.read_text())
    drop_failing_int8(zoo, manifest, rows)
    m, robust = margins(rows), default_margins(rows)
    default, real_choice = report_default(rows, manifest["models"])
    with_reference = choose_real_default(rows, manifest["models"], reference=True) if real_rows(rows) else None
    for key, choice in (("default_with_reference", with_reference), ("default_without_reference", real_choice)):
        if choice is None:
            manifest.pop(key, None)
            continue
        runs = engine_model(choice["model"], manifest["models"])
        manifest[key] = {  # core.models.default_model reads default_with_reference; both are on record
            "model": runs,
            **({"measured_as": choice["model"]} if runs != choice["model"] else {}),
            "sampler": choice["row"].get("sampler"),
            "steps": choice["row"].get("steps"),
            "strength": choice["row"].get("strength") or 1.0,
            "real_temporal_worst_margin_db": round(choice["worst_margin_db"], 3),
            "worst_case_at": choice["where"],
            "decided_on": "real-temporal sets (make report)",
        }
    default = engine_model(default, manifest["models"])  # the model flagged default, its setting and slider start
    by_class = gap_class_defaults(rows, manifest["models"])
    if by_class:
        manifest["default_by_gap_class"] = by_class
    else:
        manifest.pop("default_by_gap_class", None)
    for entry in manifest["models"]:
        levels = speed_levels(rows, entry["id"])
        if levels:
            entry["speed_levels"] = levels
            entry["default_speed"] = default_speed(levels)
            if real_choice and entry["id"] == default:  # the slider starts at the setting chosen on real imagery
                chosen = real_choice["row"]
                for level in levels:
                    if (level["sampler"], level["steps"], level["strength"]) == (
                        chosen.get("sampler"),
                        chosen.get("steps"),
                        chosen.get("strength") or 1.0,
                    ):
                        entry["default_speed"] = level["level"]
        timed = levels[entry["default_speed"] - 1] if levels else None
        if timed is None:  # one-pass models: their own row on the synthetic set with reference
            timed = best(rows, model=entry["id"], set="synthetic", with_reference=True)
        if timed and timed.get("seconds_per_megapixel"):
            entry["throughput"] = {
                "cpu_megapixels_per_minute": round(60.0 / timed["seconds_per_megapixel"], 2),
                "at": "default speed level" if levels else "one pass",
                "machine": machine_description(),
                "measured_by": "make report (training.evaluate through the engine; wall time incl. reading and writing)",
            }
        entry["metrics"] = {
            f"{r['set']}_{'ref' if r['with_reference'] else 'noref'}": {
                k: round(r[k], 4)
                for k in ("psnr_log", "ssim_log", "rmse", "r2", "set_sum_of_lights_error", "set_bright_sum_error", "set_r2")
                if k in r
            }
            for r in rows
            if r["model"] == entry["id"]
            and not r.get("ensemble_k")
            and r.get("temperature") is None
            and (r.get("nfe") in (1, 8) or not r.get("sampler"))
        }
        entry["measured"] = [  # every measured setting of this model (docs/design_space.md has them all)
            {
                "set": r["set"],
                "reference": r["with_reference"],
                "sampler": r.get("sampler"),
                "steps": r.get("steps"),
                "nfe": r["nfe"],
                "strength": r.get("strength") or 1.0,
                "ensemble": r.get("ensemble_k") or 1,
                **{k: round(r[k], 4) for k in ("psnr_log", "ssim_log", "rmse", "r2", "seconds_per_megapixel") if k in r},
            }
            for r in rows
            if r["model"] == entry["id"]
        ]
        entry["default"] = entry["id"] == default
        if real_choice and entry["id"] == default:
            entry["default_setting"] = {
                "sampler": real_choice["row"].get("sampler"),
                "steps": real_choice["row"].get("steps"),
                "strength": real_choice["row"].get("strength") or 1.0,
                "real_temporal_worst_margin_db": round(real_choice["worst_margin_db"], 3),
                "decided_on": "real-temporal sets (make report)",
            }
        else:
            entry.pop("default_setting", None)
        entry["margin_over_best_baseline_db"] = round(robust.get(entry["id"], float("nan")), 3)  # robustness hold-out
        entry["worst_case_margin_db"] = round(m.get(entry["id"], float("nan")), 3)  # all sets and modes
    path.write_text(json.dumps(manifest, indent=2) + "\n")
