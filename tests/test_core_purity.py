"""core must run where QGIS is absent (the CLI, the training package): it never imports qgis or PyQt."""

import subprocess
import sys

from conftest import REPO


def test_core_imports_without_qgis_or_pyqt():
    code = (
        "import sys, pkgutil, importlib\n"
        "for name in ('qgis', 'PyQt5', 'PyQt6'): sys.modules[name] = None\n"
        "import nightlight_fusion_plugin.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'nightlight_fusion_plugin.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import nightlight_fusion_plugin.cli\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
