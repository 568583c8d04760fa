"""DMSP consistency (issue #19): a last pass that makes the map, re-simulated to DMSP, match the DMSP."""

from __future__ import annotations

from pathlib import Path

import pytest

from nightlight_fusion_plugin.core.errors import InputError
from nightlight_fusion_plugin.core.pipeline.consistency import consistency_input_path
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.report.run_report import dmsp_consistency

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "nightlight_fusion_plugin" / "sample_data"
DMSP = str(SAMPLE / "dmsp_F15_2005_sample.tif")
REFERENCE = str(SAMPLE / "viirs_2015_reference_sample.tif")


@pytest.mark.parametrize("model, viirs", [("baseline", None), ("baseline", REFERENCE), ("reference-change", REFERENCE)])
def test_the_consistent_map_resimulates_closer_to_the_dmsp(tmp_path: Path, model: str, viirs: str | None) -> None:
    before, after = tmp_path / "before.tif", tmp_path / "after.tif"
    fuse(FuseRequest(dmsp=DMSP, viirs=viirs, output=str(before), model=model))
    result = fuse(FuseRequest(dmsp=DMSP, viirs=viirs, output=str(after), model=model, dmsp_consistency=True))
    qa_before, qa_after = dmsp_consistency(str(before), DMSP), dmsp_consistency(str(after), DMSP)
    assert qa_after["mean_abs_dn"] < qa_before["mean_abs_dn"]
    assert qa_after["pearson_r"] >= qa_before["pearson_r"] - 1e-3
    assert "NLF_DMSP_CONSISTENCY" in result.tags and any("DMSP consistency" in n for n in result.notes)
    assert not consistency_input_path(after).exists()  # the intermediate map is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.tif", "before.tif"]


def test_blocks_refuse_the_consistency_pass_clearly(tmp_path: Path) -> None:
    from nightlight_fusion_plugin.core.pipeline.distributed import fuse_blocks

    with pytest.raises(InputError, match="dmsp-consistency.*does not run in blocks"):
        fuse_blocks(FuseRequest(dmsp=DMSP, output=str(tmp_path / "o.tif"), model="baseline", dmsp_consistency=True))
    assert not list(tmp_path.iterdir())
