"""The dependency installer (core/dependencies.py, `doctor`): unit tests of the pure module, and the real thing:
the plugin zip in a throw-away QGIS profile, Debian's system Python (no onnxruntime), pip into the plugin's
own folder, then qgis_process fusing with the default (onnxruntime) model."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from nightlight_fusion_plugin.core.install import dependencies as deps

SYSTEM_PYTHON = "/usr/bin/python3"
QGIS_PROCESS = "/usr/bin/qgis_process.bin"
PLUGIN = "nightlight_fusion_plugin"


# --- unit tests of the pure module ---------------------------------------------------------------------


def test_interpreter_candidates_skip_qgis_binary_and_look_next_to_the_exec_prefix(tmp_path):
    windows = deps.interpreter_candidates(
        executable=r"C:\OSGeo4W\bin\qgis-bin.exe", base_executable="", exec_prefix=r"C:\OSGeo4W\apps\Python39",
        version_info=(3, 9), windows=True,
    )
    assert not any("qgis" in c.lower() and c.lower().endswith("qgis-bin.exe") for c in windows)
    assert windows[0] == str(Path(r"C:\OSGeo4W\apps\Python39") / "python.exe")
    mac = deps.interpreter_candidates(
        executable="/Applications/QGIS.app/Contents/MacOS/QGIS", base_executable="",
        exec_prefix="/Applications/QGIS.app/Contents/MacOS", version_info=(3, 9), windows=False,
    )
    assert mac[0] == "/Applications/QGIS.app/Contents/MacOS/bin/python3.9"
    linux = deps.interpreter_candidates(executable="/usr/bin/python3", base_executable="/usr/bin/python3", exec_prefix="/usr")
    assert linux[0] == "/usr/bin/python3" and linux.count("/usr/bin/python3") == 1


def test_find_interpreter_runs_candidates_and_wants_the_running_python_version(tmp_path):
    for name in ("old", "right", "broken"):
        (tmp_path / name).write_text("")
    versions = {"old": "3.9.2 (default)", "right": "3.11.2 (main, Apr 28 2025) [GCC 12.2.0]"}
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        assert command[1:] == ["-c", deps.VERSION_PROBE]
        name = Path(command[0]).name
        return subprocess.CompletedProcess(command, 0 if name in versions else 1, versions.get(name, ""), "")

    candidates = [str(tmp_path / n) for n in ("missing", "broken", "old", "right")]
    assert deps.find_interpreter(candidates, (3, 11), fake_run) == str(tmp_path / "right")
    assert [Path(c[0]).name for c in calls] == ["broken", "old", "right"]  # "missing" is not even run
    assert deps.find_interpreter(candidates[:3], (3, 11), fake_run) is None


def test_find_interpreter_finds_this_python():
    found = deps.find_interpreter()
    assert found is not None
    done = subprocess.run([found, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert done.stdout.strip() == str(tuple(sys.version_info[:2]))


def test_pip_command_targets_the_folder_without_deps_and_never_numpy(tmp_path):
    target = tmp_path / "_deps" / "cp311"
    constraints = tmp_path / "c.txt"
    constraints.write_text(deps.constraints_text("1.24.2"))
    present = {"numpy", "packaging"}
    wanted = deps.missing_requirements(deps.ONNXRUNTIME, lambda module: module in present)
    command = deps.pip_command("/usr/bin/python3", target, [r.pip_spec for r in wanted], constraints)
    assert command[:4] == ["/usr/bin/python3", "-m", "pip", "install"]
    assert command[command.index("--target") + 1] == str(target)
    assert "--no-deps" in command and "--upgrade" not in command and "-U" not in command
    assert command[command.index("--constraint") + 1] == str(constraints)
    assert constraints.read_text() == "numpy==1.24.2\n"
    assert f"onnxruntime=={deps.ONNXRUNTIME_VERSION}" in command
    assert not [a for a in command if a.lower().startswith(("numpy", "packaging", "gdal", "pyqt"))]
    assert {r.dist for r in wanted} == {"onnxruntime", "protobuf", "flatbuffers"}


def test_missing_requirements_never_lists_protected_packages():
    nothing = deps.missing_requirements(deps.ONNXRUNTIME, lambda module: False)
    assert "numpy" not in {r.dist for r in nothing}
    assert deps.missing_requirements(deps.RASTERIO, lambda module: False)[0].dist == "rasterio"
    assert "numpy" not in {r.dist for r in deps.missing_requirements(deps.RASTERIO, lambda module: False)}


def test_pinned_onnxruntime_is_the_one_the_project_tests_with():
    import importlib.metadata

    try:
        tested = importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("onnxruntime is not installed in this environment")
    assert deps.ONNXRUNTIME_VERSION == tested


def test_sys_path_is_appended_once_and_only_for_an_existing_folder(tmp_path):
    path = ["/usr/lib/python3/dist-packages"]
    folder = tmp_path / "_deps" / "cp311-linux_x86_64"
    assert not deps.add_to_sys_path(folder, path)
    folder.mkdir(parents=True)
    assert deps.add_to_sys_path(folder, path)
    assert not deps.add_to_sys_path(folder, path)
    assert path == ["/usr/lib/python3/dist-packages", str(folder)]  # after QGIS's own packages: never shadows them


def test_deps_folder_is_per_python_inside_the_plugin(tmp_path):
    folder = deps.deps_folder(tmp_path, (3, 12))
    assert folder.parent == tmp_path / "_deps" and folder.name.startswith("cp312-")
    assert deps.wheel_folder(tmp_path) == tmp_path / "_deps" / "wheels"


def test_plugin_import_adds_an_existing_deps_folder_to_sys_path(tmp_path):
    code = (
        "import sys; from nightlight_fusion_plugin.core.install import dependencies as d; "
        "print(str(d.deps_folder()) in sys.path)"
    )
    folder = deps.deps_folder()
    made = [p for p in (folder.parent, folder) if not p.exists()]  # removed again: the checkout stays clean
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    finally:
        for path in reversed(made):
            path.rmdir()
    assert done.stdout.strip() == "True", done.stderr


def test_offline_message_names_the_wheel_and_the_folders(tmp_path):
    wanted = deps.missing_requirements(deps.ONNXRUNTIME, lambda module: module in {"numpy", "packaging"})
    text = deps.offline_message(
        deps.ONNXRUNTIME, wanted, tmp_path / "target", tmp_path / "wheels", (3, 11), "Linux", "x86_64"
    )
    assert f"onnxruntime-{deps.ONNXRUNTIME_VERSION}-cp311-cp311-manylinux_*_x86_64.whl" in text
    assert f"https://pypi.org/project/onnxruntime/{deps.ONNXRUNTIME_VERSION}/#files" in text
    assert "protobuf-" in text and "flatbuffers-" in text
    assert str(tmp_path / "target") in text and str(tmp_path / "wheels") in text
    assert "doctor --install --wheel FILE" in text and "Install from file" in text
    windows = deps.offline_message(deps.ONNXRUNTIME, wanted[:1], tmp_path, tmp_path, (3, 12), "Windows", "AMD64")
    assert "cp312-cp312-win_amd64.whl" in windows
    assert deps.looks_offline("ERROR: No matching distribution found for onnxruntime==1.32.0")
    assert not deps.looks_offline("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES")


def test_missing_onnxruntime_error_names_the_installer(monkeypatch):
    from nightlight_fusion_plugin.core.errors import MissingDependencyError, require

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(MissingDependencyError) as raised:
        require("onnxruntime", "running the bundled models")
    message = str(raised.value)
    assert "doctor --install" in message and "Install dependencies" in message
    assert "pip install onnxruntime" not in message


def test_startup_message_only_when_something_is_missing():
    assert deps.startup_message([deps.Status("rasterio", "1.3.5"), deps.Status("onnxruntime", "1.32.0")]) is None
    text = deps.startup_message([deps.Status("rasterio", "1.3.5"), deps.Status("onnxruntime", None)])
    assert "onnxruntime" in text and "baseline still works" in text


# --- the real installer: plugin zip, system Python, qgis_process -----------------------------------------


def _system_python_has(module: str) -> bool:
    done = subprocess.run([SYSTEM_PYTHON, "-c", f"import {module}"], capture_output=True, env=_clean_env())
    return done.returncode == 0


def _clean_env(**extra: str) -> dict[str, str]:
    # the .venv's variables and pytest-qgis's profile must not leak into the system Python / qgis_process
    env = {k: v for k, v in os.environ.items() if k not in ("QGIS_CUSTOM_CONFIG_PATH", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env.update(extra)
    return env


def _numpy(env) -> str:
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import numpy; print(numpy.__version__, numpy.__file__)"], capture_output=True, text=True, env=env
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def plugin_zip() -> Path:
    subprocess.run(["make", "zip"], cwd=REPO, check=True, capture_output=True, text=True)
    return REPO / "dist" / f"{PLUGIN}.zip"


def _profile(plugin_zip: Path, home: Path) -> tuple[dict[str, str], Path]:
    env = _clean_env(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), QT_QPA_PLATFORM="offscreen")
    plugins = home / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(plugin_zip) as zf:
        assert not [n for n in zf.namelist() if f"{deps.DEPS_DIR_NAME}/" in n], "the zip must not ship installed packages"
        zf.extractall(plugins)
    return env, plugins / PLUGIN


def _doctor(env, plugins: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SYSTEM_PYTHON, "-m", PLUGIN, "doctor", *args],
        env={**env, "PYTHONPATH": str(plugins.parent)},
        cwd=plugins.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_installer_puts_onnxruntime_into_the_plugin_and_qgis_process_fuses_with_it(plugin_zip, tmp_path):
    if _system_python_has("onnxruntime"):
        pytest.skip(f"{SYSTEM_PYTHON} already has onnxruntime: the installer has nothing to do")
    env, installed = _profile(plugin_zip, tmp_path / "home")
    numpy_before = _numpy(env)
    done = _doctor(env, installed, "--install")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    target = Path(done.stdout.split("target", 1)[1].split("\n", 1)[0].strip())
    assert target.parent == installed / deps.DEPS_DIR_NAME and (target / "onnxruntime").is_dir()
    assert "no restart needed" in done.stdout
    assert not list(target.glob("numpy*")), "numpy must never be installed into the target"
    assert _numpy(env) == numpy_before and "/usr/lib/python3/dist-packages" in numpy_before
    assert f"onnxruntime  {deps.ONNXRUNTIME_VERSION}" in _doctor(env, installed).stdout  # a later start finds it

    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", PLUGIN], env=env, capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    out = tmp_path / "fused.tif"
    sample = installed / "sample_data"
    run = subprocess.run(
        [
            QGIS_PROCESS,
            "run",
            "nightlightfusion:fuse",
            "--",
            # without a reference the default is the zoo's ONNX model (with one it is reference-change, no onnxruntime)
            f"DMSP={sample / 'dmsp_F15_2005_sample.tif'}",
            f"OUTPUT={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    import rasterio

    with rasterio.open(out) as src:
        assert src.tags()["NLF_MODEL_FAMILY"] != "baseline" and src.tags().get("NLF_MODEL_SHA256")


@pytest.mark.slow
def test_installer_offline_says_what_to_download_and_where(plugin_zip, tmp_path):
    if _system_python_has("onnxruntime"):
        pytest.skip(f"{SYSTEM_PYTHON} already has onnxruntime: the installer has nothing to do")
    env, installed = _profile(plugin_zip, tmp_path / "home")
    # no index, no find-links, no pip configuration: pip cannot get anything
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_INDEX_URL="http://127.0.0.1:9/")
    done = _doctor(env, installed, "--install")
    assert done.returncode == 1
    text = done.stdout
    target = deps.deps_folder(installed)
    assert "install onnxruntime: FAILED" in text
    assert f"onnxruntime-{deps.ONNXRUNTIME_VERSION}-{deps.python_tag()}-{deps.python_tag()}-manylinux_" in text
    assert str(target) in text and str(deps.wheel_folder(installed)) in text
    assert "doctor --install --wheel FILE" in text
    assert not (target / "onnxruntime").exists()


# --- the QGIS side: one start-up message, the dialog -------------------------------------------------------


def test_startup_check_pushes_one_message_bar_item_with_install(qgis_iface, monkeypatch):
    from qgis.core import QgsSettings
    from qgis.gui import QgsMessageBar
    from qgis.PyQt.QtWidgets import QPushButton

    from nightlight_fusion_plugin.gui import installer

    class Iface:
        def __init__(self):
            self.bar = QgsMessageBar()

        def messageBar(self):  # noqa: N802
            return self.bar

    QgsSettings().remove(installer.DISMISSED_KEY)
    opened = []
    monkeypatch.setattr(deps, "importable", lambda module: module != "onnxruntime")
    iface = Iface()
    installer.startup_check(iface, lambda: opened.append(True))
    items = iface.bar.items()
    assert len(items) == 1 and "onnxruntime" in items[0].text()
    buttons = {b.text(): b for b in items[0].findChildren(QPushButton)}
    buttons["Install…"].click()
    assert opened == [True] and not iface.bar.items()

    monkeypatch.setattr(deps, "importable", lambda module: True)
    installer.startup_check(iface, lambda: None)
    assert not iface.bar.items()


def test_installer_dialog_lists_each_dependency_and_the_folder(qgis_iface, monkeypatch):
    from nightlight_fusion_plugin.gui.installer import InstallerDialog

    real_check = deps.check
    monkeypatch.setattr(
        deps, "check", lambda d: deps.Status(d.name, None) if d is deps.ONNXRUNTIME else real_check(d)
    )
    dialog = InstallerDialog()
    text = dialog.status_label.text()
    assert "onnxruntime" in text and "missing" in text and str(deps.deps_folder()) in text
    assert dialog.install_button.isEnabled() and dialog.file_button.isEnabled()
    dialog.close()


@pytest.mark.slow
def test_installer_installs_downloaded_wheels_offline(plugin_zip, tmp_path):
    """The offline path the message describes: wheels fetched elsewhere, then `doctor --install --wheel FILE`."""
    if _system_python_has("onnxruntime"):
        pytest.skip(f"{SYSTEM_PYTHON} already has onnxruntime: the installer has nothing to do")
    env, installed = _profile(plugin_zip, tmp_path / "home")
    wheels = tmp_path / "downloads"
    wanted = [r.pip_spec for r in deps.missing_requirements(deps.ONNXRUNTIME, _system_python_has)]  # as the system Python sees it
    fetched = subprocess.run(
        [SYSTEM_PYTHON, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(wheels), *wanted],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if fetched.returncode != 0:
        pytest.skip(f"cannot download the wheels here: {fetched.stdout[-500:]}{fetched.stderr[-500:]}")
    onnxruntime_wheel = next(wheels.glob("onnxruntime-*.whl"))
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_INDEX_URL="http://127.0.0.1:9/")
    done = _doctor(env, installed, "--wheel", str(onnxruntime_wheel))  # its folder is searched for the others
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    target = deps.deps_folder(installed)
    assert (target / "onnxruntime").is_dir() and not list(target.glob("numpy*"))
    assert f"onnxruntime  {deps.ONNXRUNTIME_VERSION}" in _doctor(env, installed).stdout
