"""The real-temporal part of the design-space report: truth and reference both real VIIRS of different dates
(`training.simulate real-temporal`), on regions never trained on. It judges the shipped zoo: the default model
and speed setting, and whether an int8 variant may ship (within INT8_MAX_DB and INT8_MAX_SUM of its fp32 model).

The real-temporal sets are gap classes (1 year, 2–5 years, ≥ 6 years between DMSP and reference, and no
reference), each gathered from the region sets (Sudan, Kenya, Mumbai; Nigeria and Greece without a reference).
Set-level metrics (`set_*`) pool every valid pixel of a set, as a user's map of the region would be scored, so
a class is scored on all its pixels and no tiny scene decides alone; `set_regions` pools each region's pixels
within the class. PSNR/SSIM columns without the prefix are means over scenes, like the simulated sets.

The per-class default rule is `design_space.class_defaults`; the manifest's defaults are still
`choose_real_default`'s, the worst case over the sets.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .simulate.real_scenes import GAP_CLASSES, NO_REFERENCE, gap_class

REAL_SETS = {  # name -> `python -m training.simulate real-temporal` arguments: one set per gap class
    "real_gap1": ["--gap-class", "1"],
    "real_gap2_5": ["--gap-class", "2-5"],
    "real_gap6plus": ["--gap-class", "6+"],
    "real_noref": ["--gap-class", "none"],
}
QUICK_REAL_SETS = {"real_gap1_mumbai": ["--gap-class", "1", "--regions", "mumbai"]}
CLASS_ORDER = tuple(GAP_CLASSES.values())  # 1 year, 2–5 years, ≥ 6 years, no reference
REAL_BASELINES_WITH_REFERENCE = ("persistence", "reference-change", "baseline", "bicubic")
REAL_BASELINES_WITHOUT_REFERENCE = ("baseline", "bicubic")
INT8_MAX_DB = 0.2  # an int8 variant ships only within this PSNR of its fp32 model on every real set and mode
INT8_MAX_SUM = 0.02  # ... and within this relative difference of its fp32 model's set sum of lights
TIE_DB = 0.05  # margins closer than this are a tie: the faster setting wins
COLUMNS = [
    "psnr_log",
    "ssim_log",
    "set_psnr_log",
    "set_r2",
    "set_sum_of_lights_error",
    "set_bright_sum_error",
    "set_bright_psnr_log",
    "seconds_per_megapixel",
]


def is_real(set_name: str) -> bool:
    return set_name.startswith("real_")


def setting_key(row: dict) -> tuple:
    return (row.get("sampler"), row.get("steps"), row.get("strength"), row.get("ensemble_k"), row.get("temperature"))


def real_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if is_real(r["set"])]


def pooled_psnr(row: dict) -> float:
    """A set's psnr_log over all its pixels at once (`set_psnr_log`), so no tiny scene decides; the mean over scenes
    only for rows measured before sets were pooled."""
    return float(row.get("set_psnr_log", row["psnr_log"]))


def _best_baseline(rows: list[dict], set_name: str, reference: bool) -> dict | None:
    chosen = [r for r in rows if r["set"] == set_name and r["with_reference"] == reference and r["family"] == "baseline"]
    return max(chosen, key=pooled_psnr) if chosen else None


PICKABLE_TRADITIONAL = ("baseline", "reference-change")  # baselines a user can run with --model (not persistence)


def setting_margins(rows: list[dict], reference: bool | None = None) -> list[dict[str, Any]]:
    """Per (model, setting) measured on every real set (in one reference mode, or both): the worst-case pooled PSNR
    margin (pooled_psnr) over the best baseline there (the candidate itself included, so a traditional method is
    never measured against a weaker yardstick than a model) (persistence and reference-change included), where that happens, and
    the mean time per megapixel. The traditional methods a user can pick are candidates too."""
    rows = [r for r in real_rows(rows) if reference is None or r["with_reference"] == reference]
    cells = sorted({(r["set"], r["with_reference"]) for r in rows})
    out = []
    candidates = {r["model"] for r in rows if r["family"] != "baseline" or r["model"] in PICKABLE_TRADITIONAL}
    for model in sorted(candidates):
        for key in sorted({setting_key(r) for r in rows if r["model"] == model}, key=str):
            mine = [r for r in rows if r["model"] == model and setting_key(r) == key]
            if {(r["set"], r["with_reference"]) for r in mine} != set(cells):
                continue  # a setting not measured everywhere cannot be judged worst-case
            worst, where = np.inf, ""
            for r in mine:
                if _best_baseline([b for b in rows if b["model"] != model], r["set"], r["with_reference"]) is None:
                    continue  # a lone baseline: nothing to measure it against
                # the best baseline there, the candidate itself included: one yardstick for every candidate
                base = _best_baseline(rows, r["set"], r["with_reference"])
                margin = pooled_psnr(r) - pooled_psnr(base)
                if margin < worst:
                    worst = margin
                    where = f"{r['set']} {'with' if r['with_reference'] else 'without'} reference vs {base['model']}"
            if not np.isfinite(worst):
                continue  # nothing to compare with (a lone baseline)
            out.append(
                {
                    "model": model,
                    "row": mine[0],
                    "worst_margin_db": float(worst),
                    "where": where,
                    "seconds_per_megapixel": float(np.mean([r["seconds_per_megapixel"] for r in mine])),
                }
            )
    return out


def fp32_twin(entry: dict) -> str | None:
    """The fp32 model an int8 model was quantized from: `variant_of`, or by name where the fp32 file is not
    shipped (normalizing_flow-int8 -> normalizing_flow-fp32, a design-space export of the same run)."""
    if entry.get("precision") != "int8":
        return None
    return entry.get("variant_of") or (entry["id"][: -len("-int8")] + "-fp32" if entry["id"].endswith("-int8") else None)


def int8_gate(rows: list[dict], entries: list[dict]) -> dict[str, dict[str, Any]]:
    """Per int8 model: the largest PSNR loss and sum-of-lights difference against its fp32 twin at the same
    setting over every real set and mode, and whether it passes. An int8 model measured on the real sets without
    its twin fails: its loss cannot be shown to be small."""
    rows = real_rows(rows)
    gates = {}
    for entry in entries:
        twin_id = fp32_twin(entry)
        if twin_id is None or not any(r["model"] == entry["id"] for r in rows):
            continue
        loss, sums = -np.inf, 0.0
        for r in (r for r in rows if r["model"] == entry["id"]):
            twin = next(
                (
                    f
                    for f in rows
                    if f["model"] == twin_id
                    and f["set"] == r["set"]
                    and f["with_reference"] == r["with_reference"]
                    and setting_key(f) == setting_key(r)
                ),
                None,
            )
            if twin is None:
                continue
            loss = max(loss, twin["psnr_log"] - r["psnr_log"])
            ratio = (1 + r["set_sum_of_lights_error"]) / (1 + twin["set_sum_of_lights_error"]) - 1
            sums = max(sums, abs(ratio))
        measured = bool(np.isfinite(loss))
        gates[entry["id"]] = {
            "fp32_twin": twin_id,
            "max_psnr_loss_db": round(float(loss), 3) if measured else None,
            "max_sum_of_lights_difference": round(float(sums), 4) if measured else None,
            "passes": bool(measured and loss <= INT8_MAX_DB and sums <= INT8_MAX_SUM),
        }
    return gates


def runnable_methods(rows: list[dict], entries: list[dict]) -> set[str]:
    """The methods a default may be: shipped zoo models (int8 ones only if they pass the real-imagery gate) and
    the traditional methods a user can pick with --model."""
    shipped = {e["id"] for e in entries if e.get("shipped", True)} | set(PICKABLE_TRADITIONAL)
    gates = int8_gate(rows, entries)
    int8 = {e["id"] for e in entries if e.get("precision") == "int8"}
    return {m for m in shipped if (gates[m]["passes"] if m in gates else m not in int8)}


def choose_real_default(rows: list[dict], entries: list[dict], reference: bool = False) -> dict[str, Any] | None:
    """For one reference mode: the runnable method (a shipped zoo model, or a traditional method a user can pick)
    and setting with the largest worst-case margin over the best other baseline on the real-temporal sets, ties
    within TIE_DB to the faster; int8 models only if they pass the gate. None when nothing was measured."""
    allowed = runnable_methods(rows, entries)
    candidates = [c for c in setting_margins(rows, reference) if c["model"] in allowed]
    if not candidates:
        return None
    top = max(c["worst_margin_db"] for c in candidates)
    tied = [c for c in candidates if c["worst_margin_db"] >= top - TIE_DB]
    return min(tied, key=lambda c: c["seconds_per_megapixel"])


def _signed(value: float | None, unit: str) -> str:
    return "fp32 twin not measured" if value is None else f"{value:+.2f}{unit}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _cell(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def real_markdown(rows: list[dict], entries: list[dict], describe_setting) -> list[str]:
    """The real-temporal tables, the int8 gate, the default and where the real ranking differs from the simulated."""
    chosen_rows = real_rows(rows)
    if not chosen_rows:
        return []
    lines = [
        "### Every column, per real-temporal set",
        "",
        "`set_*` columns pool all pixels of a set (psnr_log, its sum of lights, the brightest 1 % of truth pixels,",
        "R² of radiance); psnr_log and ssim_log without the prefix are means over its scenes.",
        "",
    ]
    for set_name in sorted({r["set"] for r in chosen_rows}):
        for reference in (True, False):
            chosen = [r for r in chosen_rows if r["set"] == set_name and r["with_reference"] == reference]
            if not chosen:
                continue
            lines += [
                f"#### {set_name} — {'with' if reference else 'without'} reference",
                "",
                "| model | setting | " + " | ".join(COLUMNS) + " |",
                "|" + "---|" * (2 + len(COLUMNS)),
            ]
            for r in sorted(chosen, key=lambda r: (r["family"] != "baseline", r["model"], str(setting_key(r)))):
                lines.append(
                    f"| {r['model']} | {describe_setting(r)} | "
                    + " | ".join(_cell(r.get(k, float("nan"))) for k in COLUMNS)
                    + " |"
                )
            lines.append("")
    for reference in (True, False):
        margins = sorted(setting_margins(rows, reference), key=lambda c: -c["worst_margin_db"])
        if not margins:
            continue
        lines += [
            f"### Worst-case margin over the best other baseline, {'with' if reference else 'without'} reference "
            "(scene means, every real-temporal set: the manifest's rule)",
            "",
            "| method | setting | worst-case margin | where | s/Mpx |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['model']} | {describe_setting(c['row'])} | {c['worst_margin_db']:+.2f} dB | {c['where']} | "
            f"{c['seconds_per_megapixel']:.2f} |"
            for c in margins
        ] + [""]
    gates = int8_gate(rows, entries)
    if gates:
        lines += [
            f"### int8 on real imagery (ships only within {INT8_MAX_DB} dB and {INT8_MAX_SUM:.0%} sum of lights of fp32)",
            "",
            "| int8 model | largest PSNR loss vs fp32 | largest sum-of-lights difference | verdict |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {_signed(g['max_psnr_loss_db'], ' dB')} | {_percent(g['max_sum_of_lights_difference'])} | "
            f"{'ships' if g['passes'] else 'removed from the zoo'} |"
            for k, g in sorted(gates.items())
        ] + [""]
    lines += [
        "### Defaults written into the manifest (the worst case over the sets, until the engine takes the per-class defaults)",
        "",
    ]
    for reference in (True, False):
        default = choose_real_default(rows, entries, reference)
        if default is None:
            continue
        lines.append(
            f"- {'With' if reference else 'Without'} a reference: **{default['model']}** ({describe_setting(default['row'])}), "
            f"the largest worst-case margin over the best other baseline, {default['worst_margin_db']:+.2f} dB "
            f"(worst: {default['where']})"
            + ("; it still loses there, and no measured method does better." if default["worst_margin_db"] < 0 else ".")
        )
    lines.append("")
    lines += ranking_differences(rows)
    return lines


def ranking_differences(rows: list[dict]) -> list[str]:
    """Each model's rank by its best PSNR on the real sets against its rank on the simulated synthetic set."""

    def ranking(where) -> list[str]:
        best: dict[str, list[float]] = {}
        for r in rows:
            if where(r) and r["family"] != "baseline":
                best.setdefault(r["model"], []).append(r["psnr_log"])
        return sorted(best, key=lambda m: -float(np.mean(best[m])))

    real = ranking(lambda r: is_real(r["set"]) and r["with_reference"])
    simulated = ranking(lambda r: r["set"] == "synthetic" and r["with_reference"])
    common = [m for m in real if m in simulated]
    if len(common) < 2:
        return []
    sim_rank = {m: i + 1 for i, m in enumerate(m for m in simulated if m in common)}
    lines = [
        "### Where the real ranking differs from the simulated one (with reference, mean PSNR over measured settings)",
        "",
        "| model | rank on real sets | rank on the synthetic set |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {i + 1} | {sim_rank[m]}{' ←' if sim_rank[m] != i + 1 else ''} |" for i, m in enumerate(common)]
    return lines + [""]


_CLASS_SET = re.compile(r"real_(gap1|gap2_5|gap6plus|noref)(_\w+)?$")
_CLASS_OF_NAME = {"gap1": GAP_CLASSES["1"], "gap2_5": GAP_CLASSES["2-5"], "gap6plus": GAP_CLASSES["6+"], "noref": NO_REFERENCE}


def is_class_set(set_name: str) -> bool:
    """A gap-class set (real_gap1, real_gap2_5, real_gap6plus, real_noref, with an optional _suffix)."""
    return _CLASS_SET.match(set_name) is not None


def set_gap_class(set_name: str) -> str | None:
    """The gap class of a real-temporal set: by name for the class sets, from the gap for the region sets of
    earlier reports (real_sudan: one year; real_mumbai_gapN: N years)."""
    m = _CLASS_SET.match(set_name)
    if m:
        return _CLASS_OF_NAME[m[1]]
    gap = set_gap_years(set_name)
    return None if gap is None else gap_class(gap)


def real_modes(set_name: str) -> tuple[bool, ...]:
    """The reference modes a real set is measured in (with_reference values): a gap class with a reference only
    with it, the no-reference class only without; region sets of earlier reports both."""
    if not is_class_set(set_name):
        return (True, False)
    return (False,) if set_gap_class(set_name) == NO_REFERENCE else (True,)


def set_gap_years(set_name: str) -> int | None:
    """Years between truth and reference in a real-temporal set: the region sets' by name (real_sudan: 1,
    real_mumbai_gapN: N), the gap classes' smallest (1, 2, 6; None without a reference)."""
    if set_name == "real_sudan":
        return 1
    m = _CLASS_SET.match(set_name)
    if m:
        return {"gap1": 1, "gap2_5": 2, "gap6plus": 6}.get(m[1])
    tail = set_name.rsplit("gap", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def _gap_label(set_name: str) -> str:
    if is_class_set(set_name):
        return set_gap_class(set_name) or "?"
    return f"{set_gap_years(set_name)} yr"


def _default_rows(rows: list[dict], default: dict | None, set_name: str, reference: bool) -> dict | None:
    if default is None:
        return None
    key = setting_key(default["row"])
    mine = [
        r
        for r in rows
        if r["set"] == set_name and r["with_reference"] == reference and r["model"] == default["model"] and setting_key(r) == key
    ]
    return mine[0] if mine else None


def _verdict(value: float | None, threshold: float, at_least: bool = True) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    ok = value >= threshold if at_least else value <= threshold
    return "met" if ok else f"missed by {abs(threshold - value):.2f}"


def real_target_rows(rows: list[dict], entries: list[dict]) -> list[tuple[str, str, str, str]]:
    """(target, where, measured, met) for the reference-aware targets (issue #12), judged on the defaults the
    report chooses (with and without a reference) on every real-temporal set."""
    out: list[tuple[str, str, str, str]] = []
    real = real_rows(rows)
    defaults = {reference: choose_real_default(rows, entries, reference) for reference in (True, False)}
    for set_name in sorted({r["set"] for r in real}):
        gap = set_gap_years(set_name)
        for reference in (True, False):
            default = defaults[reference]
            mine = _default_rows(real, default, set_name, reference)
            if mine is None:
                continue
            name = f"default ({default['model']})"
            where = f"{set_name} ({_gap_label(set_name)}), {'with' if reference else 'without'} reference"
            others = [
                r for r in real if r["set"] == set_name and r["with_reference"] == reference and r["model"] != mine["model"]
            ]
            persistence = next((r for r in others if r["model"] == "persistence"), None)
            if reference and gap == 1 and persistence:
                margin = mine["psnr_log"] - persistence["psnr_log"]
                out.append((f"{name} ≥ persistence + 0.5 dB (1-year gap)", where, _fmt_db(margin), _verdict(margin, 0.5)))
            if reference and persistence:
                margin = mine["psnr_log"] - persistence["psnr_log"]
                out.append((f"{name} never > 0.1 dB below persistence", where, _fmt_db(margin), _verdict(margin, -0.1)))
            if (not reference) or (gap is not None and gap >= 5):
                base = _best_baseline([r for r in others if r["family"] == "baseline"], set_name, reference)
                if base:
                    margin = mine["psnr_log"] - base["psnr_log"]
                    detail = f"vs {base['model']}: {_fmt_db(margin)}"
                    out.append((f"{name} ≥ best baseline + 2.1 dB", where, detail, _verdict(margin, 2.1)))
            error = mine.get("set_sum_of_lights_error")
            if error is not None:
                verdict = "met" if abs(error) <= 0.10 else f"missed by {100 * (abs(error) - 0.10):.1f} points"
                out.append((f"{name} sum of lights within ±10 %", where, f"{100 * error:+.1f} %", verdict))
            if reference and mine.get("set_r2") is not None:
                r2 = mine["set_r2"]
                out.append((f"{name} pixel R² of radiance ≥ 0.85", where, f"{r2:.3f}", _verdict(r2, 0.85)))
    return out


def _fmt_db(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f} dB"
