"""The real-temporal evaluation set (real truth, real reference of another date, DMSP simulated from the truth)
and the rules that judge the zoo on it (training.real_report)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from conftest import REPO

from training.data.holdout import REAL_TEMPORAL_HOLDOUT, overlaps_holdout
from training.real_report import choose_real_default, int8_gate, setting_margins
from training.simulate.real_temporal import MUMBAI_FILE, write_real_temporal


def _bounds(path):
    with rasterio.open(path) as src:
        return tuple(src.bounds)


@pytest.mark.real_data
def test_mumbai_set_pairs_real_years_with_the_asked_gap(real_data, tmp_path):
    manifest = json.loads(write_real_temporal(real_data, tmp_path, "mumbai", gap=3).read_text())
    assert manifest["count"] == 4 and {s["gap_years"] for s in manifest["scenes"]} == {3}
    pairs = {(s["truth_date"], s["reference_date"]) for s in manifest["scenes"]}
    assert pairs == {("2013", "2016"), ("2022", "2019")}
    first = manifest["scenes"][0]
    with rasterio.open(tmp_path / first["files"]["viirs_truth"]) as got, rasterio.open(
        real_data / MUMBAI_FILE.format(year=2013)
    ) as real:
        np.testing.assert_array_equal(got.read(1), real.read(1))  # the truth is the real raster, untouched
    with rasterio.open(tmp_path / first["files"]["dmsp"]) as dmsp:
        dn = dmsp.read(1, masked=True)
        assert dn.dtype == np.uint8 and dn.max() <= 63 and dn.max() > 30  # a lit megacity, 6-bit DN
    draws = [s["sensor_draw"] for s in manifest["scenes"]]
    assert "calibrated range" in draws and "outside the training range" in draws
    with pytest.raises(ValueError, match="gap"):
        write_real_temporal(real_data, tmp_path / "bad", "mumbai", gap=2)


@pytest.mark.real_data
def test_sudan_set_is_big_real_and_held_out(real_data, tmp_path):
    if not (real_data / "sudan_blackmarble").is_dir():
        pytest.skip("Sudan Black Marble not in ../shared")
    manifest = json.loads(write_real_temporal(real_data, tmp_path, "sudan").read_text())
    assert manifest["pixels"] >= 2_000_000
    kinds = [s["kind"] for s in manifest["scenes"]]
    assert kinds.count("bright core") == 2 and "dark" in kinds and "flares" in kinds
    peak = 0.0
    for scene in manifest["scenes"]:
        truth = tmp_path / scene["files"]["viirs_truth"]
        assert overlaps_holdout(_bounds(truth)) is not None  # every scene lies in a hold-out region
        with rasterio.open(truth) as src:
            peak = max(peak, float(np.nanmax(src.read(1))))
    assert peak > 1000  # real flares / cores brighter than anything the simulator's int8 tiles held
    with pytest.raises(FileExistsError):
        write_real_temporal(real_data, tmp_path, "sudan")


def test_training_regions_never_touch_the_holdout():
    from training.data.real import GREECE_HOLDOUT

    assert overlaps_holdout((20.0, 34.8, 29.7, 41.8)) is None  # Greece and Athens, which training reads
    assert overlaps_holdout(GREECE_HOLDOUT) is None
    assert overlaps_holdout((72.8, 18.9, 72.9, 19.0)) == "mumbai"
    assert set(REAL_TEMPORAL_HOLDOUT) >= {"mumbai", "sudan_tile_20N30N_30E40E"}


def _row(model, set_name, reference, psnr, family="unet", precision="fp32", seconds=1.0, sums=0.0, sampler=None):
    return {
        "model": model,
        "set": set_name,
        "with_reference": reference,
        "psnr_log": psnr,
        "family": family,
        "precision": precision,
        "seconds_per_megapixel": seconds,
        "set_sum_of_lights_error": sums,
        "sampler": sampler,
        "steps": 4 if sampler else None,
        "nfe": 4 if sampler else 1,
    }


def _rows():
    rows = []
    for set_name, persistence in (("real_a", 30.0), ("real_b", 25.0)):
        rows += [_row("persistence", set_name, True, persistence, "baseline"), _row("baseline", set_name, True, 20.0, "baseline")]
        rows += [_row("baseline", set_name, False, 20.0, "baseline")]
        for reference in (True, False):
            top = persistence if reference else 20.0
            rows.append(_row("fast", set_name, reference, top + 1.0, seconds=1.0))
            rows.append(_row("fast-int8", set_name, reference, top + 0.9, precision="int8", seconds=0.5, sums=0.01))
            rows.append(_row("slow", set_name, reference, top + 1.03, "diffusion", seconds=9.0, sampler="ddim"))
            rows.append(_row("slow", set_name, reference, top - 3.0, "diffusion", seconds=1.0, sampler="euler"))
    return rows


ENTRIES = [
    {"id": "fast", "precision": "fp32"},
    {"id": "fast-int8", "precision": "int8", "variant_of": "fast"},
    {"id": "slow", "precision": "fp32"},
]


def test_margins_are_worst_case_over_sets_and_include_persistence():
    margins = {(c["model"], c["row"]["sampler"]): c["worst_margin_db"] for c in setting_margins(_rows())}
    assert margins[("fast", None)] == pytest.approx(1.0)
    assert margins[("slow", "euler")] == pytest.approx(-3.0)  # judged against persistence with a reference


def test_margins_use_the_pixels_of_a_set_pooled_not_the_mean_of_its_scenes():
    # 'fast' wins on the mean of scenes (a tiny scene), 'slow' on the set's pixels pooled: the pooled one counts
    rows = [dict(r, set_psnr_log=r["psnr_log"] + (2.0 if r["model"] == "slow" else 0.0)) for r in _rows()]
    margins = {(c["model"], c["row"]["sampler"]): c["worst_margin_db"] for c in setting_margins(rows)}
    assert margins[("slow", "ddim")] == pytest.approx(3.03) and margins[("fast", None)] == pytest.approx(1.0)
    assert choose_real_default(rows, ENTRIES)["model"] == "slow"


def test_default_is_the_worst_case_winner_and_ties_go_to_the_faster():
    choice = choose_real_default(_rows(), ENTRIES)
    assert choice["model"] == "fast"  # 'slow' ddim is 0.03 dB better: a tie, and 9x slower
    assert choose_real_default(_rows(), ENTRIES[2:])["model"] == "slow"


def test_int8_gate_and_no_default_when_nothing_beats_the_baselines():
    gates = int8_gate(_rows(), ENTRIES)
    assert gates["fast-int8"]["max_psnr_loss_db"] == pytest.approx(0.1) and gates["fast-int8"]["passes"]
    lossy = [dict(r, psnr_log=r["psnr_log"] - 0.3) if r["model"] == "fast-int8" else r for r in _rows()]
    assert not int8_gate(lossy, ENTRIES)["fast-int8"]["passes"]
    dark = [dict(r, set_sum_of_lights_error=-0.03) if r["model"] == "fast-int8" else r for r in _rows()]
    assert not int8_gate(dark, ENTRIES)["fast-int8"]["passes"]  # 3 % darker than its fp32 twin
    beaten = [dict(r, psnr_log=r["psnr_log"] - 5) if r["family"] != "baseline" else r for r in _rows()]
    loser = choose_real_default(beaten, ENTRIES, reference=True)  # the least bad, said to lose: never hidden
    assert loser["model"] == "fast" and loser["worst_margin_db"] == pytest.approx(-4.0)


def test_with_a_reference_a_traditional_method_can_be_the_default():
    rows = _rows()
    for set_name, persistence in (("real_a", 30.0), ("real_b", 25.0)):
        rows.append(_row("reference-change", set_name, True, persistence + 2.0, "baseline"))
    choice = choose_real_default(rows, ENTRIES, reference=True)
    # the best baseline is the yardstick of every candidate: reference-change is it (0 dB), the models lose to it
    assert choice["model"] == "reference-change" and choice["worst_margin_db"] == pytest.approx(0.0)
    assert choose_real_default(rows, ENTRIES, reference=False)["model"] == "fast"  # it cannot run without one


def test_engine_default_follows_the_reference_mode(tmp_path, monkeypatch):
    from nightlight_fusion_plugin.core.engine.models import default_model

    manifest = json.loads((REPO / "model_zoo" / "manifest.json").read_text())
    for entry in manifest["models"]:
        entry["file"] = str((REPO / "model_zoo" / entry["file"]).resolve())
    manifest["default_with_reference"] = {"model": "reference-change"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("NLF_MODEL_ZOO", str(tmp_path))
    assert default_model(with_reference=True).id == "reference-change"
    assert default_model().id == next((m["id"] for m in manifest["models"] if m.get("default")), "baseline")
    manifest["default_with_reference"] = {"model": "no-such-model"}  # a stale name: the reference-free default
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert default_model(with_reference=True).id == default_model().id


def test_manifest_default_agrees_with_the_report():
    """The shipped manifest's default is what `make report`'s rule picks from the committed rows (an int8 winner
    as its fp32 model: the precision is the machine's choice)."""
    from training.design_space.manifest import engine_model
    from training.report import report_default

    rows = json.loads((REPO / "docs" / "design_space.json").read_text())
    manifest = json.loads((REPO / "model_zoo" / "manifest.json").read_text())
    default, _ = report_default(rows, manifest["models"])
    shipped_default = next((m["id"] for m in manifest["models"] if m.get("default")), None)
    assert shipped_default == engine_model(default, manifest["models"])
    if any(r["set"].startswith("real_") for r in rows):  # and the recommendation for runs with a reference
        with_reference = choose_real_default(rows, manifest["models"], reference=True)
        assert manifest["default_with_reference"]["model"] == engine_model(with_reference["model"], manifest["models"])


def test_int8_without_variant_of_is_gated_against_its_fp32_export_by_name():
    rows = [dict(r, model=r["model"].replace("fast", "flow")) for r in _rows()]
    entries = [{"id": "flow-int8", "precision": "int8"}]  # shipped without its fp32 file
    assert int8_gate(rows, entries)["flow-int8"]["fp32_twin"] == "flow-fp32"
    alone = [r for r in rows if r["model"] != "flow"]  # no fp32 twin measured: it cannot pass
    gate = int8_gate(alone, entries)["flow-int8"]
    assert gate["passes"] is False and gate["max_psnr_loss_db"] is None
    assert choose_real_default(alone, entries) is None


def test_bad_references_are_noted_whenever_they_do_worse_than_no_reference(real_data, tmp_path):
    from training.bad_reference import CASES, bad_reference_markdown, bad_reference_rows

    data = write_real_temporal(real_data, tmp_path / "gap1", "mumbai", gap=1).parent
    rows = bad_reference_rows(data, "reference-change", "baseline", limit=1)
    assert [r["case"] for r in rows] == list(CASES)
    by_case = {r["case"]: r for r in rows}
    given = by_case["as given"]  # scene 0: a sensor in the calibrated range, the real reference a year away
    assert not given["noted"] and float(given["correlation"]) > 0.9
    assert given["psnr_log"] > given["psnr_log_without_reference"]
    assert by_case["upside down (wrong area)"]["noted"]
    assert all(r["noted"] for r in rows if r["psnr_log"] < r["psnr_log_without_reference"])
    assert "not noted: 0 of 4 runs" in "\n".join(bad_reference_markdown(rows))
