"""Writing results: float32 GeoTIFF, tiled, deflate-compressed, NaN nodata, with overviews and tags.

A run writes into a hidden partial file next to the output and renames it into place only when the whole
raster, its overviews and tags are done: a failed or cancelled run leaves nothing behind, and an existing
file is never replaced unless the caller asked for that.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from ..errors import OutputError
from .grids import Grid

RADIANCE_UNITS = "nW/cm2/sr"
GTIFF_OPTIONS = dict(
    driver="GTiff",
    count=1,
    dtype="float32",
    nodata=np.nan,
    tiled=True,
    blockxsize=256,
    blockysize=256,
    compress="deflate",
    predictor=3,
    BIGTIFF="IF_SAFER",
)


def check_output_path(output: str | os.PathLike, inputs: list[str], overwrite: bool) -> Path:
    """Validate the destination before any work is done (and before anything is written)."""
    path = Path(output).expanduser()
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise OutputError(f"Output {path} must be a GeoTIFF: give a file name ending in .tif.")
    resolved = path.resolve()
    for source in inputs:
        if source and Path(source).exists() and Path(source).resolve() == resolved:
            raise OutputError(f"Output {path} is one of the inputs; choose another output file so the input is kept.")
    if path.is_dir():
        raise OutputError(f"Output {path} is a directory; give a file name ending in .tif.")
    if path.exists() and not overwrite:
        raise OutputError(f"Output {path} already exists; choose another name or allow overwriting (--overwrite).")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = partial_path(path)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"Cannot write to {path.parent} ({exc.strerror or exc}); choose an output folder you can write to."
        ) from exc
    return path


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}.tif")


def overview_factors(width: int, height: int, smallest: int = 32) -> list[int]:
    factors, f = [], 2
    while max(width, height) // f >= smallest:
        factors.append(f)
        f *= 2
    return factors or [2]


class RasterWriter:
    """Context manager writing a Grid-shaped radiance raster atomically."""

    def __init__(
        self,
        output: Path,
        grid: Grid,
        tags: dict[str, str],
        description: str,
        units: str = RADIANCE_UNITS,
        dtype: str = "float32",
        nodata: float = np.nan,
    ):
        self.output, self.grid, self.tags, self.description = Path(output), grid, tags, description
        self.units, self.dtype, self.nodata = units, dtype, nodata
        self.partial = partial_path(self.output)
        self._dst = None

    def __enter__(self) -> RasterWriter:
        self._dst = rasterio.open(
            self.partial,
            "w",
            crs=self.grid.crs,
            transform=self.grid.transform,
            width=self.grid.width,
            height=self.grid.height,
            **{
                **GTIFF_OPTIONS,
                "dtype": self.dtype,
                "nodata": self.nodata,
                "predictor": 3 if self.dtype.startswith("float") else 2,
            },
        )
        return self

    def write(self, array: np.ndarray, window) -> None:
        self._dst.write(np.asarray(array, dtype=self.dtype), 1, window=window)

    def finish(self) -> None:
        """Overviews, tags, then the rename that makes the output appear."""
        dst = self._dst
        dst.build_overviews(overview_factors(self.grid.width, self.grid.height), Resampling.average)
        dst.update_tags(ns="rio_overview", resampling="average")
        dst.update_tags(**self.tags)
        dst.set_band_description(1, self.description)
        dst.set_band_unit(1, self.units)
        dst.close()
        os.replace(self.partial, self.output)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._dst is not None and not self._dst.closed:
            self._dst.close()
        if self.partial.exists():
            self.partial.unlink()
