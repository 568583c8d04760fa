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
        self.dialog = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS calls it; qgis_process too)
        self.provider = NightlightFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        icon = QIcon(str(Path(__file__).resolve().parent / "icon.svg"))
        self.action = QAction(icon, "Nightlight Fusion…", self.iface.mainWindow())
        self.action.setToolTip("Fuse DMSP-OLS and VIIRS night lights")
        self.action.triggered.connect(self.show_dialog)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addRasterToolBarIcon(self.action)

    def unload(self) -> None:
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeRasterToolBarIcon(self.action)
            self.action = None
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
