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
    # a second run reuses the measured rows (keyed by model sha256) instead of measuring again
    rows_file = tmp_path / "eval" / "rows_quick.jsonl"
    measured = rows_file.read_text().count("\n")
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert rows_file.read_text().count("\n") == measured
    manifest = {m["id"]: m for m in json.loads((zoo / "manifest.json").read_text())["models"]}
    levels = manifest["diffusion-fp32"]["speed_levels"]
    assert levels and levels[0]["level"] == 1 and levels[0]["seconds_per_megapixel"] > 0
    # untrained smoke models never beat the baselines, so none becomes the plugin's default
    assert not any(m["default"] for m in manifest.values())
