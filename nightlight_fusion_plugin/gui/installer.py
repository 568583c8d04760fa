"""The dependency installer's dialog: what is missing, Install / Install from file…, progress and pip's log.

The work is core.dependencies.install, run in a QgsTask so QGIS stays responsive while pip downloads."""

from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsSettings, QgsTask
from qgis.PyQt.QtCore import QObject, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..core.install import dependencies as deps

DISMISSED_KEY = "nightlight_fusion/dependencies_message_dismissed"

# pip prints no percentages with --progress-bar off: its phases stand in for progress
PHASES = (
    ("Collecting", 15.0),
    ("Processing", 30.0),
    ("Downloading", 30.0),
    ("Installing collected", 80.0),
    ("Successfully", 95.0),
)
MISSING = '<span style="color:#b00">missing</span>'



class _Relay(QObject):
    """Carries pip's lines from the task's worker thread to the dialog (queued across threads)."""

    line = pyqtSignal(str)


class InstallTask(QgsTask):
    """Installs one dependency (or a wheel file) with core.dependencies.install in the background."""

    def __init__(self, dependency: deps.Dependency, wheels: list[str] | None = None):
        super().__init__(f"Nightlight Fusion: installing {dependency.name}", QgsTask.CanCancel)
        self.dependency, self.wheels = dependency, [Path(w) for w in wheels or []]
        self.relay = _Relay()
        self.result: deps.InstallResult | None = None

    def _log(self, line: str) -> None:
        for prefix, progress in PHASES:
            if line.startswith(prefix) and progress > self.progress():
                self.setProgress(progress)
        self.relay.line.emit(line)

    def run(self) -> bool:
        try:
            self.result = deps.install(self.dependency, wheels=self.wheels, log=self._log, is_cancelled=self.isCanceled)
        except Exception as exc:  # shown in the dialog rather than lost in the task manager
            self.result = deps.InstallResult(False, f"The installer failed: {type(exc).__name__}: {exc}")
        return self.result.ok


class InstallerDialog(QDialog):
    """Non-modal; Close does not stop a running install (the task belongs to QGIS's task manager)."""

    installed = pyqtSignal(bool)  # True when the packages are importable now (no restart needed)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Nightlight Fusion: dependencies")
        self.resize(720, 460)
        self.task: InstallTask | None = None
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)  # the folder can be copied
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlaceholderText("pip's log appears here")
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.install_button = QPushButton("Install")
        self.file_button = QPushButton("Install from file…")
        buttons.addButton(self.install_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.file_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.close)
        self.install_button.clicked.connect(lambda: self.start())
        self.file_button.clicked.connect(self.install_from_file)
        layout = QVBoxLayout(self)
        for widget in (self.status_label, self.progress, self.log, buttons):
            layout.addWidget(widget)
        self.refresh()

    def refresh(self) -> None:
        statuses = [deps.check(d) for d in deps.DEPENDENCIES]
        rows = [f"<b>{s.name}</b>: {s.version or MISSING}" for s in statuses]
        rows.append(f"Installs into: <code>{deps.deps_folder()}</code> (QGIS's numpy, GDAL and PyQt are left as they are)")
        rows.append(f"onnxruntime release installed: {deps.ONNXRUNTIME_VERSION}")
        self.status_label.setText("<br>".join(rows))
        self.install_button.setEnabled(self.task is None and any(not s.available for s in statuses))

    def missing(self) -> list[deps.Dependency]:
        return [d for d in deps.DEPENDENCIES if not deps.check(d).available]

    def install_from_file(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Wheel files to install", "", "Python wheels (*.whl)")
        if files:
            rasterio_file = any(Path(f).name.lower().startswith("rasterio-") for f in files)
            self.start(deps.RASTERIO if rasterio_file else deps.ONNXRUNTIME, files)

    def start(self, dependency: deps.Dependency | None = None, wheels: list[str] | None = None) -> None:
        if self.task is not None:
            return
        missing = self.missing()
        dependency = dependency or (missing[0] if missing else None)
        if dependency is None:
            self.refresh()
            return
        self.task = InstallTask(dependency, wheels)
        self.task.relay.line.connect(self.log.appendPlainText)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.task.taskCompleted.connect(self._finished)
        self.task.taskTerminated.connect(self._finished)
        self.install_button.setEnabled(False)
        self.file_button.setEnabled(False)
        self.progress.setValue(2)
        self.log.appendPlainText(f"Installing {dependency.name} into {deps.deps_folder()} …")
        QgsApplication.taskManager().addTask(self.task)

    def _finished(self) -> None:
        task, self.task = self.task, None
        result = task.result if task is not None else None
        self.progress.setValue(100 if result is not None and result.ok else 0)
        self.file_button.setEnabled(True)
        if result is not None:
            self.log.appendPlainText("")
            self.log.appendPlainText(result.message)
        self.refresh()
        if result is not None and result.ok and self.missing():  # e.g. rasterio and onnxruntime: the next one
            self.start()
            return
        if result is not None:
            self.installed.emit(result.ok and not result.restart_needed)


def startup_check(iface, open_dialog) -> None:
    """At most one message bar at start-up when something is missing; cheap (no import of onnxruntime)."""
    if QgsSettings().value(DISMISSED_KEY, False, type=bool):
        return
    statuses = [
        deps.Status(d.name, "" if deps.importable(d.package.module) else None) for d in deps.DEPENDENCIES
    ]
    text = deps.startup_message(statuses)
    if text is None:
        return
    bar = iface.messageBar()
    item = bar.createMessage("Nightlight Fusion", text)
    install = QPushButton("Install…")
    install.clicked.connect(lambda: (bar.popWidget(item), open_dialog()))
    never = QPushButton("Don't show again")
    never.clicked.connect(lambda: (QgsSettings().setValue(DISMISSED_KEY, True), bar.popWidget(item)))
    item.layout().addWidget(install)
    item.layout().addWidget(never)
    bar.pushWidget(item, Qgis.Warning)
