"""The plugin zip as plugins.qgis.org and a user get it: built by `make zip`, installed into a throw-away
profile, enabled and run by qgis_process (Debian's /usr/bin/qgis_process wrapper is broken: use the .bin)."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
import rasterio
from conftest import REPO

QGIS_PROCESS = "/usr/bin/qgis_process.bin"
PLUGIN = "nightlight_fusion_plugin"
REQUIRED_METADATA = (
    "name",
    "description",
    "about",
    "version",
    "qgisMinimumVersion",
    "author",
    "email",
    "tracker",
    "repository",
)


@pytest.fixture(scope="module")
def plugin_zip() -> Path:
    subprocess.run(["make", "zip"], cwd=REPO, check=True, capture_output=True, text=True)
    return REPO / "dist" / f"{PLUGIN}.zip"


@pytest.fixture(scope="module")
def qgis_profile(plugin_zip, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    # pytest-qgis points QGIS_CUSTOM_CONFIG_PATH at its own profile; the user's default profile is wanted here
    env = {k: v for k, v in os.environ.items() if k != "QGIS_CUSTOM_CONFIG_PATH"}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), QT_QPA_PLATFORM="offscreen")
    plugins = home / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as zf:
        zf.extractall(plugins)
    done = subprocess.run([QGIS_PROCESS, "plugins", "enable", PLUGIN], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return env, plugins / PLUGIN


def test_zip_passes_the_plugin_repository_checks(plugin_zip):
    assert plugin_zip.stat().st_size <= 25 * 1024 * 1024
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
        metadata = configparser.ConfigParser()
        metadata.read_string(zf.read(f"{PLUGIN}/metadata.txt").decode())
    assert all(n.startswith(f"{PLUGIN}/") for n in names)
    assert f"{PLUGIN}/LICENSE" in names and f"{PLUGIN}/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    general = metadata["general"]
    for key in REQUIRED_METADATA:
        assert general.get(key, "").strip(), f"metadata.txt lacks {key}"
    assert general["hasProcessingProvider"] == "yes"


def _qgis_process(env, *args):
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=300)


def test_installed_zip_runs_fuse_through_qgis_process(qgis_profile, tmp_path):
    env, installed = qgis_profile
    listed = _qgis_process(env, "list")
    assert "nightlightfusion:fuse" in listed.stdout and "nightlightfusion:intercalibrate" in listed.stdout
    out = tmp_path / "fused.tif"
    sample = installed / "sample_data"
    done = _qgis_process(
        env,
        "run",
        "nightlightfusion:fuse",
        "--json",
        "--",
        f"DMSP={sample / 'dmsp_F15_2005_sample.tif'}",
        f"VIIRS={sample / 'viirs_2015_reference_sample.tif'}",
        "MODEL=baseline",
        "SEED=1",
        f"OUTPUT={out}",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(done.stdout)["results"]["OUTPUT"] == str(out)
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 4326 and src.tags()["NLF_METHOD"] == "baseline"


def test_qgis_process_reports_bad_input_without_output(qgis_profile, tmp_path):
    env, installed = qgis_profile
    out = tmp_path / "fused.tif"
    reference = installed / "sample_data" / "viirs_2015_reference_sample.tif"
    done = _qgis_process(env, "run", "nightlightfusion:fuse", "--", f"DMSP={reference}", f"OUTPUT={out}")
    assert done.returncode != 0
    assert "0–63 DN" in done.stdout + done.stderr
    assert not out.exists()
