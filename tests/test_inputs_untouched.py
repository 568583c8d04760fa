"""The plugin's reads never write next to the inputs (no GDAL PAM .aux.xml): the input folder's listing and
checksums are the same before and after a run, through qgis_process, Processing in QGIS and the CLI.

Tests run as root, for whom read-only modes are not enforced: the listing and sha256 checks are the assertion."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_plugin_zip import _qgis_process, plugin_zip, qgis_profile  # noqa: F401 (fixtures reused)

SAMPLE = REPO / "nightlight_fusion_plugin" / "sample_data"


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def read_only_inputs(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in ("dmsp_F15_2005_sample.tif", "viirs_2015_reference_sample.tif"):
        shutil.copy(SAMPLE / name, folder / name)
        (folder / name).chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    before = _snapshot(folder)
    yield folder, before
    folder.chmod(stat.S_IRWXU)  # so that pytest can clean up


def _assert_untouched(folder: Path, before: dict[str, str]) -> None:
    after = _snapshot(folder)
    assert sorted(after) == sorted(before), f"new files next to the inputs: {sorted(set(after) - set(before))}"
    assert after == before


@pytest.mark.slow
def test_qgis_process_fuse_leaves_the_input_folder_untouched(qgis_profile, read_only_inputs, tmp_path):  # noqa: F811
    env, _ = qgis_profile
    folder, before = read_only_inputs
    out = tmp_path / "out" / "fused.tif"
    done = _qgis_process(
        env,
        "run",
        "nightlightfusion:fuse",
        "--",
        f"DMSP={folder / 'dmsp_F15_2005_sample.tif'}",
        f"VIIRS={folder / 'viirs_2015_reference_sample.tif'}",
        "MODEL=baseline",
        f"OUTPUT={out}",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    _assert_untouched(folder, before)
    # the output folder holds what was asked for: the GeoTIFF (overviews and tags inside), nothing else
    assert sorted(p.name for p in out.parent.iterdir()) == ["fused.tif"]

    intercal = tmp_path / "out" / "dnc.tif"
    done = _qgis_process(
        env, "run", "nightlightfusion:intercalibrate", "--", f"DMSP={folder / 'dmsp_F15_2005_sample.tif'}", f"OUTPUT={intercal}"
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    _assert_untouched(folder, before)


def test_processing_run_with_file_paths_leaves_the_input_folder_untouched(qgis_processing, read_only_inputs, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback
    from qgis_helpers import register_provider

    register_provider()
    import processing

    folder, before = read_only_inputs
    out = tmp_path / "fused.tif"
    processing.run(
        "nightlightfusion:fuse",
        {
            "DMSP": str(folder / "dmsp_F15_2005_sample.tif"),
            "VIIRS": str(folder / "viirs_2015_reference_sample.tif"),
            "MODEL": "baseline",
            "OUTPUT": str(out),
        },
        context=QgsProcessingContext(),
        feedback=QgsProcessingFeedback(),
    )
    assert out.exists()
    _assert_untouched(folder, before)


def test_cli_with_the_default_model_leaves_the_input_folder_untouched(read_only_inputs, tmp_path):
    pytest.importorskip("onnxruntime")
    folder, before = read_only_inputs
    out = tmp_path / "fused.tif"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nightlight_fusion_plugin",
            "fuse",
            "--dmsp",
            str(folder / "dmsp_F15_2005_sample.tif"),
            "--viirs",
            str(folder / "viirs_2015_reference_sample.tif"),
            "--output",
            str(out),
            "--report",
            str(tmp_path / "report.html"),
            "--quiet",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_untouched(folder, before)
