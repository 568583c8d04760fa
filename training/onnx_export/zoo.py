"""The model zoo's side of an export: manifest entries, model cards, and the regression partner of staged sampling."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import onnx

from nightlight_fusion_plugin.core.engine import transforms


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(zoo: Path, entry: dict[str, Any]) -> None:
    manifest_path = zoo / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"version": 1, "models": []}
    manifest["models"] = [m for m in manifest["models"] if m["id"] != entry["id"]] + [entry]
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


REAL_REGION_TEXT = {  # data key real_regions -> what the card says of them
    "sudan": "Sudan VNP46A3 February 2023 and 2024, each year the reference of the other",
    "kenya": "Kenya's VNP46A4 annual composites 2020–2023, every ordered pair of years",
    "nigeria": "Nigeria's VNP46A4 2023 annual, without a reference",
}


def write_card(zoo: Path, entry: dict[str, Any], state: dict) -> str:
    """model_zoo/cards/ID.md: what the model is, what it was trained on, how, and its known limits."""
    meta, provenance = state["meta"], entry["provenance"]
    data = meta.get("data") or {}
    card = Path("cards") / f"{entry['id']}.md"
    (zoo / "cards").mkdir(parents=True, exist_ok=True)
    variant = f", quantized from {entry['variant_of']}" if entry.get("variant_of") else ""
    semi_real = (
        " plus semi-real Greece tiles (real VIIRS 2017 truth, simulated DMSP) outside the Thessaloniki hold-out"
        if data.get("kind") in ("mixed", "semi_real", "refaware")
        else ""
    )
    if data.get("kind") == "refaware":
        regions = data.get("real_regions", ["sudan"])
        real = [text for region, text in REAL_REGION_TEXT.items() if region in regions]
        semi_real += (
            f"; {data.get('real_structure_fraction', 0.5):.0%} of the tiles are real Black Marble VIIRS ("
            + ", ".join(real)
            + "; DMSP simulated from the target) outside the real-temporal hold-outs (training/real_sources.py)"
        )
    if entry.get("calibration"):
        semi_real += f"; int8 calibration: {entry['calibration']}; nodes kept in fp32 by the per-node sensitivity sweep: " + (
            ", ".join(f"`{n}`" for n in entry.get("nodes_kept_fp32", [])) or "none"
        )
    if data.get("reference_gaps"):
        ranges = ", ".join(f"{lo}–{hi}" for lo, hi in data["reference_gaps"])
        semi_real += (
            f"; synthetic reference/target gaps drawn from {ranges} years, the reference earlier than the target with "
            f"p = {data.get('reference_before', 0.5)}"
        )
    init = meta.get("init_from")
    fine_tuned = (
        f"  fine-tuned from the EMA weights of `{init['checkpoint']}` (step {init['step']}, sha256 {init['sha256'][:12]}…);"
        if init
        else None
    )
    sessions = meta.get("history") or [{"command": meta.get("command"), "git_commit": meta.get("git_commit")}]
    command = "; then ".join(
        f"`{readable_command(h.get('command'))}`"
        + (f" from step {h['from_step']}" if h.get("from_step") else "")
        + f" at commit {h.get('git_commit', 'unknown')}"
        + (f" on {h['device']}" if h.get("device") else "")
        for h in sessions
    )
    lines = [
        f"# {entry['id']}",
        "",
        f"- **Family**: {entry['family']} ({entry['precision']}{variant})"
        + (
            f"; condition v{meta['condition_version']}, target `{meta.get('target', 'absolute')}`"
            if int(meta.get("condition_version") or 1) > 1
            else ""
        ),
        "- **Task**: VIIRS-like radiance (nW/cm²/sr, 15″) for the year of a DMSP-OLS stable-lights raster, optionally",
        "  guided by a VIIRS DNB reference of another year (see docs/training_data.md).",
        f"- **Training data**: {data.get('kind', 'synthetic')}: simulated DMSP/VIIRS scene pairs (training/simulate, sensor",
        f"  model calibrated on real Athens DMSP F18 2013 vs Greece VIIRS 2017){semi_real}; tiles {data.get('tile', 64)}²,",
        f"  reference dropped at random (p = {data.get('reference_dropout', 0.3)}).",
        f"- **How it was trained**: {command}; seed {meta.get('seed')}, {state.get('step')} steps",
        f"  (run directory `{provenance['checkpoint']}`);",
        *([fine_tuned] if fine_tuned else []),
        f"  exported by `{provenance['command']}` at commit {provenance['commit']}.",
        "- **Intended use**: backcasting VIIRS-like night lights for 1992–2013 DMSP years, and cross-sensor",
        "  super-resolution without a reference, for regional analysis in QGIS.",
        "- **Limits**: never validated on real 1990s DMSP against real VIIRS (no such pairs exist; real co-registered",
        "  pairs exist only for 2012–2013 and are not available here); semi-real references are synthetic changes of",
        "  2017 VIIRS; Greece VIIRS used in training is integer-rounded and clipped at 231 nW/cm²/sr; DMSP sensors",
        "  outside the randomised training range (the robustness hold-out in docs/design_space.md) may degrade it.",
        "- **Measured quality**: `metrics` and `speed_levels` of this id in model_zoo/manifest.json and",
        "  docs/design_space.md (both written by `make report`).",
    ]
    (zoo / card).write_text("\n".join(lines) + "\n")
    return card.as_posix()


def readable_command(argv: list[str] | None) -> str:
    """A recorded command line as a user would type it (python -m ..., not the interpreter's full path)."""
    if not argv:
        return "python -m training.train"
    head = "python" if Path(argv[0]).name.startswith("python") else argv[0]
    return " ".join([head, *argv[1:]])


def zoo_condition(zoo: Path, entry: dict[str, Any]) -> tuple[int, str] | None:
    """(condition version, target) of an exported zoo model, from its ONNX metadata; None if its file is missing."""
    path = zoo / entry["file"]
    if not path.is_file():
        return None
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return transforms.condition_version(props), transforms.model_target(props)


def check_regression_partner(zoo: Path, regression: str, model_id: str, wanted: tuple[int, str]) -> None:
    """--regression must name a zoo UNet with the generative model's condition version and target: its raw output
    is the warm start, so it must lie in the same x_0 space (the engine refuses a mismatch too)."""
    manifest_path = zoo / "manifest.json"
    models = json.loads(manifest_path.read_text())["models"] if manifest_path.exists() else []
    entry = next((m for m in models if m["id"] == regression), None)
    if entry is None:  # exporting before the regression model is fine; the engine checks when it is used
        return
    if entry["family"] != "unet":
        raise ValueError(f"--regression {regression} is a {entry['family']} model, not a regression UNet")
    have = zoo_condition(zoo, entry)
    if have is not None and have != wanted:
        raise ValueError(
            f"--regression {regression} (condition v{have[0]}, target {have[1]!r}) cannot warm-start {model_id} "
            f"(condition v{wanted[0]}, target {wanted[1]!r}): staged sampling needs the same condition version and target"
        )


def regression_partner(zoo: Path, precision: str, wanted: tuple[int, str] = (1, "absolute")) -> str | None:
    """The zoo's regression UNet of this precision (else fp32) whose condition version and target are `wanted`."""
    manifest_path = zoo / "manifest.json"
    if not manifest_path.exists():
        return None
    unets = {
        m["precision"]: m["id"]
        for m in json.loads(manifest_path.read_text())["models"]
        if m["family"] == "unet" and zoo_condition(zoo, m) == wanted
    }
    return unets.get(precision) or unets.get("fp32")
