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
from typing import Any

import numpy as np

from .bad_reference import bad_reference_markdown, bad_reference_rows
from .evaluate import evaluate
from .real_report import (
    PICKABLE_TRADITIONAL,
    QUICK_REAL_SETS,
    REAL_BASELINES_WITH_REFERENCE,
    REAL_BASELINES_WITHOUT_REFERENCE,
    REAL_SETS,
    choose_real_default,
    fp32_twin,
    int8_gate,
    is_real,
    real_markdown,
    real_rows,
    real_target_rows,
)

SETS = {
    "synthetic": ("pairs", ["--count", "12", "--size", "128", "--seed", "9000"]),
    "robustness": ("pairs", ["--count", "12", "--size", "128", "--seed", "9100", "--robustness-holdout", "--min-gap", "8"]),
    "greece": ("greece", []),
}
QUICK_SETS = {
    "synthetic": ("pairs", ["--count", "2", "--size", "64", "--seed", "9000"]),
    "robustness": ("pairs", ["--count", "2", "--size", "64", "--seed", "9100", "--robustness-holdout", "--min-gap", "8"]),
}
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


def ensure_sets(eval_dir: Path, quick: bool, real_dir: Path | None) -> dict[str, Path]:
    from .simulate.__main__ import main as simulate

    sets = {}
    if real_dir is not None and (real_dir / "sudan_blackmarble").is_dir() and (real_dir / "mumbai").is_dir():
        for name, args in (QUICK_REAL_SETS if quick else REAL_SETS).items():  # real imagery first: it judges
            out = eval_dir / name
            if not (out / "manifest.json").exists():
                if simulate(["real-temporal", "--out", str(out), "--real", str(real_dir), *args]) != 0:
                    raise RuntimeError(f"could not make the {name} evaluation set")
            sets[name] = out
    for name, (command, args) in (QUICK_SETS if quick else SETS).items():
        out = eval_dir / name
        if not (out / "manifest.json").exists():
            extra = ["--real", str(real_dir)] if command == "greece" and real_dir else []
            if command == "greece" and not (real_dir or Path()).exists():
                continue
            if simulate([command, "--out", str(out), *args, *extra]) != 0:
                raise RuntimeError(f"could not make the {name} evaluation set")
        sets[name] = out
    return sets


def design_space_zoo(zoo: Path, out: Path, runs: list[Path]) -> Path:
    """A zoo for the report: the shipped models (by absolute path) plus each training run in `runs` that is not
    shipped, exported to fp32 ONNX once (re-exported when its checkpoint changes). Design-space models are
    measured like the shipped ones but never become the plugin's default or enter model_zoo/."""
    from .export import export, sha256_of

    shipped = json.loads((zoo / "manifest.json").read_text())["models"] if (zoo / "manifest.json").exists() else []
    for entry in shipped:
        entry["file"] = str((zoo / entry["file"]).resolve())
        if entry.get("card"):
            entry["card"] = str((zoo / entry["card"]).resolve())
    out.mkdir(parents=True, exist_ok=True)
    known_path = out / "exported.json"
    known = json.loads(known_path.read_text()) if known_path.exists() else {}
    extras = []
    for run in runs:
        checkpoint = run / "checkpoint.pt" if run.is_dir() else run
        name = run.name if run.is_dir() else run.parent.name
        if not checkpoint.exists() or any(e["id"] == f"{name}-fp32" for e in shipped):
            continue
        digest = sha256_of(checkpoint)
        if known.get(name, {}).get("checkpoint_sha256") != digest or not (out / f"{name}-fp32.onnx").exists():
            print(f"report: exporting the design-space run {run} as {name}-fp32", flush=True)
            unet = next((e["id"] for e in shipped if e["family"] == "unet" and e["precision"] == "fp32"), None)
            entry = export(str(checkpoint), out / "exports", quantize="none", model_id=name, regression=unet)[0]
            entry["file"] = str((out / "exports" / entry["file"]).resolve())
            entry["card"] = str((out / "exports" / entry["card"]).resolve())
            known[name] = {"checkpoint_sha256": digest, "entry": entry}
            known_path.write_text(json.dumps(known, indent=1) + "\n")
        extras.append(known[name]["entry"])
    (out / "manifest.json").write_text(json.dumps({"version": 1, "models": shipped + extras}, indent=2) + "\n")
    return out


def steps_for(sampler: str, nfe_budget: int) -> int:
    from nightlight_fusion_plugin.core.engine.samplers import steps_for_nfe

    return max(1, steps_for_nfe(sampler, nfe_budget))


def bad_references(rows: list[dict], entries: list[dict], sets: dict[str, Path], quick: bool) -> list[dict]:
    """The chosen defaults (with and without a reference) on edited references of real scenes (bad_reference.py):
    the first scenes of the Mumbai one-year set and of Sudan (one Mumbai scene in a quick report)."""
    with_default = choose_real_default(rows, entries, True)
    without_default = choose_real_default(rows, entries, False)
    if with_default is None or without_default is None:
        return []
    chosen = ["real_mumbai_gap1"] if quick else ["real_mumbai_gap1", "real_sudan"]
    out = []
    for name in (n for n in chosen if n in sets):
        out += bad_reference_rows(sets[name], with_default["model"], without_default["model"], limit=1 if quick else 2)
    return out


def engine_fingerprint(core: Path | None = None) -> str:
    """sha256 (12 hex) of the engine's sources and data (nightlight_fusion_plugin/core): a cached row is reused
    only if the engine that measured it is the same, so a change to the engine re-measures every row."""
    import hashlib

    core = core or Path(__file__).resolve().parents[1] / "nightlight_fusion_plugin" / "core"
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
    limit = 2 if quick else SCENES
    cache = cache or RowCache(None)

    engine = engine_fingerprint()

    def measure(model_key: str, model: str, data: Path, **kwargs) -> dict[str, Any]:
        key = json.dumps([model_key, str(data), limit, kwargs, engine], sort_keys=True)
        return cache.get(key, lambda: evaluate(model, data, limit=limit, **kwargs))

    def add(result: dict, **extra) -> None:
        rows.append({**result, **extra})
        print(json.dumps(rows[-1]), flush=True)

    for set_name, data in sets.items():
        for reference in (True, False):
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


def best(rows: list[dict], **where) -> dict | None:
    chosen = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return max(chosen, key=lambda r: r["psnr_log"]) if chosen else None


def plots(rows: list[dict], images: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images.mkdir(parents=True, exist_ok=True)
    made = []
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key in sorted(
        {
            (r["model"], r.get("sampler"))
            for r in rows
            if r.get("sampler") and r["set"] == "synthetic" and r["with_reference"] and not r.get("ensemble_k")
        }
    ):
        pts = sorted(
            (r["nfe"], r["psnr_log"], r["seconds_per_megapixel"])
            for r in rows
            if (r["model"], r.get("sampler")) == key
            and r["set"] == "synthetic"
            and r["with_reference"]
            and not r.get("ensemble_k")
        )
        a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} {key[1]}")
        b.plot([p[2] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} {key[1]}")
    for r in rows:
        if r["family"] == "baseline" and r["set"] == "synthetic" and r["with_reference"]:
            a.axhline(r["psnr_log"], ls="--", lw=0.8, color="grey")
            a.text(1, r["psnr_log"], r["model"], fontsize=7, color="grey")
    a.set_xscale("log")
    a.set_xlabel("NFE (model evaluations)")
    a.set_ylabel("PSNR, log radiance (dB)")
    b.set_xscale("log")
    b.set_xlabel("CPU seconds per megapixel")
    a.legend(fontsize=7)
    a.set_title("Quality vs NFE (synthetic test set, with reference)")
    b.set_title("Quality vs time")
    fig.tight_layout()
    fig.savefig(images / "design_space_psnr_nfe.png", dpi=90)
    plt.close(fig)
    made.append("images/design_space_psnr_nfe.png")
    return made


def sample_tiles(zoo_models: list, sets: dict[str, Path], images: Path, rows: list[dict] | None = None) -> list[str]:
    """Side-by-side tiles per set: DMSP, reference, truth, the traditional baseline and each fp32 model at its
    default speed level, on the first scene, log1p colour scale. A model without speed levels in its manifest
    (a design-space model) is shown at the level `update_manifest` would give it from `rows`."""
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rasterio.enums import Resampling

    from nightlight_fusion_plugin.core.raster.grids import Grid, inspect_raster

    from .evaluate import predict_scene, read_on

    made = []
    shown = [m for m in zoo_models if m.precision == "fp32"]
    for set_name, data in sets.items():
        scene = json.loads((data / "manifest.json").read_text())["scenes"][0]
        files = {k: str(data / v) for k, v in scene["files"].items()}
        info = inspect_raster(files["viirs_truth"], "truth")
        grid = Grid(info.crs, info.transform, info.width, info.height)
        panels = [
            ("DMSP (DN, bilinear)", read_on(files["dmsp"], grid), (0, 63)),
            ("reference VIIRS", read_on(files["viirs_reference"], grid, Resampling.nearest), None),
            ("truth VIIRS", read_on(files["viirs_truth"], grid, Resampling.nearest), None),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            for model_id in ["baseline", *(m.id for m in shown)]:
                # each model at its default speed level (the manifest's, as the plugin runs it)
                model = next((m for m in shown if m.id == model_id), None)
                options = {}
                if model is not None and not model.speed_levels:
                    levels = speed_levels(rows or [], model_id)
                    if levels:
                        level = levels[default_speed(levels) - 1]
                        options = {k: level[k] for k in ("sampler", "steps", "strength")}
                prediction = predict_scene(model_id, files, scene, grid, Path(tmp), **options)
                panels.append((model_id, prediction, None))
        vmax = float(np.log1p(np.nanpercentile(panels[2][1], 99.5)))
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
        for ax, (title, array, fixed) in zip(np.atleast_1d(axes), panels):
            if fixed:
                ax.imshow(array, cmap="gray", vmin=fixed[0], vmax=fixed[1])
            else:
                ax.imshow(np.log1p(np.clip(array, 0, None)), cmap="magma", vmin=0, vmax=vmax)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.suptitle(
            f"{set_name} test set, scene {scene['index']} (radiance panels: log1p, same scale; models at their default speed)",
            fontsize=9,
        )
        fig.tight_layout()
        name = f"images/design_space_tiles_{set_name}.png"
        fig.savefig(images.parent / name, dpi=80)
        plt.close(fig)
        made.append(name)
    return made


GENERATIVE = ("diffusion", "flow_matching", "normalizing_flow")


def _fmt(value: float | None, unit: str = "dB") -> str:
    return "not measured" if value is None or not np.isfinite(value) else f"{value:+.2f} {unit}"


def setting(row: dict) -> str:
    """How a row was sampled, in words: sampler, staged, NFE and ensemble size."""
    k = row.get("ensemble_k")
    if not row.get("sampler"):
        text = "one pass" + (f" at temperature {row['temperature']:g}" if row.get("temperature") is not None else "")
        return text + (f" (mean of K={k} samples)" if k else "")
    text = f"{row['sampler']}{' staged' if row.get('staged') else ''}, NFE {row['nfe']}"
    return text + (f" (mean of K={k} samples of NFE {row['nfe'] // k})" if k else "")


def target_rows(rows: list[dict], entries: list[dict] | None = None) -> list[tuple[str, str, str, str]]:
    """(target, where, measured, met) for each target of the design-space issue."""
    out = []
    m = default_margins(rows)
    default = report_default(rows, entries or [])[0] if m else None
    label = f"default ({default})"
    if m and default is None:  # no default: judge the model with the largest worst-case margin instead
        default = max(m, key=m.get)
        label = f"best-margin model ({default}, not the default)"
    for set_name in ("synthetic", "greece"):
        for reference in (True, False):
            base = best(rows, set=set_name, with_reference=reference, family="baseline")
            gens = [r for r in rows if r["set"] == set_name and r["with_reference"] == reference and r["family"] in GENERATIVE]
            top = max(gens, key=lambda r: r["psnr_log"]) if gens else None
            if not base:
                continue
            gain = top["psnr_log"] - base["psnr_log"] if top else None
            where = f"{set_name}, {'with' if reference else 'without'} reference"
            detail = f"{top['model']} {setting(top)} vs {base['model']}: " if top else ""
            out.append(("best generative ≥ best baseline + 2.1 dB", where, detail + _fmt(gain), _met(gain, 2.1)))
    for model in sorted({r["model"] for r in rows if r["family"] in ("diffusion", "flow_matching") and r["precision"] == "fp32"}):
        mine = [r for r in rows if r["model"] == model and r["set"] == "synthetic" and r["with_reference"]]
        mine = [r for r in mine if not r.get("ensemble_k")]
        fast = [r for r in mine if r["nfe"] <= 8 and (r.get("staged") or r["family"] == "flow_matching")]
        slow = [r for r in mine if r["nfe"] >= 50]
        if fast and slow:
            f, b = max(fast, key=lambda r: r["psnr_log"]), max(slow, key=lambda r: r["psnr_log"])
            gap = f["psnr_log"] - b["psnr_log"]
            detail = (
                f"{f.get('sampler')}{' staged' if f.get('staged') else ''} NFE {f['nfe']} vs {b.get('sampler')} NFE {b['nfe']}: "
            )
            out.append(
                ("≤ 8 NFE within 0.3 dB of 50+ NFE", f"{model}, synthetic, with reference", detail + _fmt(gap), _met(gap, -0.3))
            )
    out += sharpness_rows(rows, entries or [])
    for reference in (True, False):
        chosen = [r for r in rows if r["set"] == "greece" and r["with_reference"] == reference and r["family"] != "baseline"]
        if chosen:
            top = max(chosen, key=lambda r: r.get("r2", -np.inf))
            where = f"greece, {'with' if reference else 'without'} reference"
            out.append(("pixel R² on radiance ≥ 0.87", where, f"{top['model']}: {top['r2']:.3f}", _met(top["r2"], 0.87)))
    if default:
        for reference in (True, False):
            base = best(rows, set="robustness", with_reference=reference, family="baseline")
            mine = best(rows, set="robustness", with_reference=reference, model=default)
            if base and mine:
                gain = mine["psnr_log"] - base["psnr_log"]
                where = f"robustness hold-out, {'with' if reference else 'without'} reference"
                out.append((f"{label} keeps ≥ 2.1 dB margin", where, _fmt(gain), _met(gain, 2.1)))
    return out + real_target_rows(rows, entries or [])


def sharpness_rows(rows: list[dict], entries: list[dict]) -> list[tuple[str, str, str, str]]:
    """Staged diffusion at ≤ 8 NFE (its best such setting) against the regression UNet it warm-starts from, by SSIM
    of log radiance (structure, where blur costs) on the synthetic set and every real set, with a reference."""
    partner = {e["id"]: e.get("regression_model") for e in entries}
    out = []
    for model in sorted({r["model"] for r in rows if r["family"] == "diffusion" and r["precision"] == "fp32"}):
        unet = partner.get(model)
        for set_name in sorted({r["set"] for r in rows if r["set"] == "synthetic" or is_real(r["set"])}):
            here = [r for r in rows if r["set"] == set_name and r["with_reference"] and not r.get("ensemble_k")]
            fast = [r for r in here if r["model"] == model and r.get("staged") and r["nfe"] <= 8]
            base = [r for r in here if r["model"] == unet]
            if fast and base:
                f = max(fast, key=lambda r: r["psnr_log"])
                diff = f["ssim_log"] - base[0]["ssim_log"]
                what = f"{model} {setting(f)} vs {unet}: SSIM {f['ssim_log']:.3f} vs {base[0]['ssim_log']:.3f}"
                target = "staged diffusion ≤ 8 NFE sharper than its UNet"
                out.append((target, f"{set_name}, with reference", what, _met(diff, 0.0)))
    return out


def _met(value: float | None, threshold: float) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return "met" if value >= threshold else f"missed by {threshold - value:.2f}"


def temperature_cell(row: dict) -> str:
    return f"T={row['temperature']:g}" if row.get("temperature") is not None else "—"


def markdown(
    rows: list[dict],
    figures: list[str],
    quick: bool,
    entries: list[dict] | None = None,
    runs_dir: Path | None = None,
    kept: list[dict] | None = None,
    bad_references: list[dict] | None = None,
) -> str:
    lines = [
        "# Design space: which model family fuses DMSP-OLS and VIIRS best, at what cost",
        "",
        "Regenerated by `make report` (`python -m training.report`); every number below was measured by",
        "`training.evaluate` through the plugin's engine on this machine" + (" (QUICK smoke grid)." if quick else "."),
        "PSNR/SSIM are on log1p(radiance) with the fixed range log1p(1000); RMSE and R² on radiance.",
        f"Each set is scored on its first {2 if quick else SCENES} scenes (synthetic, robustness: 128×128 px; Greece: 96×96 px);",
        "CPU seconds per megapixel are wall time on this 2-core machine, some measured while training ran beside",
        "them: compare times within a table, and see `make bench` for timings on an idle machine.",
        "",
    ]
    if kept:
        models = sorted({r["model"] for r in kept if r["family"] != "baseline"})
        sets = sorted({r["set"] for r in kept})
        lines += [
            f"**Partly carried over**: the rows of {', '.join(f'`{m}`' for m in models) or 'the baselines'} on "
            f"{', '.join(sets)} were not measured in this run (`--measure` / `--only-real`) but kept from the previous",
            "report's `docs/design_space.json`, measured by an earlier commit of the engine; `make report` with an empty",
            "rows cache measures everything again.",
            "",
        ]
    lines += real_markdown(rows, entries or [], setting)
    lines += bad_reference_markdown(bad_references or [])
    lines += ["## Simulated and semi-real sets", ""]
    keys = ["psnr_log", "ssim_log", "rmse", "r2", "sum_of_lights_error", "saturated_rmse", "seconds_per_megapixel"]
    for set_name in sorted({r["set"] for r in rows if not is_real(r["set"])}):
        for reference in (True, False):
            chosen = [r for r in rows if r["set"] == set_name and r["with_reference"] == reference]
            if not chosen:
                continue
            lines += [
                f"### {set_name} — {'with' if reference else 'without'} reference",
                "",
                "| model | sampler | NFE | K | " + " | ".join(keys) + " |",
                "|" + "---|" * (4 + len(keys)),
            ]
            for r in sorted(chosen, key=lambda r: (r["family"] != "baseline", r["model"], str(r.get("sampler")), r["nfe"])):
                cells = [f"{r.get(k, float('nan')):.3g}" for k in keys]
                staged = " (staged)" if r.get("staged") else ""
                how = (r.get("sampler") or temperature_cell(r)) + staged
                lines.append(f"| {r['model']} | {how} | {r['nfe']} | {r.get('ensemble_k', 1)} | " + " | ".join(cells) + " |")
            lines.append("")
    extras = [e["id"] for e in entries or [] if not e.get("shipped", True)]
    if extras:
        lines += [
            "Design-space models (trained and measured here, not shipped in `model_zoo/`, never the default): "
            + ", ".join(f"`{e}`" for e in extras)
            + ". `make report` exports them from their training runs (`--runs`).",
            "",
        ]
    lines += [f"![{f}]({f})" for f in figures] + [""]
    found = target_rows(rows, entries or [])
    if found:
        lines += ["## Targets", "", "| target | where | measured | met |", "|---|---|---|---|"]
        lines += [f"| {t} | {w} | {v} | {ok} |" for t, w, v, ok in found] + [""]
    if any(ok.startswith("missed") for *_, ok in found):
        lines += tried_section(rows)
    if runs_dir is not None:
        lines += training_curves(runs_dir)
    lines += ["## Recommendation", "", recommendation(rows, entries or []), ""]
    return "\n".join(lines)


def tried_section(rows: list[dict]) -> list[str]:
    """What the measured grid already covers, so a missed target reads as measured, not as untried."""
    measured = sum(r["family"] != "baseline" for r in rows)  # each row is one model setting on one set/mode
    persistence = best(rows, set="greece", with_reference=True, model="persistence")
    lines = [
        "## What was tried for the missed targets",
        "",
        f"- Every model was measured at every setting above ({measured} model settings in all): "
        "plain samplers from 2 to 50 NFE, staged sampling from the regression estimate, means of K = 2 and 4 samples, "
        "normalizing-flow temperatures from 0 to 1; each target is judged on the best of them.",
        "- Two diffusion parameterisations (v-prediction/cosine and ε-prediction/linear), one training budget for "
        "all families (the configs in training/configs, ≤ 2 h each on this 2-core CPU; the curves below), the same "
        "mixed training data (simulated scenes with randomised sensor parameters plus 30 % semi-real Greece tiles).",
        "- int8 export keeps the two most damaging nodes in fp32 (a per-node sensitivity pass), and every int8 "
        "model is measured beside its fp32 model.",
        "- For the reference-aware targets (real-temporal sets): the reference simulated to DMSP as a 4th condition "
        "channel and the change relative to the reference as the target (condition v2, residual_log; "
        "`training/configs/*_refaware.toml`), half of the training tiles real Sudan 2023↔2024 pairs outside the "
        "hold-out, synthetic gaps of 0–1, 3–5 and 10–20 years in both directions; tiles that see the inputs "
        "mirrored beyond raster edges; a scene-wide prior that puts part of the DMSP/reference level difference on "
        "the DMSP's sensor (`core/scene_gain.py`, measured on training regions by "
        "`python -m training.simulate change-prior`), for `reference-change` and the condition-v2 models; that "
        "prior at each request's real gap between DMSP and reference (real change grows as √gap: a year apart 62 % "
        "of the level difference is taken as the sensor, ten years apart 14 %), where it first assumed 5 years.",
        "- Tried and not shipped: a scene-wide tone curve (log-log slope of the DMSP against the reference simulated "
        "to DMSP, split the same way) before the change is read; it helped on Mumbai's one-year gap but made "
        "`reference-change` worse on a synthetic sensor with a flatter response (a straight line in log-log does not "
        "follow a response that saturates at 63 DN); a scene-wide co-registration of the DMSP (the scenes' DMSP "
        "shifts were under 0.15 pixel).",
    ]
    if persistence:
        lines.append(
            f"- Greece with reference: the semi-real reference is a simulated change of the truth year's VIIRS, so "
            f"persistence (the reference itself) already scores {persistence['psnr_log']:.2f} dB; a 2.1 dB margin over "
            "it asks the model to predict the simulated change itself."
        )
    return lines + [""]


def training_curves(runs_dir: Path) -> list[str]:
    """Validation psnr_log (model space, as the trainer logs it) at each validation step of every run."""
    curves = {}
    for metrics in sorted(runs_dir.glob("*/metrics.jsonl")):
        points = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        val = [(p["step"], p["psnr_log"]) for p in points if p.get("split") == "val" and "psnr_log" in p]
        if val:
            curves[metrics.parent.name] = val
    if not curves:
        return []
    lines = [
        "## Training curves",
        "",
        f"Validation psnr_log of each run in `{runs_dir}/` (the trainer's own validation: model space, fixed "
        "validation tiles, each family's own sampler), by training step:",
        "",
        "| run | validation psnr_log at step |",
        "|---|---|",
    ]
    for name, val in curves.items():
        lines.append(f"| `{name}` | " + ", ".join(f"{step}: {psnr:.2f}" for step, psnr in val) + " |")
    return lines + [""]


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


def recommendation(rows: list[dict], entries: list[dict]) -> str:
    """Plain language: which family wins where, which sampler budget is enough, and the default."""
    m, robust = margins(rows), default_margins(rows)
    if not m:
        return "No trained model was evaluated: only the baselines are available."
    text = []
    for family in ("unet", "diffusion", "flow_matching", "normalizing_flow"):
        mine = [r for r in rows if r["family"] == family and r["set"] == "synthetic" and r["with_reference"]]
        if not mine:
            text.append(f"- **{family}**: no trained model yet, so not compared.")
            continue
        top = max(mine, key=lambda r: r["psnr_log"])
        models = {r["model"] for r in mine}
        how = setting(top)
        line = (
            f"- **{family}**: best on the synthetic set (with reference) {top['psnr_log']:.2f} dB ({top['model']}, {how}); "
            f"margin over the best baseline on the robustness hold-out {max(robust.get(k, -np.inf) for k in models):+.2f} dB, "
            f"worst case over all sets and modes {max(m[k] for k in models):+.2f} dB"
        )
        trained = sorted({r["model"] for r in mine if r["precision"] == "fp32"})
        if len(trained) > 1:  # several trained variants of the family (e.g. epsilon/linear vs v/cosine diffusion)
            per_model = {k: max(r["psnr_log"] for r in mine if r["model"] == k) for k in trained}
            line += "; best per model: " + ", ".join(f"{k} {v:.2f} dB" for k, v in per_model.items())
        plain = [r for r in mine if r.get("sampler") and not r.get("ensemble_k")]
        if plain:
            best_plain = max(plain, key=lambda r: r["psnr_log"])
            enough = min(
                (r for r in plain if r["model"] == best_plain["model"] and r["psnr_log"] >= best_plain["psnr_log"] - 0.3),
                key=lambda r: r["seconds_per_megapixel"],
            )
            line += (
                f"; {enough['sampler']}{' staged' if enough.get('staged') else ''} at NFE {enough['nfe']} is the fastest "
                "setting within 0.3 dB of its best"
            )
        text.append(line + ".")
    default, real_choice = report_default(rows, entries)
    if real_rows(rows):
        with_reference = choose_real_default(rows, entries, reference=True)
        text.append(
            "\nThe plugin's defaults are decided on the real-temporal sets: without a reference "
            f"**{real_choice['model'] if real_choice else 'baseline'}**"
            + (f" ({real_choice['worst_margin_db']:+.2f} dB worst-case margin)" if real_choice else "")
            + (
                f"; with a reference **{with_reference['model']}** ({with_reference['worst_margin_db']:+.2f} dB worst-case "
                "margin over the best other baseline, persistence included)."
                if with_reference
                else "."
            )
        )
    elif default:
        text.append(
            f"\nThe plugin's default is **{default}**, the largest margin on the robustness hold-out "
            f"({robust[default]:+.2f} dB"
            + (", below the 2.1 dB target)." if robust[default] < 2.1 else ", above the 2.1 dB target).")
        )
    else:
        text.append(
            "\nNo zoo model beats the best baseline on the robustness hold-out, so the traditional method stays the "
            "plugin's default and the zoo models are options."
        )
    top = max(m, key=m.get)
    losses = []
    for set_name in sorted({r["set"] for r in rows}):
        for reference in (True, False):
            base = best(rows, set=set_name, with_reference=reference, family="baseline")
            mine = best(rows, set=set_name, with_reference=reference, model=top)
            if base and mine and mine["psnr_log"] < base["psnr_log"]:
                losses.append(
                    f"{set_name} {'with' if reference else 'without'} reference "
                    f"({base['model']} {base['psnr_log']:.2f} dB vs {mine['psnr_log']:.2f} dB)"
                )
    if losses:
        text.append(
            f"Where the models lose: even the one with the best worst-case margin, {top}, is beaten on " + "; ".join(losses) + "."
        )
    return "\n".join(text)


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


def machine_description() -> str:
    import platform

    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores, {model or platform.processor() or platform.machine()}"


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
        manifest[key] = {  # core.models.default_model reads default_with_reference; both are on record
            "model": choice["model"],
            "sampler": choice["row"].get("sampler"),
            "steps": choice["row"].get("steps"),
            "strength": choice["row"].get("strength") or 1.0,
            "real_temporal_worst_margin_db": round(choice["worst_margin_db"], 3),
            "worst_case_at": choice["where"],
            "decided_on": "real-temporal sets (make report)",
        }
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
    (args.docs / "design_space.md").write_text(markdown(rows, figures, args.quick, entries, args.runs_dir, kept, bad))
    if models and not args.no_manifest:
        update_manifest(args.zoo, rows)
    print(args.docs / "design_space.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
