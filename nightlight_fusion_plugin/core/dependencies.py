"""Which optional Python packages the plugin needs, and how to install them into QGIS's own Python.

Stock QGIS (Windows, macOS, Debian's python3-qgis) ships numpy, GDAL and PyQt but not onnxruntime (and on
Windows/macOS not rasterio). A plain `pip install` into QGIS's Python is refused on Debian 12 (PEP 668) and
may upgrade the numpy that QGIS's bindings are built against. So the installer runs QGIS's interpreter with
`pip install --target <plugin folder>/_deps/<python tag> --no-deps` for exactly the packages that are not
importable, never numpy/GDAL/PyQt, and the plugin appends that folder to `sys.path` (at import time, so a
later QGIS start finds it). Pure standard library: used by the CLI (`doctor`), the Processing error text and
the QGIS dialog (gui/installer.py), which runs `install` in a QgsTask. The installing itself is
core/pip_install.py; its public names are re-exported here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# The onnxruntime the project tests with (.venv, the shipped zoo's models). Keep equal to the pin in the
# project's lock file (constraints.txt); the installer installs exactly this release.
ONNXRUNTIME_VERSION = "1.32.0"
# Debian's python3-rasterio, which the tests use, is 1.3.x; only offered where QGIS lacks rasterio.
RASTERIO_SPEC = "rasterio>=1.3,<2"

# Never installed, never shadowed: QGIS's bindings (and rasterio's wheels' ABI) are built against these.
PROTECTED = frozenset({"numpy", "gdal", "osgeo", "pyqt5", "pyqt6", "pyqt5-sip", "sip", "qgis", "pip", "setuptools"})

PLUGIN_DIR = Path(__file__).resolve().parent.parent
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


def activate(plugin_dir: Path = PLUGIN_DIR) -> bool:
    """Called when the plugin package is imported, before anything imports onnxruntime."""
    return add_to_sys_path(deps_folder(plugin_dir))


# --- what is there ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    name: str
    version: str | None  # None: missing
    location: str = ""
    error: str = ""

    @property
    def available(self) -> bool:
        return self.version is not None


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken half-import
        return False


def check(dependency: Dependency) -> Status:
    """Import it (find_spec alone would accept a broken install)."""
    try:
        module = importlib.import_module(dependency.package.module)
    except Exception as exc:  # a broken binary raises OSError/ImportError/anything: it is missing all the same
        return Status(dependency.name, None, error=f"{type(exc).__name__}: {exc}")
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(dependency.package.dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown version"
    location = os.path.dirname(os.path.dirname(getattr(module, "__file__", "") or ""))
    return Status(dependency.name, str(version), location)


def missing(dependencies: Sequence[Dependency] = DEPENDENCIES) -> list[Dependency]:
    return [d for d in dependencies if not check(d).available]


def missing_requirements(dependency: Dependency, is_importable: Callable[[str], bool] = importable) -> list[Requirement]:
    """The package and those of its requirements that cannot be imported, never a protected one."""
    wanted = [dependency.package, *dependency.requires]
    return [r for r in wanted if r.dist.lower() not in PROTECTED and not is_importable(r.module)]


def startup_message(statuses: Sequence[Status]) -> str | None:
    """The one line the plugin shows at start-up when something is missing (None when all is there)."""
    absent = [s.name for s in statuses if not s.available]
    if not absent:
        return None
    return (
        f"Nightlight Fusion: {' and '.join(absent)} missing"
        + (" (needed for the learned models; the baseline still works)" if absent == ["onnxruntime"] else "")
        + ". Install installs it into the plugin's own folder, leaving QGIS's packages as they are."
    )


def install_hint(module: str) -> str:
    """How a user installs `module`: the plugin's installer (pip into QGIS's Python is refused by PEP 668)."""
    return (
        "use the plugin's installer: Plugins › Nightlight Fusion › Install dependencies… (or the Install button "
        f"of its start-up message), or headless `python -m nightlight_fusion_plugin doctor --install`; it installs "
        f"{'onnxruntime==' + ONNXRUNTIME_VERSION if module == 'onnxruntime' else module} into {deps_folder()} "
        "without touching QGIS's numpy"
    )


# The installer proper lives in pip_install.py (it needs the definitions above, hence at the end).
from .pip_install import (  # noqa: E402, F401 (re-exported: the CLI, the dialog and tests use deps.install etc.)
    OFFLINE_PATTERNS,
    VERSION_PROBE,
    InstallResult,
    constraints_text,
    find_interpreter,
    install,
    interpreter_candidates,
    looks_offline,
    numpy_version,
    offline_message,
    pip_command,
    platform_tag_pattern,
    probe_interpreter,
    wheel_pattern,
)

