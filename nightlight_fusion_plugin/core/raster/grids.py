"""Grids and alignment: inspect inputs, choose the output grid, read inputs aligned to it window by window.

The output grid is the VIIRS reference's own grid (cropped to the common area) when one is given, else
a 15″ EPSG:4326 grid snapped to the global VIIRS lattice. DMSP is warped onto it with GDAL (WarpedVRT),
one window at a time, so memory does not grow with the area.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine, array_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..errors import InputError

VIIRS_PIXEL_DEG = 1.0 / 240.0  # 15 arc-seconds
DMSP_PIXEL_DEG = 1.0 / 120.0  # 30 arc-seconds
WGS84 = CRS.from_epsg(4326)
# Pixel corners of NOAA's global products sit half a pixel off the whole-degree lines (VIIRS tiles start
# at 180.00208333°W, DMSP stable lights at 180.00416667°W): anchor the lattices there so output pixels
# coincide with product pixels.
VIIRS_LATTICE_ORIGIN = (-180.0 - VIIRS_PIXEL_DEG / 2, 90.0 + VIIRS_PIXEL_DEG / 2)
DMSP_LATTICE_ORIGIN = (-180.0 - DMSP_PIXEL_DEG / 2, 90.0 + DMSP_PIXEL_DEG / 2)

Bounds = tuple[float, float, float, float]  # left, bottom, right, top


@dataclass(frozen=True)
class RasterInfo:
    """What the pipeline needs to know about one single-band input raster."""

    path: str
    role: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    nodata: float | None
    dtype: str

    @property
    def bounds(self) -> Bounds:
        return tuple(array_bounds(self.height, self.width, self.transform))[:4]

    def bounds_in(self, crs: CRS) -> Bounds:
        return self.bounds if crs == self.crs else tuple(transform_bounds(self.crs, crs, *self.bounds, densify_pts=21))


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: where every output pixel is."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> Bounds:
        return tuple(array_bounds(self.height, self.width, self.transform))[:4]

    @property
    def pixel_size(self) -> tuple[float, float]:
        return abs(self.transform.a), abs(self.transform.e)

    def blocks(self, size: int) -> Iterator[Window]:
        """Windows of at most size×size pixels covering the grid, row-major."""
        for row in range(0, self.height, size):
            for col in range(0, self.width, size):
                yield Window(col, row, min(size, self.width - col), min(size, self.height - row))

    def block_count(self, size: int) -> int:
        return math.ceil(self.height / size) * math.ceil(self.width / size)


def inspect_raster(path: str | os.PathLike, role: str) -> RasterInfo:
    """Open a raster just long enough to check it is a usable single-band, georeferenced input."""
    path = os.fspath(path)
    if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi"):
        raise InputError(f"{role} raster not found: {path}. Check the path (and the layer's source).")
    try:
        with rasterio.open(path) as src:
            count, crs, transform = src.count, src.crs, src.transform
            info = RasterInfo(path, role, crs, transform, src.width, src.height, src.nodata, src.dtypes[0])
    except RasterioIOError as exc:
        raise InputError(
            f"{role} raster {path} cannot be read by GDAL ({exc}). Use a GeoTIFF or another raster format GDAL reads."
        ) from exc
    if count != 1:
        raise InputError(
            f"{role} raster {path} has {count} bands; Nightlight Fusion needs a single-band raster. "
            f"Extract the band first (QGIS: Processing › 'Rearrange bands', or gdal_translate -b 1 IN OUT)."
        )
    if crs is None or transform == Affine.identity():
        raise InputError(
            f"{role} raster {path} is not georeferenced (no CRS or geotransform). Assign one first "
            f"(NOAA night-light products are EPSG:4326: gdal_edit.py -a_srs EPSG:4326, or QGIS 'Assign projection')."
        )
    if transform.b != 0 or transform.d != 0:
        raise InputError(f"{role} raster {path} has a rotated geotransform; warp it to a north-up grid first (gdalwarp).")
    return info


def lattice(pixel_deg: float, origin: tuple[float, float]) -> Affine:
    """Geotransform of a global EPSG:4326 lattice with square pixels."""
    return Affine(pixel_deg, 0, origin[0], 0, -pixel_deg, origin[1])


def _intersect(a: Bounds, b: Bounds) -> Bounds | None:
    left, bottom = max(a[0], b[0]), max(a[1], b[1])
    right, top = min(a[2], b[2]), min(a[3], b[3])
    return (left, bottom, right, top) if right > left and top > bottom else None


def _fmt(bounds: Bounds) -> str:
    return "({:.4f}, {:.4f}, {:.4f}, {:.4f})".format(*bounds)


def _snap(area: Bounds, base: Affine, limit: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """Pixel range [col0, col1) × [row0, row1) of `base` covering `area`, optionally clipped to limit=(w, h)."""
    eps = 1e-6
    col0 = math.floor((area[0] - base.c) / base.a + eps)
    col1 = math.ceil((area[2] - base.c) / base.a - eps)
    row0 = math.floor((area[3] - base.f) / base.e + eps)
    row1 = math.ceil((area[1] - base.f) / base.e - eps)
    if limit is not None:
        col0, row0 = max(col0, 0), max(row0, 0)
        col1, row1 = min(col1, limit[0]), min(row1, limit[1])
    return col0, col1, row0, row1


def output_grid(
    dmsp: RasterInfo,
    viirs: RasterInfo | None = None,
    extent: Bounds | None = None,
    extent_crs: CRS | str | None = None,
) -> Grid:
    """The grid the fused raster is written on: VIIRS's grid, or 15″ EPSG:4326, cropped to the common area."""
    if viirs is not None:
        crs, base, limit = viirs.crs, viirs.transform, (viirs.width, viirs.height)
        area = _intersect(viirs.bounds, dmsp.bounds_in(crs))
        if area is None:
            raise InputError(
                f"The DMSP raster {dmsp.path} and the VIIRS raster {viirs.path} do not overlap "
                f"(DMSP covers {_fmt(dmsp.bounds_in(WGS84))}, VIIRS covers {_fmt(viirs.bounds_in(WGS84))} in lon/lat). "
                f"Choose a VIIRS reference of the same area, or run without one."
            )
    else:
        crs, limit = WGS84, None
        base = lattice(VIIRS_PIXEL_DEG, VIIRS_LATTICE_ORIGIN)
        area = dmsp.bounds_in(crs)
    if extent is not None:
        ext_crs = CRS.from_user_input(extent_crs) if extent_crs is not None else crs
        left, bottom, right, top = extent
        if not (right > left and top > bottom):
            raise InputError(f"The extent {_fmt(extent)} is empty: give xmin,ymin,xmax,ymax with xmin<xmax and ymin<ymax.")
        ext = extent if ext_crs == crs else tuple(transform_bounds(ext_crs, crs, *extent, densify_pts=21))
        clipped = _intersect(area, ext)
        if clipped is None:
            raise InputError(
                f"The extent {_fmt(extent)} ({ext_crs.to_string()}) lies outside the inputs' common area "
                f"{_fmt(area)} ({crs.to_string()}). Choose an extent inside the input layers."
            )
        area = clipped
    col0, col1, row0, row1 = _snap(area, base, limit)
    if col1 <= col0 or row1 <= row0:
        raise InputError(f"The area {_fmt(area)} is smaller than one output pixel; choose a larger extent.")
    return Grid(crs, base * Affine.translation(col0, row0), col1 - col0, row1 - row0)


class AlignedReader:
    """Reads one input raster resampled onto a Grid, window by window, as float32 with NaN for nodata.
    Reads may come from several threads (methods/generative.py prepares the next band of tiles in a background
    thread while the main thread reads the nodata mask of the rows it writes); a GDAL dataset is not safe to read
    from two threads at once, so each reader serialises its reads with a lock. GDAL releases the GIL while it
    reads and warps, so a read still overlaps the network (onnxruntime) on the other thread."""

    def __init__(self, info: RasterInfo, grid: Grid, resampling: Resampling = Resampling.bilinear):
        self.info, self.grid, self.resampling = info, grid, resampling
        self._src = self._vrt = None
        self._lock = threading.Lock()

    def __enter__(self) -> AlignedReader:
        self._src = rasterio.open(self.info.path)
        src_nodata = self._src.nodata
        if src_nodata is None and np.dtype(self.info.dtype).kind == "f":
            src_nodata = np.nan  # float rasters without a declared nodata: NaN is the only sane marker
        self._vrt = WarpedVRT(
            self._src,
            crs=self.grid.crs,
            transform=self.grid.transform,
            width=self.grid.width,
            height=self.grid.height,
            resampling=self.resampling,
            src_nodata=src_nodata,
            nodata=np.nan,
            dtype="float32",
        )
        return self

    def __exit__(self, *exc) -> None:
        self._vrt.close()
        self._src.close()

    def read(self, window: Window) -> np.ndarray:
        # Not masked=True: the VRT's nodata is NaN, so the warp already writes NaN wherever the mask would say
        # nodata (source nodata, the source's own mask, outside its footprint), and reading the mask band warps
        # the window a second time through GDAL's nodata mask (15x the plain read on a 2048² band).
        with self._lock:  # one thread at a time per dataset (see the class docstring)
            out = self._vrt.read(1, window=window)
        out[~np.isfinite(out)] = np.nan
        return out


def footprint(info: RasterInfo, grid: Grid) -> tuple[range, range]:
    """Rows and columns of `grid` whose pixel centres fall inside the raster's bounds (the pixels a warp fills),
    clipped to the grid. A bounding box: for a raster in another CRS it is the box of its reprojected bounds."""
    west, south, east, north = info.bounds_in(grid.crs)
    col_a, row_a = ~grid.transform * (west, north)
    col_b, row_b = ~grid.transform * (east, south)
    rows, cols = sorted((row_a, row_b)), sorted((col_a, col_b))

    def centres(lo: float, hi: float, size: int) -> range:
        return range(min(max(math.ceil(lo - 0.5), 0), size), min(max(math.ceil(hi - 0.5), 0), size))

    return centres(*rows, grid.height), centres(*cols, grid.width)


def mirror_indices(index: np.ndarray, inside: range) -> np.ndarray:
    """Indices outside `inside` reflected into it (numpy's 'symmetric' padding, repeated for any distance)."""
    n = len(inside)
    if n == 0:
        return index
    folded = np.mod(index - inside.start, 2 * n)
    return inside.start + np.where(folded < n, folded, 2 * n - 1 - folded)


class MirroredReader:
    """Reads like `reader` inside the raster's footprint on the grid; rows and columns beyond the raster's edges
    mirror the ones inside. Why: a tile model sees its whole tile, and beyond a raster's edge there is no data.
    Read as "no light, no reference" (NaN), the edge of a lit raster looks like a wall of darkness that the models
    never saw in training, and they darken everything near it; a small clip (a city cut out of a mosaic) is mostly
    edge. Mirroring is the usual padding for convolutional models. Holes inside the raster stay NaN."""

    def __init__(self, reader: AlignedReader):
        self.reader, self.info = reader, reader.info
        self.rows, self.cols = footprint(reader.info, reader.grid)

    def read(self, window: Window) -> np.ndarray:
        row0, col0 = int(window.row_off), int(window.col_off)
        rows = mirror_indices(np.arange(row0, row0 + int(window.height)), self.rows)
        cols = mirror_indices(np.arange(col0, col0 + int(window.width)), self.cols)
        if rows[0] == row0 and cols[0] == col0 and np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1):
            return self.reader.read(window)
        r0, c0 = int(rows.min()), int(cols.min())
        block = self.reader.read(Window(c0, r0, int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1))
        return block[np.ix_(rows - r0, cols - c0)]


@dataclass(frozen=True)
class ValueRange:
    minimum: float
    maximum: float
    valid_pixels: int


def value_range(info: RasterInfo, area: Bounds | None = None, strip_rows: int = 512) -> ValueRange:
    """Min/max of the valid values of a raster inside `area` (in the raster's CRS), read in strips."""
    with rasterio.open(info.path) as src:
        col0, col1, row0, row1 = 0, src.width, 0, src.height
        if area is not None:
            col0, col1, row0, row1 = _snap(area, src.transform, (src.width, src.height))
        lo, hi, count = math.inf, -math.inf, 0
        for row in range(row0, row1, strip_rows):
            window = Window(col0, row, max(col1 - col0, 0), min(strip_rows, row1 - row))
            values = src.read(1, window=window, masked=True).astype("float64")
            values = values.compressed()
            values = values[np.isfinite(values)]
            if values.size:
                lo, hi, count = min(lo, values.min()), max(hi, values.max()), count + values.size
    return ValueRange(float(lo), float(hi), count)


class MeanReader:
    """Several aligned readers (e.g. 12 monthly VIIRS composites) read as their per-pixel mean of valid values."""

    def __init__(self, readers: list[AlignedReader]):
        self.readers = readers
        self.info = readers[0].info

    def read(self, window: Window) -> np.ndarray:
        stack = np.stack([reader.read(window) for reader in self.readers])
        valid = np.isfinite(stack)
        total = np.where(valid, stack, 0.0).sum(axis=0)
        count = valid.sum(axis=0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def upsample2_bilinear(coarse: np.ndarray) -> np.ndarray:
    """2× bilinear upsampling between nested lattices (30″ -> 15″), as GDAL's bilinear warp computes it
    inside the raster: fine pixel 2k sits at coarse coordinate k-0.25, 2k+1 at k+0.25 (edges replicated).
    Training uses it for in-memory pairs so models see DMSP aligned exactly as the engine's warp gives it."""
    padded = np.pad(np.asarray(coarse, dtype=np.float32), 1, mode="edge")

    def along(a: np.ndarray, axis: int) -> np.ndarray:
        a = np.moveaxis(a, axis, 0)
        centre, before, after = a[1:-1], a[:-2], a[2:]
        out = np.empty((2 * centre.shape[0],) + centre.shape[1:], dtype=np.float32)
        out[0::2] = 0.75 * centre + 0.25 * before
        out[1::2] = 0.75 * centre + 0.25 * after
        return np.moveaxis(out, 0, axis)

    return along(along(padded, 0), 1)
