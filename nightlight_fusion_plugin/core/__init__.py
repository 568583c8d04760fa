"""Pure-Python core of Nightlight Fusion (numpy, rasterio, onnxruntime; never qgis or PyQt).

The subpackages follow the data's way, top to bottom; imports only go down (checked by import-linter,
`.importlinter` at the repository root):

    pipeline/  fuse, series, DMSP-like simulation, distributed blocks: orchestrate a run from files to a file
    methods/   the fusion methods: traditional (baseline), reference-change, generative (zoo models)
    engine/    onnxruntime sessions, the zoo and its manifest, tiling, model transforms, schedulers, samplers
    sensor/    the DMSP sensor model, intercalibration, DN->radiance curves, the scene-wide change prior
    raster/    open, inspect, align, warp, read windows, masks, write GeoTIFFs

Beside them: report/ (metrics, compare, run reports, the sample) and install/ (dependency check and
installer); errors.py is shared by all. The CLI, the Processing algorithms and the dialog are doors into
:func:`fuse`, re-exported here (lazily, so that importing `core.install` needs no rasterio).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FuseRequest", "FuseResult", "fuse"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from .pipeline import fuse as _fuse

        return getattr(_fuse, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
