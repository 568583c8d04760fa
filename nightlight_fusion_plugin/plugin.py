"""QGIS entry point: registers the Processing provider and adds the dialog to the Raster menu and toolbar."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .processing.provider import NightlightFusionProvider

MENU = "&Nightlight Fusion"


class NightlightFusionPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider: NightlightFusionProvider | None = None
        self.action: QAction | None = None
        self.installer_action: QAction | None = None
        self.dialog = None
        self.installer = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS calls it; qgis_process too)
        self.provider = NightlightFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)
        if self.iface is None:  # qgis_process: leave no .aux.xml next to the inputs (see processing/common.py)
            from .processing.common import keep_inputs_in_qgis_process

            keep_inputs_in_qgis_process(QgsApplication.arguments())

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        icon = QIcon(str(Path(__file__).resolve().parent / "icon.svg"))
        self.action = QAction(icon, "Nightlight Fusion…", self.iface.mainWindow())
        self.action.setToolTip("Fuse DMSP-OLS and VIIRS night lights")
        self.action.triggered.connect(self.show_dialog)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addRasterToolBarIcon(self.action)
        self.installer_action = QAction("Install dependencies…", self.iface.mainWindow())
        self.installer_action.setToolTip("Install onnxruntime (and rasterio) into the plugin's own folder")
        self.installer_action.triggered.connect(self.show_installer)
        self.iface.addPluginToMenu(MENU, self.installer_action)
        # once per start, as a message bar (never a modal nag); qgis_process has no iface and never gets here
        from .gui.installer import startup_check

        startup_check(self.iface, self.show_installer)

    def unload(self) -> None:
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeRasterToolBarIcon(self.action)
            self.action = None
        if self.installer_action is not None:
            remove = getattr(self.iface, "removePluginMenu", None)  # QGIS has it; pytest-qgis's stand-in does not
            if remove is not None:
                remove(MENU, self.installer_action)
            self.installer_action = None
        if self.installer is not None:
            self.installer.close()
            self.installer = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None

    def show_dialog(self) -> None:
        from .gui.dialog import FuseDialog

        if self.dialog is None:
            self.dialog = FuseDialog(self.iface, self.iface.mainWindow())
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    def show_installer(self) -> None:
        from .gui.installer import InstallerDialog

        if self.installer is None:
            self.installer = InstallerDialog(self.iface.mainWindow())
            self.installer.installed.connect(self._installed)
        self.installer.refresh()
        self.installer.show()
        self.installer.raise_()
        self.installer.activateWindow()

    def _installed(self, ready: bool) -> None:
        from qgis.core import Qgis

        text = "dependencies installed and ready." if ready else "dependencies installed: restart QGIS to use them."
        self.iface.messageBar().pushMessage("Nightlight Fusion", text, Qgis.Success if ready else Qgis.Info, 10)
