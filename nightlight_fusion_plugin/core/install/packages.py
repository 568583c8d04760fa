"""What the plugin's optional packages are (onnxruntime, rasterio and their requirements), the tested
versions, and where the installer puts them (one folder per Python version in the plugin's `_deps/`).
Pure standard library; the base that `dependencies` (what is there) and `pip_install` (the pip command) share.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# The onnxruntime the project tests with (.venv, the shipped zoo's models). Keep equal to the pin in the
# project's lock file (constraints.txt); the installer installs exactly this release.
ONNXRUNTIME_VERSION = "1.32.0"
# Debian's python3-rasterio, which the tests use, is 1.3.x; only offered where QGIS lacks rasterio.
RASTERIO_SPEC = "rasterio>=1.3,<2"

# Never installed, never shadowed: QGIS's bindings (and rasterio's wheels' ABI) are built against these.
PROTECTED = frozenset({"numpy", "gdal", "osgeo", "pyqt5", "pyqt6", "pyqt5-sip", "sip", "qgis", "pip", "setuptools"})

PLUGIN_DIR = Path(__file__).resolve().parents[2]  # nightlight_fusion_plugin/ (core/install/dependencies.py)
DEPS_DIR_NAME = "_deps"
PYPI = "https://pypi.org/project"


@dataclass(frozen=True)
class Requirement:
    """One pip distribution: its import name tells whether it is already there."""

    dist: str
    module: str
    spec: str = ""  # pip requirement; the bare name when empty

    @property
    def pip_spec(self) -> str:
        return self.spec or self.dist


@dataclass(frozen=True)
class Dependency:
    """A package the plugin needs, with the runtime requirements of the release the installer installs.
    Listed by hand (pip runs with --no-deps) so numpy & co. are never resolved into the target."""

    name: str
    purpose: str
    package: Requirement
    requires: tuple[Requirement, ...]
    binary: bool = True  # compiled: the wheel is per Python and platform


ONNXRUNTIME = Dependency(
    "onnxruntime",
    "running the bundled models",
    Requirement("onnxruntime", "onnxruntime", f"onnxruntime=={ONNXRUNTIME_VERSION}"),
    # Requires-Dist of onnxruntime 1.32.0 (older releases also wanted coloredlogs and sympy)
    (
        Requirement("numpy", "numpy"),
        Requirement("protobuf", "google.protobuf", "protobuf>=4.25.8"),
        Requirement("flatbuffers", "flatbuffers"),
        Requirement("packaging", "packaging"),
    ),
)
RASTERIO = Dependency(
    "rasterio",
    "reading and writing rasters",
    Requirement("rasterio", "rasterio", RASTERIO_SPEC),
    (
        Requirement("numpy", "numpy"),
        Requirement("affine", "affine"),
        Requirement("attrs", "attr"),
        Requirement("certifi", "certifi"),
        Requirement("click", "click"),
        Requirement("cligj", "cligj"),
        Requirement("click-plugins", "click_plugins"),
        Requirement("snuggs", "snuggs"),  # rasterio 1.3
        Requirement("pyparsing", "pyparsing"),  # rasterio 1.4
    ),
)
DEPENDENCIES = (RASTERIO, ONNXRUNTIME)


# --- where ---------------------------------------------------------------------------------------------


def python_tag(version_info: Sequence[int] = sys.version_info) -> str:
    return f"cp{version_info[0]}{version_info[1]}"


def deps_folder(plugin_dir: Path = PLUGIN_DIR, version_info: Sequence[int] = sys.version_info) -> Path:
    """One folder per Python version: a QGIS upgrade to another Python must not load the old binaries."""
    platform_tag = re.sub(r"[^A-Za-z0-9]+", "_", sysconfig.get_platform())
    return Path(plugin_dir) / DEPS_DIR_NAME / f"{python_tag(version_info)}-{platform_tag}"


def wheel_folder(plugin_dir: Path = PLUGIN_DIR) -> Path:
    """Where downloaded wheels can be dropped for an offline install (searched with --find-links)."""
    return Path(plugin_dir) / DEPS_DIR_NAME / "wheels"


def add_to_sys_path(folder: Path, path: list[str] | None = None) -> bool:
    """Append (never prepend: QGIS's own numpy, GDAL and PyQt must win) an existing folder once."""
    path = sys.path if path is None else path
    folder_text = os.fspath(folder)
    if not os.path.isdir(folder_text) or folder_text in path:
        return False
    path.append(folder_text)
    importlib.invalidate_caches()
    return True
