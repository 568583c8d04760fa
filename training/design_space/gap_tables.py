"""The real-temporal evaluation by gap class (issue #19) in words: what each class holds, its scores pooled over
all its pixels with each region beside, and the margins the per-class default rule used with its choice."""

from __future__ import annotations

import numpy as np

from ..real_report import CLASS_ORDER, TIE_DB, is_class_set, real_rows, set_gap_class
from .class_defaults import REGION_LOSS_DB, choose_class_defaults, class_margins

REGION_NAMES = {"sudan": "Sudan", "kenya": "Kenya", "mumbai": "Mumbai", "nigeria": "Nigeria", "greece": "Greece"}

INTRO = [
    "Truth and reference are both real VIIRS of different dates; only the DMSP is simulated, from the truth, by the",
    "sensor model (even scenes: parameters from the calibrated range; odd: outside it). Every scene lies in a region",
    "never trained on (`training/real_sources.py`, `REAL_TEMPORAL_HOLDOUT`): **Sudan** (Black Marble Feb 2024 vs",
    "Feb 2023: four 768² windows of tile 20–30N/30–40E chosen by light — Jeddah/Mecca, the Nile at Cairo's edge,",
    "median light, desert — and the Libyan flare field, 704²), **Kenya** (Black Marble annual 2020–2023: Nairobi and",
    "the central highlands, one 560×656 window, every ordered pair of years), **Mumbai** (annual medians, the whole",
    "48×101 clip, gaps 1, 3, 5 and 9 years), **Nigeria** (annual 2023: Lagos and two of the western delta's flare",
    "fields, three 392×319 windows; no reference) and **Greece** (Thessaloniki, 2017 12-month mean; no reference).",
    "Training keeps the rest of Kenya (Mombasa and the coast, Kisumu, Nakuru, Eldoret) and of Nigeria (Abuja, Kano,",
    "Ibadan, Port Harcourt and the eastern delta's flares). Scenes are grouped by the years between the DMSP (truth)",
    "year and the reference year (`python -m training.simulate real-temporal --gap-class …`; each scene records",
    "its signed gap): each class is scored on all its pixels at once — psnr_log on log1p radiance, the sum of",
    "lights, the brightest 1 % of truth pixels, R² of radiance — so no tiny scene decides alone, with each region's",
    "pixels pooled beside. The no-reference class is every distinct truth scene of every region, run without a",
    "reference. The signed sum of lights of a class cancels between the two directions of a pair (persistence scores",
    "0 % on Kenya's ordered pairs), so beside it stands the scenes' sums off: each scene's |Σpred − Σtruth| added up,",
    "over the class's total light. The detail metric: HF power is the fused map's radially averaged log1p power at",
    "wavelengths under 4 px (1 km, finer than the DMSP can see) over the truth's, summed over the class's scenes (1",
    "keeps the truth's fine detail, below 1 blurs it); bright SSIM is ssim_log over the windows centred on each",
    "scene's brightest 5 %, weighted by the scenes' pixels.",
    "",
]


def _region_order(regions) -> list[str]:
    known = [r for r in REGION_NAMES if r in regions]
    return known + sorted(r for r in regions if r not in REGION_NAMES)


def _class_sets(rows: list[dict]) -> list[str]:
    names = {r["set"] for r in real_rows(rows) if is_class_set(r["set"])}
    return sorted(names, key=lambda n: (CLASS_ORDER.index(set_gap_class(n)), n))


def _num(value, fmt: str) -> str:
    return "—" if value is None or not np.isfinite(value) else format(value, fmt)


def _class_rows(rows: list[dict], set_name: str) -> list[dict]:
    reference = set_gap_class(set_name) != CLASS_ORDER[-1]
    chosen = [r for r in real_rows(rows) if r["set"] == set_name and r["with_reference"] == reference]
    return sorted(chosen, key=lambda r: (r["family"] != "baseline", r["model"], str(r.get("sampler")), r.get("nfe", 0)))


def sizes_table(rows: list[dict]) -> list[str]:
    """Per class: the regions it holds (scenes, scored megapixels) and its total, from the measured rows."""
    lines = ["| class | set | regions (scenes, Mpx scored) | Mpx scored |", "|---|---|---|---|"]
    for name in _class_sets(rows):
        row = _class_rows(rows, name)[0]
        regions = row.get("set_regions") or {}
        parts = [
            f"{REGION_NAMES.get(k, k)} ({regions[k]['scenes']}, {regions[k]['pixels'] / 1e6:.2f})" for k in _region_order(regions)
        ]
        lines.append(f"| {set_gap_class(name)} | `{name}` | {', '.join(parts)} | {row.get('set_pixels', 0) / 1e6:.2f} |")
    return lines + [""]


def pooled_tables(rows: list[dict], describe_setting) -> list[str]:
    """One table per class: every measured method's pooled scores, and each region's psnr_log (its scenes' sums
    off) beside. "Sum of lights" is signed over all pixels; "scenes' sums, off" adds each scene's absolute error
    (metrics.scene_sum_of_lights_error), since a class holding both directions of a pair cancels the signed one."""
    lines = []
    for name in _class_sets(rows):
        chosen = _class_rows(rows, name)
        regions = _region_order({k for r in chosen for k in (r.get("set_regions") or {})})
        reference = set_gap_class(name) != CLASS_ORDER[-1]
        lines += [
            f"### {set_gap_class(name)} (`{name}`, {'with' if reference else 'without'} reference), pooled over "
            f"{chosen[0].get('set_pixels', 0) / 1e6:.2f} Mpx",
            "",
            "| method | setting | psnr_log | sum of lights | scenes' sums, off | brightest 1 % sum | R² | HF power | "
            "bright SSIM | "
            + " | ".join(f"{REGION_NAMES.get(k, k)} psnr_log (scenes' sums off)" for k in regions)
            + " | s/Mpx |",
            "|" + "---|" * (10 + len(regions)),
        ]
        for r in chosen:
            cells = []
            for k in regions:
                m = (r.get("set_regions") or {}).get(k)
                off = m.get("scene_sum_of_lights_error") if m else None
                cells.append("—" if m is None else f"{_num(m['psnr_log'], '.2f')} ({_num(off, '.0%')})")
            lines.append(
                f"| {r['model']} | {describe_setting(r)} | {_num(r.get('set_psnr_log'), '.2f')} | "
                f"{_num(r.get('set_sum_of_lights_error'), '+.1%')} | {_num(r.get('set_scene_sum_of_lights_error'), '.1%')} | "
                f"{_num(r.get('set_bright_sum_error'), '+.1%')} | "
                f"{_num(r.get('set_r2'), '.3f')} | {_num(r.get('set_high_frequency_ratio'), '.2f')} | "
                f"{_num(r.get('set_bright_ssim_log'), '.3f')} | "
                + " | ".join(cells)
                + f" | {_num(r.get('seconds_per_megapixel'), '.1f')} |"
            )
        lines.append("")
    return lines


def rule_tables(rows: list[dict], entries: list[dict], describe_setting) -> list[str]:
    """The margins the per-class default rule used, per class, and its choice."""
    choices = choose_class_defaults(rows, entries)
    if not choices:
        return []
    lines = [
        "### Per-class defaults (the rule of issue #19)",
        "",
        "For each class, the method with the largest pooled psnr_log margin over the best baseline there",
        f"(persistence and the traditional methods included), provided no region loses more than {REGION_LOSS_DB} dB",
        f"to persistence; margins within {TIE_DB} dB are a tie and go to the faster. Candidates: the shipped zoo models",
        "and the traditional methods a user can pick (`baseline`, `reference-change`). The manifest's",
        "`default_by_gap_class` holds these choices, an int8 winner written as its fp32 model (`measured_as` keeps the",
        "variant): the plugin picks the precision per machine (`--precision auto`), and the engine the class from the gap.",
        "",
        "| class | method | setting | pooled psnr_log | margin over the best baseline | worst region vs persistence "
        f"| within {REGION_LOSS_DB} dB | s/Mpx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in _class_sets(rows):
        cls = set_gap_class(name)
        choice = choices.get(cls)
        margins = sorted(class_margins(rows, name), key=lambda c: -c["pooled_margin_db"])
        for c in margins:
            mark = "**" if choice is not None and c["row"] is choice["row"] else ""
            worst = (
                "no persistence"
                if c["worst_region_db"] is None
                else f"{c['worst_region_db']:+.2f} dB ({REGION_NAMES.get(c['worst_region'], c['worst_region'])})"
            )
            lines.append(
                f"| {cls} | {mark}{c['model']}{mark} | {describe_setting(c['row'])} | {c['pooled_psnr_log']:.2f} | "
                f"{c['pooled_margin_db']:+.2f} dB vs {c['versus']} | {worst} | {'yes' if c['holds'] else 'no'} | "
                f"{c['seconds_per_megapixel']:.1f} |"
            )
    lines.append("")
    for cls in CLASS_ORDER:
        if cls not in choices:
            continue
        choice = choices[cls]
        if choice is None:
            lines.append(f"- {cls}: no runnable method measured.")
            continue
        text = (
            f"- {cls}: **{choice['model']}** ({describe_setting(choice['row'])}), {choice['pooled_margin_db']:+.2f} dB "
            f"pooled over {choice['versus']}"
        )
        if choice["worst_region_db"] is not None:
            region = REGION_NAMES.get(choice["worst_region"], choice["worst_region"])
            text += f"; worst region {region}, {choice['worst_region_db']:+.2f} dB against persistence"
        if not choice["holds"]:
            text += f" — no method keeps every region within {REGION_LOSS_DB} dB of persistence: this one loses least"
        if choice["tied"]:
            text += f" (tied within {TIE_DB} dB and slower: {', '.join(choice['tied'])})"
        lines.append(text + ".")
    return lines + [""]


def gap_class_markdown(rows: list[dict], entries: list[dict], describe_setting) -> list[str]:
    """The real-temporal section's head: the sets, the per-class pooled tables and the per-class default rule."""
    if not real_rows(rows):
        return [
            "## Real-temporal sets",
            "",
            "Not measured: `../shared/data/real` (Sudan and Kenya Black Marble, Mumbai, Nigeria) was not found here.",
            "",
        ]
    lines = ["## Real-temporal sets (judged first)", "", *INTRO]
    if _class_sets(rows):
        lines += ["Sizes (pixels scored: valid in the truth; fill such as sea is left out):", "", *sizes_table(rows)]
        lines += pooled_tables(rows, describe_setting)
        lines += rule_tables(rows, entries, describe_setting)
    return lines
