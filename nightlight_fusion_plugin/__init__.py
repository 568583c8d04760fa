"""Nightlight Fusion: a QGIS plugin fusing DMSP-OLS and VIIRS DNB night lights.

Importing this package must stay cheap and must not need QGIS: the headless CLI
(`python -m nightlight_fusion_plugin`) and the training package import `core` from here.
"""

from .core.install.dependencies import activate as _activate_deps

# Packages the plugin's installer put into its own folder (onnxruntime, …): on sys.path before anything
# imports them, so a QGIS started after an install finds them (appended: QGIS's numpy/GDAL/PyQt still win).
_activate_deps()


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import NightlightFusionPlugin

    return NightlightFusionPlugin(iface)
