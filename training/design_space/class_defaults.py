"""The per-class default rule (issue #19) on the gap-class sets of the real-temporal evaluation: for each class
(1 year, 2–5 years, ≥ 6 years, no reference), the runnable method with the largest pooled margin over the best
baseline (persistence and the traditional methods included), provided no region loses more than
REGION_LOSS_DB to persistence; ties within TIE_DB go to the faster. The manifest is not written from it here:
the engine takes per-class defaults separately."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..real_report import (
    CLASS_ORDER,
    NO_REFERENCE,
    PICKABLE_TRADITIONAL,
    TIE_DB,
    is_class_set,
    real_rows,
    runnable_methods,
    set_gap_class,
)

REGION_LOSS_DB = 0.2  # a class's default may lose at most this much to persistence in any one region


def _psnr(metrics: dict | None) -> float:
    value = (metrics or {}).get("psnr_log")
    return float(value) if value is not None else float("nan")


def class_margins(rows: list[dict], set_name: str) -> list[dict[str, Any]]:
    """For one gap-class set (in its reference mode), every measured method and setting that a user can run
    (zoo models, the traditional methods): its pooled psnr_log margin over the best baseline there (persistence
    and the traditional methods included; the same yardstick for every candidate, so a traditional method that is
    itself the best baseline scores 0 — measured against the next baseline instead, it would win on the weakness
    of its yardstick), its worst region against persistence (None where the class has no persistence: no
    reference), and its time per megapixel."""
    reference = set_gap_class(set_name) != NO_REFERENCE
    chosen = [r for r in real_rows(rows) if r["set"] == set_name and r["with_reference"] == reference]
    baselines = [r for r in chosen if r["family"] == "baseline"]
    persistence = next((r for r in baselines if r["model"] == "persistence"), None)
    out = []
    for r in chosen:
        if r["family"] == "baseline" and r["model"] not in PICKABLE_TRADITIONAL:
            continue
        scored = [b for b in baselines if np.isfinite(b.get("set_psnr_log", np.nan))]
        if not scored or (r["family"] == "baseline" and len(scored) < 2):
            continue  # a lone baseline has nothing to be measured against
        best = max(scored, key=lambda b: b["set_psnr_log"])
        worst, where = None, None
        if persistence is not None:
            mine, theirs = r.get("set_regions") or {}, persistence.get("set_regions") or {}
            pairs = [(k, mine[k], theirs[k]) for k in mine if k in theirs] or [
                (set_name, {"psnr_log": r.get("set_psnr_log")}, {"psnr_log": persistence.get("set_psnr_log")})
            ]
            for region, m, p in pairs:
                loss = _psnr(m) - _psnr(p)
                if worst is None or not loss >= worst:  # a NaN region is the worst: it cannot be shown to hold
                    worst, where = loss, region
        out.append(
            {
                "model": r["model"],
                "row": r,
                "set": set_name,
                "gap_class": set_gap_class(set_name),
                "pooled_psnr_log": float(r["set_psnr_log"]),
                "pooled_margin_db": float(r["set_psnr_log"] - best["set_psnr_log"]),
                "versus": best["model"],
                "worst_region_db": None if worst is None else float(worst),
                "worst_region": where,
                "holds": worst is None or bool(worst >= -REGION_LOSS_DB),
                "seconds_per_megapixel": float(r["seconds_per_megapixel"]),
            }
        )
    return out


def choose_class_defaults(rows: list[dict], entries: list[dict]) -> dict[str, dict[str, Any] | None]:
    """The per-class default rule, for every gap-class set measured: among the runnable methods whose every
    region stays within REGION_LOSS_DB of persistence, the largest pooled margin over the best baseline;
    ties within TIE_DB go to the faster. When no method holds in every region, the one whose worst region loses
    least to persistence (ties to the faster), with `holds` False. {class: choice (a `class_margins` entry with
    `tied`: the methods within TIE_DB) or None}; classes in CLASS_ORDER."""
    allowed = runnable_methods(rows, entries)
    sets = sorted({r["set"] for r in real_rows(rows) if is_class_set(r["set"])})
    out: dict[str, dict[str, Any] | None] = {}
    for name in sorted(sets, key=lambda n: (CLASS_ORDER.index(set_gap_class(n)), n)):
        cls = set_gap_class(name)
        if cls in out:
            continue  # one set per class (the first by name)
        candidates = [c for c in class_margins(rows, name) if c["model"] in allowed]
        holding = [c for c in candidates if c["holds"]]
        if holding:
            top = max(c["pooled_margin_db"] for c in holding)
            tied = [c for c in holding if c["pooled_margin_db"] >= top - TIE_DB]
        elif candidates:
            top = max(c["worst_region_db"] for c in candidates)
            tied = [c for c in candidates if c["worst_region_db"] >= top - TIE_DB]
        else:
            out[cls] = None
            continue
        choice = min(tied, key=lambda c: c["seconds_per_megapixel"])
        out[cls] = {**choice, "tied": sorted(c["model"] for c in tied if c is not choice)}
    return out
