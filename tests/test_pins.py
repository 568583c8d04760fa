"""The lock (constraints.txt): every Python package setup.sh pip-installs, at one exact version.

requirements*.txt name the direct dependencies at exact versions too; `make pins` (scripts/refresh_pins.sh)
lifts those pins, resolves them in a throw-away venv, runs the suite and rewrites constraints.txt;
setup.sh installs with -c constraints.txt.
NLF_PINS_LOCK points these tests at refresh_pins.sh's candidate lock while it tests it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = Path(os.environ.get("NLF_PINS_LOCK") or REPO / "constraints.txt")
# the files scripts/setup.sh installs (and scripts/refresh_pins.sh locks)
REQUIREMENT_FILES = ["requirements.txt", "requirements-dev.txt", "requirements-training.txt", "requirements-dask.txt"]


def _lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def _lock() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, _lines(LOCK))}


def _pin(req: Requirement) -> str | None:
    """The exact version of an `==` pin, else None."""
    specs = list(req.specifier)
    return specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None


def test_every_requirement_has_an_exact_pin_in_the_lock():
    lock = _lock()
    for name in REQUIREMENT_FILES:
        for line in _lines(REPO / name):
            assert not line.startswith("-"), f"{name}: pip options ({line}) belong in scripts/setup.sh"
            req = Requirement(line)
            assert [s.operator for s in req.specifier] == ["=="], f"{name}: {line} is not an exact pin (make pins writes them)"
            locked = lock.get(canonicalize_name(req.name))
            assert locked is not None and _pin(locked), f"{req.name} ({name}) has no == pin in {LOCK.name}: make pins"
            assert req.specifier.contains(_pin(locked), prereleases=True), (
                f"{LOCK.name} pins {req.name}=={_pin(locked)}, outside {name}'s {req.specifier}: make pins"
            )


def test_lock_is_exact_and_keeps_numpy_debians():
    lock = _lock()
    for key, req in lock.items():
        if key == "numpy":
            continue
        assert _pin(req) and not req.marker and not req.extras, f"{LOCK.name}: {req} is not a plain == pin"
    numpy = lock.get("numpy")
    assert numpy is not None, f"{LOCK.name} must cap numpy (numpy<2): Debian's rasterio/QGIS need numpy 1.x"
    assert _pin(numpy) is None, "numpy comes from Debian (1.24), never pinned (pip would install it)"
    assert not any(numpy.specifier.contains(v) for v in ["2.0.0", "2.2.6", "3.0.0"]), numpy


def test_refresh_and_setup_use_the_same_files():
    refresh = (REPO / "scripts" / "refresh_pins.sh").read_text(encoding="utf-8")
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    listed = re.search(r"^REQUIREMENTS=\(([^)]*)\)", refresh, re.M)
    assert listed and listed.group(1).split() == REQUIREMENT_FILES
    assert setup.count("-c constraints.txt") >= 2  # plugin + dev, and training
    for name in REQUIREMENT_FILES:
        assert name in setup


def _venv_site() -> Path | None:
    if sys.prefix == sys.base_prefix:
        return None
    return Path(sys.prefix).resolve()


def test_installed_versions_are_the_locked_ones():
    """In a venv (.venv, or refresh_pins.sh's): what pip installed there is what the lock says. Packages the lock
    does not know (another extra someone installed) are left alone; numpy must be Debian's, not the venv's."""
    site = _venv_site()
    if site is None:
        pytest.skip("not in a virtualenv")
    import numpy

    assert site not in Path(numpy.__file__).resolve().parents, f"numpy {numpy.__version__} was pip-installed in {site}"
    lock = _lock()
    wrong = []
    for dist in importlib.metadata.distributions():
        location = Path(dist.locate_file("")).resolve()
        key = canonicalize_name(dist.metadata["Name"])
        if site not in (location, *location.parents) or key == "pip" or key not in lock:
            continue
        pinned = _pin(lock[key])
        if pinned and Version(dist.version) != Version(pinned):
            wrong.append(f"{key} {dist.version} (locked {pinned})")
    assert not wrong, f"{sys.prefix} differs from {LOCK.name}: {wrong}; run make setup-training"


def test_plugin_installer_uses_the_locked_onnxruntime():
    """core/dependencies.py installs onnxruntime into QGIS's Python: the release the suite ran with."""
    try:
        deps = importlib.import_module("nightlight_fusion_plugin.core.install.dependencies")
    except ModuleNotFoundError:
        pytest.skip("core/dependencies.py not there yet")
    assert deps.ONNXRUNTIME_VERSION == _pin(_lock()["onnxruntime"])
