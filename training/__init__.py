"""Nightlight Fusion training package (PyTorch): sensor simulator, datasets, model families, trainer, export.

Importable without QGIS; shares normalisation transforms and metrics with the plugin's `core`.
"""
