"""Measuring: every zoo model × sampler × NFE × ensemble size, and the baselines, through the harness
(training.evaluate) on every set; the chosen defaults on edited references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..bad_reference import bad_reference_rows
from ..evaluate import evaluate
from ..real_report import (
    REAL_BASELINES_WITH_REFERENCE,
    REAL_BASELINES_WITHOUT_REFERENCE,
    choose_real_default,
    is_real,
    real_modes,
)
from .rows_cache import RowCache, engine_fingerprint

GRID = {  # sampler -> NFE budgets of the full sweep (synthetic set, with reference, fp32 models)
    "diffusion": {"ddim": [2, 4, 8, 16, 50], "dpmpp_2m": [2, 4, 8, 16], "euler": [4, 8], "heun": [3, 7], "ddpm": [50]},
    "flow_matching": {"flow_euler": [2, 4, 8, 16, 50], "flow_heun": [3, 7]},
}
QUICK_GRID = {"diffusion": {"ddim": [2], "dpmpp_2m": [2]}, "flow_matching": {"flow_euler": [2]}}
STAGED_STRENGTH = 0.5
ENSEMBLES = [1, 2, 4]
SCENES = 6  # scenes per set (of 12 synthetic / 8 Greece): keeps the whole grid to ~20 min on 2 CPU cores
KEY_NFE = [8]  # plain sampling measured on every other set/mode (with STAGED_NFE staged, for the margins)
SPEED_NFE = [4, 8]  # int8 models: plain budgets on the synthetic set (with STAGED_NFE: their speed levels)
STAGED_NFE = [2, 4, 8]
TEMPERATURES = [0.0, 0.5, 1.0]  # normalizing flows, besides the engine's default 0.8 (synthetic set, with reference)


def steps_for(sampler: str, nfe_budget: int) -> int:
    from nightlight_fusion_plugin.core.engine.samplers import steps_for_nfe

    return max(1, steps_for_nfe(sampler, nfe_budget))


def bad_references(rows: list[dict], entries: list[dict], sets: dict[str, Path], quick: bool) -> list[dict]:
    """The chosen defaults (with and without a reference) on edited references of real scenes (bad_reference.py):
    the first two scenes of the one-year class (Mumbai's, two sensor draws; one in a quick report)."""
    with_default = choose_real_default(rows, entries, True)
    without_default = choose_real_default(rows, entries, False)
    if with_default is None or without_default is None:
        return []
    chosen = ["real_gap1_mumbai"] if quick else ["real_gap1"]
    out = []
    for name in (n for n in chosen if n in sets):
        out += bad_reference_rows(sets[name], with_default["model"], without_default["model"], limit=1 if quick else 2)
    return out


def run_grid(
    zoo_models: list,
    sets: dict[str, Path],
    quick: bool,
    cache: RowCache | None = None,
    real_models: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Baselines and every zoo model on every set, with and without reference. The full sampler × NFE sweep,
    ensembles and int8 speed levels run on the synthetic set with reference; elsewhere each model is measured
    at KEY_NFE plain and the middle STAGED_NFE budget staged (what the targets and the margins need). On the
    real-temporal sets only `real_models` (the shipped ones and their fp32 twins) are measured, against
    persistence and reference-change too."""
    from nightlight_fusion_plugin.core.engine.models import available_models

    runnable = {m.id for m in available_models()} | {"persistence", "bicubic"}
    rows = []
    limit = 2 if quick else SCENES  # the simulated sets' first scenes; a real-temporal class is scored whole
    cache = cache or RowCache(None)

    engine = engine_fingerprint()

    def measure(model_key: str, model: str, data: Path, **kwargs) -> dict[str, Any]:
        scenes = None if is_real(data.name) and not quick else limit
        key = json.dumps([model_key, str(data), scenes, kwargs, engine], sort_keys=True)
        return cache.get(key, lambda: evaluate(model, data, limit=scenes, **kwargs))

    def add(result: dict, **extra) -> None:
        rows.append({**result, **extra})
        print(json.dumps(rows[-1]), flush=True)

    for set_name, data in sets.items():
        for reference in real_modes(set_name) if is_real(set_name) else (True, False):
            sweep = set_name == "synthetic" and reference
            if is_real(set_name):
                baselines = REAL_BASELINES_WITH_REFERENCE if reference else REAL_BASELINES_WITHOUT_REFERENCE
            else:
                baselines = ("baseline", "bicubic") + (("persistence",) if reference else ())
            for baseline in (b for b in baselines if b in runnable):
                add(
                    measure(baseline, baseline, data, with_reference=reference),
                    set=set_name,
                    family="baseline",
                    precision="fp32",
                    staged=False,
                    nfe=0,
                )
            for model in zoo_models:
                if is_real(set_name) and real_models is not None and model.id not in real_models:
                    continue
                common = dict(set=set_name, family=model.family, precision=model.precision)
                mkey = model.sha256
                if model.family in ("unet", "normalizing_flow"):
                    add(measure(mkey, model.id, data, with_reference=reference), **common, staged=False, nfe=1)
                    if model.family == "normalizing_flow" and sweep and model.precision == "fp32":
                        for temperature in TEMPERATURES[:1] if quick else TEMPERATURES:
                            result = measure(mkey, model.id, data, temperature=temperature)
                            add(result, **common, staged=False, nfe=1)
                        for k in ENSEMBLES[1:2] if quick else ENSEMBLES[1:]:
                            add(measure(mkey, model.id, data, ensemble=k), **common, staged=False, nfe=k, ensemble_k=k)
                    continue
                grid = (QUICK_GRID if quick else GRID)[model.family]
                first = next(iter(grid))
                if not (sweep and model.precision == "fp32") and not quick:
                    grid = {first: SPEED_NFE if sweep else KEY_NFE}
                for sampler, budgets in grid.items():
                    for budget in budgets:
                        steps = steps_for(sampler, budget)
                        add(
                            measure(mkey, model.id, data, sampler=sampler, steps=steps, with_reference=reference),
                            **common,
                            staged=False,
                            nfe=budget,
                        )
                if model.regression_model:
                    staged_budgets = STAGED_NFE if sweep else STAGED_NFE[1:2]
                    for budget in (2,) if quick else staged_budgets:  # NFE = steps × strength (diffusers img2img)
                        steps = steps_for(first, int(budget / STAGED_STRENGTH))
                        add(
                            measure(
                                mkey,
                                model.id,
                                data,
                                sampler=first,
                                steps=steps,
                                with_reference=reference,
                                strength=STAGED_STRENGTH,
                            ),
                            **common,
                            staged=True,
                            nfe=budget,
                        )
                if sweep and model.precision == "fp32":
                    for k in ENSEMBLES[:2] if quick else ENSEMBLES:
                        add(
                            measure(mkey, model.id, data, sampler=first, steps=steps_for(first, 4), ensemble=k),
                            **common,
                            staged=False,
                            nfe=4 * k,
                            ensemble_k=k,
                        )
    return rows
