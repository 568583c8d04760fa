"""Nightlight Fusion: a QGIS plugin fusing DMSP-OLS and VIIRS DNB night lights.

Importing this package must stay cheap and must not need QGIS: the headless CLI
(`python -m nightlight_fusion_plugin`) and the training package import `core` from here.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import NightlightFusionPlugin

    return NightlightFusionPlugin(iface)
