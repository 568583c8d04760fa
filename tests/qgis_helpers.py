"""Helpers for the tests that run inside the real QGIS (pytest-qgis)."""

from __future__ import annotations

import time

from qgis.core import QgsApplication


def wait_until(condition, timeout: float = 60.0) -> bool:
    """Spin the Qt event loop (tasks report back through it) until condition() or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QgsApplication.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return False


_KEEP_ALIVE = []  # PyQGIS providers must outlive their Python wrapper's last reference


def register_provider():
    from nightlight_fusion_plugin.processing.provider import NightlightFusionProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("nightlightfusion")
    if provider is None:
        provider = NightlightFusionProvider()
        registry.addProvider(provider)
        _KEEP_ALIVE.append(provider)
    return provider
