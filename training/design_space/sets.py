"""The evaluation sets the report measures on (made by training.simulate when missing) and the zoo it
measures: the shipped models plus design-space training runs exported to fp32 ONNX."""

from __future__ import annotations

import json
from pathlib import Path

from ..real_report import (
    QUICK_REAL_SETS,
    REAL_SETS,
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


def ensure_sets(eval_dir: Path, quick: bool, real_dir: Path | None) -> dict[str, Path]:
    from ..simulate.__main__ import main as simulate

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
    from ..export import export, sha256_of

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
