"""The plugin's entry point and the dialog, driven headless in the real QGIS."""

import pytest
import rasterio
from qgis.core import QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer
from qgis_helpers import register_provider, wait_until


class RasterMenuIface:
    """pytest-qgis's iface lacks the Raster-menu methods QGIS has; record them, delegate the rest."""

    def __init__(self, inner):
        self._inner, self.menu, self.toolbar = inner, [], []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def addPluginToRasterMenu(self, menu, action):  # noqa: N802
        self.menu.append(action)

    def removePluginRasterMenu(self, menu, action):  # noqa: N802
        self.menu.remove(action)

    def addRasterToolBarIcon(self, action):  # noqa: N802
        self.toolbar.append(action)

    def removeRasterToolBarIcon(self, action):  # noqa: N802
        self.toolbar.remove(action)


def test_class_factory_registers_provider_and_menu_and_unloads(qgis_iface, qgis_processing):
    from qgis.core import QgsApplication

    import nightlight_fusion_plugin

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("nightlightfusion")
    if existing is not None:
        registry.removeProvider(existing)
    iface = RasterMenuIface(qgis_iface)
    plugin = nightlight_fusion_plugin.classFactory(iface)
    plugin.initGui()
    assert registry.providerById("nightlightfusion") is not None
    assert len(iface.menu) == 1 and len(iface.toolbar) == 1
    plugin.unload()
    assert registry.providerById("nightlightfusion") is None and not iface.menu


@pytest.fixture
def dialog(qgis_iface, qgis_processing, sample, qgis_new_project):
    register_provider()
    from nightlight_fusion_plugin.gui.dialog import FuseDialog

    dmsp = QgsRasterLayer(str(sample["dmsp"]), "dmsp_F15_2005_sample")
    viirs = QgsRasterLayer(str(sample["reference"]), "viirs_2015_reference_sample")
    QgsProject.instance().addMapLayers([dmsp, viirs])
    dlg = FuseDialog(qgis_iface)
    dlg.dmsp_combo.setLayer(dmsp)
    dlg.viirs_combo.setLayer(viirs)
    yield dlg
    dlg.close()
    QgsProject.instance().removeAllMapLayers()


def test_dialog_runs_the_task_and_adds_a_styled_layer(dialog, tmp_path):
    out = tmp_path / "fused.tif"
    dialog.output_widget.setFilePath(str(out))
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dialog.run_button.click()
    assert not dialog.run_button.isEnabled() and dialog.cancel_button.isEnabled()
    assert wait_until(lambda: finished), "task did not finish"
    assert finished[0] == (True, str(out)), finished
    layer = dialog.result_layer
    assert layer.isValid() and layer in QgsProject.instance().mapLayers().values()
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    items = layer.renderer().shader().rasterShaderFunction().colorRampItemList()
    gaps = [b.value - a.value for a, b in zip(items, items[1:])]
    assert gaps[-1] > 10 * gaps[0]  # log-spaced stops: a log stretch
    with rasterio.open(out) as src:
        assert src.tags()["NLF_VIIRS"].endswith("viirs_2015_reference_sample.tif")
    assert dialog.run_button.isEnabled()


def test_dialog_cancel_leaves_no_output(dialog, tmp_path):
    out = tmp_path / "fused.tif"
    dialog.output_widget.setFilePath(str(out))
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dialog.run_button.click()
    dialog.cancel_button.click()
    assert wait_until(lambda: finished)
    assert finished[0][0] is False and "Cancelled" in finished[0][1]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_dialog_reports_bad_input(dialog, tmp_path, sample):
    dialog.dmsp_combo.setLayer(dialog.viirs_combo.currentLayer())  # VIIRS chosen as DMSP
    dialog.output_widget.setFilePath(str(tmp_path / "fused.tif"))
    finished = []
    dialog.finished_run.connect(lambda ok, text: finished.append((ok, text)))
    dialog.run_button.click()
    assert wait_until(lambda: finished)
    assert finished[0][0] is False and "0–63 DN" in finished[0][1]
    assert "0–63 DN" in dialog.status.text()


def test_dialog_without_layers_says_what_to_load(qgis_iface, qgis_new_project):
    from nightlight_fusion_plugin.gui.dialog import FuseDialog

    QgsProject.instance().removeAllMapLayers()
    dlg = FuseDialog(qgis_iface)
    assert not dlg.run_button.isEnabled()
    assert "Load a DMSP" in dlg.status.text()
