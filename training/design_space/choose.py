"""Decisions from measured rows: margins over the baselines, speed levels (Pareto front of time vs PSNR) and
the plugin's default model."""

from __future__ import annotations

import numpy as np

from ..real_report import (
    PICKABLE_TRADITIONAL,
    choose_real_default,
    real_rows,
)


def best(rows: list[dict], **where) -> dict | None:
    chosen = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return max(chosen, key=lambda r: r["psnr_log"]) if chosen else None


def margins(rows: list[dict], only_set: str | None = None) -> dict[str, float]:
    """Per model: its smallest PSNR margin over the best baseline across sets (or only `only_set`) and
    reference modes, each model at its best measured setting."""
    out: dict[str, float] = {}
    for model in {r["model"] for r in rows if r["family"] != "baseline"}:
        worst = np.inf
        for set_name in {r["set"] for r in rows} if only_set is None else {only_set}:
            for reference in (True, False):
                base = best(rows, set=set_name, with_reference=reference, family="baseline")
                mine = best(rows, set=set_name, with_reference=reference, model=model)
                if base and mine:
                    worst = min(worst, mine["psnr_log"] - base["psnr_log"])
        out[model] = float(worst)
    return out


LEVEL_FLOOR_DB = 3.0
LEVEL_MIN_SAVING = 0.15


def speed_levels(rows: list[dict], model_id: str) -> list[dict]:
    """The model's Pareto front of (time, PSNR) on the synthetic set with reference, fastest first, ≤ 5 levels."""
    points = [
        r
        for r in rows
        if r["model"] == model_id
        and r["set"] == "synthetic"
        and r["with_reference"]
        and r.get("sampler")
        and not r.get("ensemble_k")
    ]
    if not points:
        return []
    # Usable settings only (within LEVEL_FLOOR_DB of the model's best), then the Pareto front from the best
    # down: a faster level must save at least LEVEL_MIN_SAVING of the time, so that timing noise between
    # near-equal settings cannot put a much worse setting on the slider.
    top = max(r["psnr_log"] for r in points)
    usable = sorted((r for r in points if r["psnr_log"] >= top - LEVEL_FLOOR_DB), key=lambda r: -r["psnr_log"])
    front: list[dict] = []
    for r in usable:
        if not front or r["seconds_per_megapixel"] < (1 - LEVEL_MIN_SAVING) * min(f["seconds_per_megapixel"] for f in front):
            front.append(r)
    front.sort(key=lambda r: r["seconds_per_megapixel"])
    if len(front) > 5:
        front = [front[i] for i in np.linspace(0, len(front) - 1, 5).round().astype(int)]
    return [
        {
            "level": i + 1,
            "sampler": r["sampler"],
            "steps": r["steps"],
            "nfe": r["nfe"],
            "strength": r.get("strength") or 1.0,
            "psnr": round(r["psnr_log"], 3),
            "seconds_per_megapixel": round(r["seconds_per_megapixel"], 3),
        }
        for i, r in enumerate(front)
    ]


def default_speed(levels: list[dict]) -> int:
    """The slider's starting level: the middle of the measured levels (fastest first: the faster of two middles)."""
    return max(1, (len(levels) + 1) // 2)


INT8_TOLERANCE_DB = 0.2


def default_margins(rows: list[dict]) -> dict[str, float]:
    """The margins that choose the default: on the robustness hold-out (unseen sensor parameters, distant
    reference year), with and without reference; all sets where that set was not measured."""
    robust = margins(rows, "robustness") if any(r["set"] == "robustness" for r in rows) else {}
    return {k: v for k, v in robust.items() if np.isfinite(v)} or margins(rows)


def choose_default(m: dict[str, float], entries: list[dict]) -> str | None:
    """The model with the largest margin `m` over the baselines, if positive; if it is an fp32 model whose
    int8 variant keeps its margin within INT8_TOLERANCE_DB, the int8 variant (the CPU default)."""
    shipped = {e["id"] for e in entries if e.get("shipped", True)}
    if entries:  # design-space models (trained, evaluated, not in the zoo) cannot be the plugin's default
        m = {k: v for k, v in m.items() if k in shipped}
    if not m or max(m.values()) <= 0:
        return None  # no zoo model beats the baselines everywhere: the traditional method stays the default
    top = max(m, key=m.get)
    int8 = next((e["id"] for e in entries if e.get("variant_of") == top and e.get("precision") == "int8"), None)
    if int8 in m and m[int8] > 0 and m[top] - m[int8] <= INT8_TOLERANCE_DB:
        return int8
    return top


def report_default(rows: list[dict], entries: list[dict]) -> tuple[str | None, dict | None]:
    """The default model id (None: the traditional method), decided on the real-temporal sets when they were
    measured (with the chosen setting), else by the margin on the robustness hold-out."""
    if real_rows(rows):  # the reference-free default; the with-reference one is the manifest's default_with_reference
        choice = choose_real_default(rows, entries, reference=False)
        zoo_model = choice is not None and choice["model"] not in PICKABLE_TRADITIONAL
        return (choice["model"] if zoo_model else None), choice
    robust = default_margins(rows)
    return (choose_default(robust, entries) if robust else None), None
