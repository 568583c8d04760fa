"""Beside the layers: the check for optional runtime packages (onnxruntime, rasterio) and the installer that
pip-installs them into the plugin's own folder for QGIS's Python. Needs only the standard library, so it
works where rasterio is missing.
"""
