"""`python -m training.report --quick` on a smoke-scale zoo: the whole design-space pipeline runs and writes
the report, its plot and measured speed levels back into the manifest."""

import json
import shutil
import subprocess
import sys

from conftest import REPO


def test_quick_report_writes_docs_and_speed_levels(smoke_zoo, tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(smoke_zoo, zoo)
    docs = tmp_path / "docs"
    docs.mkdir()
    # a design-space run that is not shipped: measured beside the zoo, never written into it
    variant = tmp_path / "runs" / "flow_variant"
    shutil.copytree(smoke_zoo.parent / "runs" / "flow_matching", variant)
    command = [
        sys.executable,
        "-m",
        "training.report",
        "--zoo",
        str(zoo),
        "--eval-dir",
        str(tmp_path / "eval"),
        "--docs",
        str(docs),
        "--quick",
        "--runs",
        str(variant),
    ]
    done = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = (docs / "design_space.md").read_text()
    assert "| baseline |" in text and "diffusion-fp32" in text and "## Recommendation" in text
    assert (docs / "images" / "design_space_psnr_nfe.png").stat().st_size > 1000
    assert (docs / "images" / "design_space_tiles_synthetic.png").stat().st_size > 1000
    assert "design_space_tiles_synthetic.png" in text
    assert "| flow_variant-fp32 | flow_euler |" in text and "`flow_variant-fp32`" in text
    assert "| normalizing-flow-fp32 | T=0 |" in text  # the flow's temperature sweep
    assert "## Training curves" in text and "| `unet` | 1000: " in text  # from the committed runs/*/metrics.jsonl
    # a second run reuses the measured rows (keyed by model sha256) instead of measuring again
    rows_file = tmp_path / "eval" / "rows_quick.jsonl"
    measured = rows_file.read_text().count("\n")
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert rows_file.read_text().count("\n") == measured
    manifest = {m["id"]: m for m in json.loads((zoo / "manifest.json").read_text())["models"]}
    levels = manifest["diffusion-fp32"]["speed_levels"]
    assert levels and levels[0]["level"] == 1 and levels[0]["seconds_per_megapixel"] > 0
    measured = manifest["diffusion-fp32"]["measured"]
    assert measured and {"set", "sampler", "nfe", "psnr_log", "seconds_per_megapixel"} <= set(measured[0])
    assert "flow_variant-fp32" not in manifest and not (zoo / "flow_variant-fp32.onnx").exists()
    # untrained smoke models never beat the baselines, so none becomes the plugin's default
    assert not any(m["default"] for m in manifest.values())
    # --measure: only the named model (and the baselines) is measured again; the others keep their committed rows
    before = json.loads((docs / "design_space.json").read_text())
    fresh_cache = tmp_path / "only_unet.jsonl"
    only_unet = [*command, "--measure", "unet-fp32", "--rows-cache", str(fresh_cache)]
    one = subprocess.run(only_unet, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    keys = [json.loads(line)["key"] for line in fresh_cache.read_text().splitlines()]
    assert keys and not any("diffusion" in k or "flow" in k for k in keys)
    after = json.loads((docs / "design_space.json").read_text())
    others = lambda rows: sorted(json.dumps(r, sort_keys=True) for r in rows if r["family"] not in ("baseline", "unet"))  # noqa: E731
    assert others(after) == others(before) and any(r["model"] == "unet-fp32" for r in after)
    carried = (docs / "design_space.md").read_text().split("**Partly carried over**")[1].split("\n\n")[0]
    assert "`diffusion-fp32`" in carried and "`unet-fp32`" not in carried
    bad = subprocess.run([*command, "--measure", "no-such-model"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "no-such-model" in bad.stderr


def _row(model, family, set_name, reference, psnr, nfe=0, sampler=None, staged=False, r2=0.5, precision="fp32"):
    return {
        "model": model,
        "family": family,
        "set": set_name,
        "with_reference": reference,
        "psnr_log": psnr,
        "nfe": nfe,
        "sampler": sampler,
        "staged": staged,
        "r2": r2,
        "precision": precision,
    }


def test_targets_table_says_met_or_by_how_much_missed():
    from training.report import target_rows

    rows = []
    for set_name in ("synthetic", "greece", "robustness"):
        for ref in (True, False):
            rows += [
                _row("baseline", "baseline", set_name, ref, 20.0),
                _row("diffusion-fp32", "diffusion", set_name, ref, 23.0, 50, "ddim", r2=0.9),
                _row("diffusion-fp32", "diffusion", set_name, ref, 22.8, 4, "ddim", staged=True, r2=0.9),
                _row("flow_matching-fp32", "flow_matching", set_name, ref, 21.0, 8, "flow_euler", r2=0.8),
                _row("flow_matching-fp32", "flow_matching", set_name, ref, 21.5, 50, "flow_euler", r2=0.8),
            ]
    entries = [{"id": "diffusion-fp32", "precision": "fp32", "variant_of": None}]
    found = {(t, w): (v, ok) for t, w, v, ok in target_rows(rows, entries)}
    assert found[("best generative ≥ best baseline + 2.1 dB", "greece, without reference")] == (
        "diffusion-fp32 ddim, NFE 50 vs baseline: +3.00 dB",
        "met",
    )
    assert found[("≤ 8 NFE within 0.3 dB of 50+ NFE", "diffusion-fp32, synthetic, with reference")][1] == "met"
    flow = found[("≤ 8 NFE within 0.3 dB of 50+ NFE", "flow_matching-fp32, synthetic, with reference")]
    assert flow == ("flow_euler NFE 8 vs flow_euler NFE 50: -0.50 dB", "missed by 0.20")
    assert found[("pixel R² on radiance ≥ 0.87", "greece, with reference")] == ("diffusion-fp32: 0.900", "met")
    robust = found[("default (diffusion-fp32) keeps ≥ 2.1 dB margin", "robustness hold-out, with reference")]
    assert robust == ("+3.00 dB", "met")


def test_default_prefers_the_int8_variant_within_tolerance():
    from training.report import choose_default

    entries = [
        {"id": "d-fp32", "precision": "fp32", "variant_of": None},
        {"id": "d-int8", "precision": "int8", "variant_of": "d-fp32"},
        {"id": "f-fp32", "precision": "fp32", "variant_of": None},
    ]
    assert choose_default({"d-fp32": 3.0, "d-int8": 2.9, "f-fp32": 1.0}, entries) == "d-int8"
    assert choose_default({"d-fp32": 3.0, "d-int8": 2.5, "f-fp32": 1.0}, entries) == "d-fp32"
    assert choose_default({"d-fp32": -0.1, "d-int8": -0.2}, entries) is None
    # a design-space model (measured, not shipped) never becomes the default, however good
    design = [*entries, {"id": "x-fp32", "precision": "fp32", "variant_of": None, "shipped": False}]
    assert choose_default({"x-fp32": 9.0, "d-fp32": 3.0, "d-int8": 2.9}, design) == "d-int8"


def test_speed_levels_skip_unusable_and_noise_level_settings():
    from training.report import speed_levels

    def point(sampler, nfe, psnr, spm, strength=None):
        row = _row("m", "diffusion", "synthetic", True, psnr, nfe, sampler)
        return {**row, "steps": nfe, "strength": strength, "seconds_per_megapixel": spm}

    rows = [
        point("ddim", 2, 12.0, 40.0),  # fastest but unusable (far below the best)
        point("ddim", 2, 31.0, 45.0, strength=0.5),  # not meaningfully faster than the better ddim 4: no level
        point("ddim", 4, 31.2, 47.0),
        point("ddim", 50, 32.0, 900.0),
    ]
    levels = speed_levels(rows, "m")
    assert [(lv["sampler"], lv["nfe"], lv["strength"]) for lv in levels] == [("ddim", 4, 1.0), ("ddim", 50, 1.0)]
    assert [lv["level"] for lv in levels] == [1, 2]


def test_cached_rows_are_keyed_by_the_engine_that_measured_them(tmp_path):
    from training.report import engine_fingerprint

    (tmp_path / "data").mkdir()
    (tmp_path / "fuse.py").write_text("x = 1\n")
    (tmp_path / "data" / "prior.json").write_text("{}\n")
    first = engine_fingerprint(tmp_path)
    assert first == engine_fingerprint(tmp_path) and len(first) == 12
    (tmp_path / "data" / "prior.json").write_text('{"k": 0.2}\n')
    assert engine_fingerprint(tmp_path) != first
    assert engine_fingerprint() != first  # the real engine


def test_reference_aware_targets_judge_the_defaults_on_every_real_set():
    from training.real_report import real_target_rows

    def row(set_name, reference, model, psnr, family="baseline", sol=0.0, r2=0.9):
        return {
            "set": set_name, "with_reference": reference, "model": model, "family": family, "psnr_log": psnr,
            "seconds_per_megapixel": 1.0, "set_sum_of_lights_error": sol, "set_r2": r2, "precision": "fp32",
        }  # fmt: skip

    rows = [
        row("real_sudan", True, "persistence", 30.0),
        row("real_sudan", True, "reference-change", 30.6, sol=0.05, r2=0.86),
        row("real_sudan", False, "baseline", 25.0),
        row("real_sudan", False, "unet-fp32", 26.0, family="unet", sol=-0.2),
        row("real_mumbai_gap5", True, "persistence", 28.0),
        row("real_mumbai_gap5", True, "reference-change", 29.0, sol=-0.12, r2=0.5),
        row("real_mumbai_gap5", False, "baseline", 20.0),
        row("real_mumbai_gap5", False, "unet-fp32", 23.0, family="unet"),
    ]
    entries = [{"id": "unet-fp32", "precision": "fp32", "shipped": True}]
    got = {(t, w): (m, v) for t, w, m, v in real_target_rows(rows, entries)}
    one_year = ("default (reference-change) ≥ persistence + 0.5 dB (1-year gap)", "real_sudan (1 yr), with reference")
    assert got[one_year] == ("+0.60 dB", "met")
    five = ("default (reference-change) ≥ best baseline + 2.1 dB", "real_mumbai_gap5 (5 yr), with reference")
    assert got[five] == ("vs persistence: +1.00 dB", "missed by 1.10")
    no_ref = ("default (unet-fp32) ≥ best baseline + 2.1 dB", "real_mumbai_gap5 (5 yr), without reference")
    assert got[no_ref][1] == "met"
    sums = ("default (reference-change) sum of lights within ±10 %", "real_mumbai_gap5 (5 yr), with reference")
    assert got[sums] == ("-12.0 %", "missed by 2.0 points")
    r2 = ("default (reference-change) pixel R² of radiance ≥ 0.85", "real_sudan (1 yr), with reference")
    assert got[r2] == ("0.860", "met")
    assert not any("≥ persistence + 0.5" in t and "gap5" in w for t, w in got)  # only for 1-year gaps


def test_sharpness_compares_staged_diffusion_with_its_own_unet():
    from training.report import sharpness_rows

    def row(model, family, ssim, staged=False, nfe=1, psnr=30.0, set_name="real_sudan"):
        return {
            "model": model, "family": family, "precision": "fp32", "set": set_name, "with_reference": True,
            "staged": staged, "nfe": nfe, "ssim_log": ssim, "psnr_log": psnr, "sampler": "ddim",
        }  # fmt: skip

    rows = [
        row("unet_refaware-fp32", "unet", 0.90),
        row("unet-fp32", "unet", 0.50),
        row("diffusion_refaware-fp32", "diffusion", 0.93, staged=True, nfe=4, psnr=31.0),
        row("diffusion_refaware-fp32", "diffusion", 0.80, staged=True, nfe=8, psnr=30.0),
        row("diffusion_refaware-fp32", "diffusion", 0.99, nfe=50),  # not staged, not ≤ 8 NFE
    ]
    entries = [{"id": "diffusion_refaware-fp32", "regression_model": "unet_refaware-fp32"}]
    (target, where, measured, met), = sharpness_rows(rows, entries)
    assert where == "real_sudan, with reference" and "SSIM 0.930 vs 0.900" in measured and met == "met"
    rows[2]["ssim_log"] = 0.85
    assert sharpness_rows(rows, entries)[0][3] == "missed by 0.05"
