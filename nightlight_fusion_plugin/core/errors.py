"""Errors a user can act on: every message names the problem and the fix."""


class FusionError(Exception):
    """Base class of the errors the plugin reports to users as they are."""


class InputError(FusionError):
    """An input raster, extent or option that cannot be used."""


class OutputError(FusionError):
    """The output cannot be written where the user asked."""


class MissingDependencyError(FusionError):
    """An optional Python package is not installed."""


class CancelledError(FusionError):
    """The user cancelled the run; nothing was written."""


INSTALL_HINTS = {
    "rasterio": "on Debian/Ubuntu: apt install python3-rasterio; on Windows (OSGeo4W shell) or macOS: "
    "python -m pip install rasterio, or the plugin's installer (Plugins › Nightlight Fusion › Install dependencies…)",
}


def install_hint(module: str) -> str:
    """onnxruntime: the plugin's installer, since `pip install` into QGIS's Python is refused on Debian 12 (PEP 668)
    and may replace QGIS's numpy."""
    if module in INSTALL_HINTS:
        return INSTALL_HINTS[module]
    if module == "onnxruntime":
        from .install.dependencies import install_hint as installer_hint

        return installer_hint(module)
    return f"python -m pip install {module}"


def require(module: str, purpose: str):
    """Import an optional dependency or raise a MissingDependencyError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        restart = "" if module == "onnxruntime" else "; then restart QGIS"  # the installer activates it in place
        raise MissingDependencyError(
            f"Nightlight Fusion needs the Python package '{module}' for {purpose}, "
            f"but it is not installed ({exc}). Install it: {install_hint(module)}{restart}."
        ) from exc
