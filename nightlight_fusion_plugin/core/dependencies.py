"""Which optional Python packages the plugin needs, and how to install them into QGIS's own Python.

Stock QGIS (Windows, macOS, Debian's python3-qgis) ships numpy, GDAL and PyQt but not onnxruntime (and on
Windows/macOS not rasterio). A plain `pip install` into QGIS's Python is refused on Debian 12 (PEP 668) and
may upgrade the numpy that QGIS's bindings are built against. So the installer runs QGIS's interpreter with
`pip install --target <plugin folder>/_deps/<python tag> --no-deps` for exactly the packages that are not
importable, never numpy/GDAL/PyQt, and the plugin appends that folder to `sys.path` (at import time, so a
later QGIS start finds it). Pure standard library: used by the CLI (`doctor`), the Processing error text and
the QGIS dialog (gui/installer.py), which runs `install` in a QgsTask.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
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


# --- which interpreter -------------------------------------------------------------------------------------


def _looks_like_python(path: str) -> bool:
    name = os.path.basename(path).lower()
    return bool(re.fullmatch(r"python(\d+(\.\d+)?)?(w)?(\.exe)?", name))


def interpreter_candidates(
    executable: str | None = None,
    base_executable: str | None = None,
    exec_prefix: str | None = None,
    version_info: Sequence[int] = sys.version_info,
    windows: bool | None = None,
) -> list[str]:
    """Paths that may be QGIS's Python, best first. sys.executable is qgis(.exe) itself inside QGIS on
    Windows and macOS, so the interpreter is looked for next to the exec prefix too."""
    executable = sys.executable if executable is None else executable
    base_executable = getattr(sys, "_base_executable", None) if base_executable is None else base_executable
    exec_prefix = sys.exec_prefix if exec_prefix is None else exec_prefix
    windows = os.name == "nt" if windows is None else windows
    major, minor = version_info[0], version_info[1]
    candidates = [p for p in (executable, base_executable) if p and _looks_like_python(p)]
    if exec_prefix:
        prefix = Path(exec_prefix)
        if windows:  # OSGeo4W: apps\Python3xx\python.exe; the standalone installer likewise
            names = [prefix / "python.exe", prefix / "python3.exe", prefix / "bin" / "python.exe"]
        else:  # Linux, and QGIS.app's Contents/MacOS/bin or Frameworks/.../bin
            names = [prefix / "bin" / f"python{major}.{minor}", prefix / "bin" / f"python{major}", prefix / "bin" / "python"]
        candidates += [str(p) for p in names]
    for name in (f"python{major}.{minor}", f"python{major}", "python"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    unique: list[str] = []
    for c in candidates:
        if c not in unique:
            unique.append(c)
    return unique


VERSION_PROBE = "import sys; print(sys.version)"


def probe_interpreter(path: str, run: Callable = subprocess.run, timeout: float = 30) -> str | None:
    """sys.version of `path` when it runs, else None."""
    if not os.path.isfile(path):
        return None
    try:
        done = run([path, "-c", VERSION_PROBE], capture_output=True, text=True, timeout=timeout, **_no_window())
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return done.stdout.strip()


def find_interpreter(
    candidates: Sequence[str] | None = None, version_info: Sequence[int] = sys.version_info, run: Callable = subprocess.run
) -> str | None:
    """The first candidate that runs and is the running Python's version (wheels are per major.minor)."""
    want = [str(version_info[0]), str(version_info[1])]
    for path in interpreter_candidates() if candidates is None else candidates:
        version = probe_interpreter(path, run)  # "3.11.2 (main, Apr 28 2025, ...) [GCC 12.2.0]"
        if version is not None and version.split()[0].split(".")[:2] == want:
            return path
    return None


def _no_window() -> dict:
    # QGIS on Windows would flash a console window for each subprocess
    return {"creationflags": subprocess.CREATE_NO_WINDOW} if os.name == "nt" else {}


# --- the pip command --------------------------------------------------------------------------------------


def numpy_version() -> str | None:
    try:
        import numpy

        return numpy.__version__
    except ImportError:
        return None


def constraints_text(numpy: str | None) -> str:
    """Pins what QGIS ships to the running versions: a stray dependency can never replace them."""
    return f"numpy=={numpy}\n" if numpy else ""


def pip_command(
    python: str,
    target: Path,
    requirements: Sequence[str],
    constraints: Path | None = None,
    find_links: Sequence[Path] = (),
    wheels: Sequence[Path] = (),
) -> list[str]:
    """pip into `target` only, no dependency resolution (the caller lists what is missing), no upgrade of
    anything outside the target. Offline wheels: files given explicitly and folders searched by pip."""
    command = [
        python,
        "-m",
        "pip",
        "install",
        "--target",
        os.fspath(target),
        "--no-deps",
        "--only-binary",
        ":all:",  # never compile onnxruntime or rasterio from source in a user's QGIS
        "--no-input",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--progress-bar",
        "off",
    ]
    if constraints is not None:
        command += ["--constraint", os.fspath(constraints)]
    for folder in find_links:
        command += ["--find-links", os.fspath(folder)]
    return command + [os.fspath(w) for w in wheels] + list(requirements)


# --- offline help ------------------------------------------------------------------------------------------

OFFLINE_PATTERNS = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "NewConnectionError",
    "ConnectTimeoutError",
    "ProxyError",
    "Network is unreachable",
    "Connection refused",
    "getaddrinfo failed",
    "SSLError",
)


def looks_offline(log: str) -> bool:
    return any(p in log for p in OFFLINE_PATTERNS)


def platform_tag_pattern(system: str | None = None, machine: str | None = None) -> str:
    """The wheel platform tag pip accepts here, as a pattern (the glibc/macOS version varies by release)."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    if system == "windows":
        return "win_arm64" if machine in ("arm64", "aarch64") else "win_amd64"
    if system == "darwin":
        return f"macosx_*_{'arm64' if machine in ('arm64', 'aarch64') else 'x86_64'} (or macosx_*_universal2)"
    return f"manylinux_*_{'aarch64' if machine in ('arm64', 'aarch64') else 'x86_64'}"


def wheel_pattern(
    requirement: Requirement,
    binary: bool,
    version_info: Sequence[int] = sys.version_info,
    system: str | None = None,
    machine: str | None = None,
) -> str:
    """e.g. onnxruntime-1.32.0-cp311-cp311-manylinux_*_x86_64.whl; pure packages: name-*-py3-none-any.whl."""
    pinned = re.fullmatch(r"[A-Za-z0-9_.-]+==([A-Za-z0-9_.]+)", requirement.spec or "")
    version = pinned.group(1) if pinned else "*"
    name = requirement.dist.replace("-", "_")
    if binary:
        tag = python_tag(version_info)
        return f"{name}-{version}-{tag}-{tag}-{platform_tag_pattern(system, machine)}.whl"
    return f"{name}-{version}-*.whl"


def offline_message(
    dependency: Dependency,
    requirements: Sequence[Requirement],
    target: Path,
    wheels: Path,
    version_info: Sequence[int] = sys.version_info,
    system: str | None = None,
    machine: str | None = None,
) -> str:
    """What to download, from where, where to put it and how to install it, when pip reaches no index."""
    lines = [
        f"pip could not download {dependency.name} (no connection to the package index?). "
        f"Download these wheels on a machine with internet access:",
    ]
    for r in requirements:
        binary = dependency.binary and r.dist == dependency.package.dist
        # protobuf ships per-platform (abi3) wheels too; any wheel pip accepts here will do
        pinned = r.spec.split("==")[1] + "/" if "==" in r.spec else ""
        lines.append(f"  {wheel_pattern(r, binary, version_info, system, machine)}   from {PYPI}/{r.dist}/{pinned}#files")
    lines += [
        f"Put them into {wheels} and press Install again (Plugins › Nightlight Fusion › Install dependencies…),",
        "or install a downloaded file with the dialog's 'Install from file…' or "
        "`python -m nightlight_fusion_plugin doctor --install --wheel FILE`.",
        f"They are installed into {target} (QGIS's numpy, GDAL and PyQt are left as they are).",
    ]
    return "\n".join(lines)


# --- installing --------------------------------------------------------------------------------------------


@dataclass
class InstallResult:
    ok: bool
    message: str
    log: str = ""
    command: list[str] = field(default_factory=list)
    restart_needed: bool = False
    offline: bool = False


def _merge(staging: Path, target: Path, dists: Sequence[str]) -> None:
    """Move what pip wrote into the target, replacing older copies (pip --target would skip them)."""
    target.mkdir(parents=True, exist_ok=True)
    normalized = {re.sub(r"[-_.]+", "_", d).lower() for d in dists}
    for info in target.glob("*.dist-info"):  # an older release's metadata would shadow the new one
        if re.sub(r"[-_.]+", "_", info.name.split("-")[0]).lower() in normalized:
            shutil.rmtree(info, ignore_errors=True)
    for entry in staging.iterdir():
        dest = target / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        shutil.move(os.fspath(entry), os.fspath(dest))


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
