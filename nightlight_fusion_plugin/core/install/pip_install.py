"""Installing the plugin's optional packages into QGIS's own Python: finding that interpreter, the pip command
(`--target` the plugin's folder, `--no-deps`, numpy pinned to the running release), the offline message, and
the install itself. What is needed and where it goes is install/packages.py; pure standard library.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .packages import (
    PYPI,
    Dependency,
    Requirement,
    python_tag,
)

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
