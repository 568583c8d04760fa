"""Which optional Python packages the plugin needs, and how to install them into QGIS's own Python.

Stock QGIS (Windows, macOS, Debian's python3-qgis) ships numpy, GDAL and PyQt but not onnxruntime (and on
Windows/macOS not rasterio). A plain `pip install` into QGIS's Python is refused on Debian 12 (PEP 668) and
may upgrade the numpy that QGIS's bindings are built against. So the installer runs QGIS's interpreter with
`pip install --target <plugin folder>/_deps/<python tag> --no-deps` for exactly the packages that are not
importable, never numpy/GDAL/PyQt, and the plugin appends that folder to `sys.path` (at import time, so a
later QGIS start finds it). Pure standard library: used by the CLI (`doctor`), the Processing error text and
the QGIS dialog (gui/installer.py), which runs `install` in a QgsTask. The installing itself is
install/pip_install.py; its public names are re-exported here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .packages import (  # noqa: F401 (re-exported: deps.ONNXRUNTIME etc.)
    DEPENDENCIES,
    DEPS_DIR_NAME,
    ONNXRUNTIME,
    ONNXRUNTIME_VERSION,
    PLUGIN_DIR,
    PROTECTED,
    PYPI,
    RASTERIO,
    RASTERIO_SPEC,
    Dependency,
    Requirement,
    add_to_sys_path,
    deps_folder,
    python_tag,
    wheel_folder,
)


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


# --- installing (the pip command itself is pip_install.py) ---------------------------------------------

from .pip_install import (  # noqa: E402, F401 (re-exported: the CLI, the dialog and tests use deps.find_interpreter etc.)
    OFFLINE_PATTERNS,
    VERSION_PROBE,
    InstallResult,
    _merge,
    _no_window,
    constraints_text,
    find_interpreter,
    interpreter_candidates,
    looks_offline,
    numpy_version,
    offline_message,
    pip_command,
    platform_tag_pattern,
    probe_interpreter,
    wheel_pattern,
)


def install(
    dependency: Dependency = ONNXRUNTIME,
    target: Path | None = None,
    wheels: Sequence[Path] = (),
    python: str | None = None,
    log: Callable[[str], None] = lambda line: None,
    is_cancelled: Callable[[], bool] = lambda: False,
    plugin_dir: Path = PLUGIN_DIR,
) -> InstallResult:
    """Install `dependency` (and its missing requirements) into the plugin-local folder with QGIS's own
    interpreter, streaming pip's output to `log`; then make it importable in this process if possible."""
    target = deps_folder(plugin_dir) if target is None else Path(target)
    wheel_dir = wheel_folder(plugin_dir)
    requirements = missing_requirements(dependency)
    if not requirements and not wheels:
        status = check(dependency)
        if status.available:
            return InstallResult(True, f"{dependency.name} {status.version} is already installed ({status.location}).")
        requirements = [dependency.package]  # importable module found but broken: reinstall it
    python = python or find_interpreter()
    if python is None:
        return InstallResult(
            False,
            "Cannot find QGIS's Python interpreter to run pip (looked at: "
            + ", ".join(interpreter_candidates())
            + "). Install the packages by hand: "
            + " ".join(r.pip_spec for r in requirements),
        )
    wheel_files = [Path(w).resolve() for w in wheels]
    wheel_dists = {re.sub(r"[-_.]+", "_", w.name.split("-")[0]).lower() for w in wheel_files}
    names = [r.pip_spec for r in requirements if re.sub(r"[-_.]+", "_", r.dist).lower() not in wheel_dists]
    find_links = [p for p in {*(w.parent for w in wheel_files), wheel_dir} if p.is_dir()]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=target.parent) as tmp:
        staging, constraints = Path(tmp) / "site", Path(tmp) / "constraints.txt"
        constraints.write_text(constraints_text(numpy_version()), encoding="utf-8")
        command = pip_command(python, staging, names, constraints, sorted(find_links), wheel_files)
        lines: list[str] = []
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
        env.pop("PYTHONPATH", None)  # pip needs nothing from QGIS's path, and a stray package there could break it
        log("$ " + " ".join(command))
        try:
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **_no_window()
            )
        except OSError as exc:
            return InstallResult(False, f"Cannot run {python} ({exc}).", command=command)
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            log(lines[-1])
            if is_cancelled():
                proc.kill()
                proc.wait()
                return InstallResult(False, "Cancelled; nothing was installed.", "\n".join(lines), command)
        code = proc.wait()
        text = "\n".join(lines)
        if code != 0:
            if looks_offline(text):
                message = offline_message(dependency, requirements, target, wheel_dir)
                return InstallResult(False, message, text, command, offline=True)
            tail = "\n".join(lines[-15:])
            return InstallResult(False, f"pip failed (exit code {code}); nothing was installed:\n{tail}", text, command)
        _merge(staging, target, [r.dist for r in requirements] + sorted(wheel_dists))
    return _activate_after_install(dependency, target, text, command)


def _activate_after_install(dependency: Dependency, target: Path, text: str, command: list[str]) -> InstallResult:
    add_to_sys_path(target)
    importlib.invalidate_caches()
    status = check(dependency)
    if status.available:
        return InstallResult(
            True, f"Installed {dependency.name} {status.version} into {target}; it is ready (no restart needed).", text, command
        )
    return InstallResult(
        True,
        f"Installed {dependency.name} into {target}; restart QGIS to use it ({status.error}).",
        text,
        command,
        restart_needed=True,
    )
