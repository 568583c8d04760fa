"""Polygon masks: only output pixels whose centre lies inside the polygons are written; the rest is nodata.

A mask is a GeoJSON file (FeatureCollection, Feature or bare geometry; EPSG:4326 unless it carries the old
``"crs"`` member naming another CRS) or a GeoJSON text. The polygons are reprojected to the output grid's
CRS and rasterised window by window (rasterio.features), so memory does not grow with the area.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from rasterio.crs import CRS
from rasterio.features import bounds as geometry_bounds
from rasterio.features import geometry_mask
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from ..errors import InputError
from .grids import Bounds, Grid

POLYGONAL = ("Polygon", "MultiPolygon")
MASK_CHUNK = 512  # pixels per side of the chunks a mask is rasterised on (GridMask)


@dataclass(frozen=True)
class PolygonMask:
    geometries: tuple[dict, ...]
    crs: CRS

    @property
    def bounds(self) -> Bounds:
        boxes = [geometry_bounds(g) for g in self.geometries]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))

    def on(self, grid: Grid) -> GridMask:
        geometries = (
            list(self.geometries)
            if self.crs == grid.crs
            else [transform_geom(self.crs, grid.crs, g, antimeridian_cutting=True) for g in self.geometries]
        )
        return GridMask(grid, geometries)


class GridMask:
    """The mask on one output grid; `apply` blanks (NaN or nodata) what lies outside the polygons.

    Rasterised on fixed MASK_CHUNK² chunks of the grid, then cut to the window asked for: whether a pixel whose
    centre lies on a polygon's edge is in is decided in floating point from the rasterised window's origin, so a
    pixel must be decided in one window only, whichever window (a block of fuse(), a distributed block) asks."""

    def __init__(self, grid: Grid, geometries: list[dict]):
        self.grid, self.geometries = grid, geometries
        self._chunks: dict[tuple[int, int], np.ndarray] = {}

    def inside(self, window: Window) -> np.ndarray:
        r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        out = np.zeros((h, w), bool)
        for row in range(r0 - r0 % MASK_CHUNK, r0 + h, MASK_CHUNK):
            for col in range(c0 - c0 % MASK_CHUNK, c0 + w, MASK_CHUNK):
                chunk = self._chunk(row, col)
                a0, a1 = max(row, r0), min(row + chunk.shape[0], r0 + h)
                b0, b1 = max(col, c0), min(col + chunk.shape[1], c0 + w)
                out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = chunk[a0 - row : a1 - row, b0 - col : b1 - col]
        return out

    def _chunk(self, row: int, col: int) -> np.ndarray:
        if (row, col) not in self._chunks:
            if len(self._chunks) >= 64:  # bounded: a window needs a few chunks, a band of them is met in turn
                self._chunks.pop(next(iter(self._chunks)))
            height, width = min(MASK_CHUNK, self.grid.height - row), min(MASK_CHUNK, self.grid.width - col)
            self._chunks[row, col] = geometry_mask(
                self.geometries,
                out_shape=(height, width),
                transform=window_transform(Window(col, row, width, height), self.grid.transform),
                invert=True,
            )
        return self._chunks[row, col]

    def apply(self, values: np.ndarray, window: Window, nodata: float = np.nan) -> np.ndarray:
        """values: [H, W] or [C, H, W] for the window."""
        outside = ~self.inside(window)
        values = np.array(values, dtype=np.float32, copy=True)
        values[..., outside] = nodata
        return values


def _geometries(payload: dict) -> list[dict]:
    kind = payload.get("type")
    if kind == "FeatureCollection":
        return [g for f in payload.get("features", []) for g in _geometries(f)]
    if kind == "Feature":
        return _geometries(payload["geometry"]) if payload.get("geometry") else []
    if kind == "GeometryCollection":
        return [g for part in payload.get("geometries", []) for g in _geometries(part)]
    if kind in POLYGONAL:
        return [payload]
    raise InputError(f"The mask contains a {kind} geometry; only polygons can mask the output (use a polygon layer).")


def load_mask(source: str | os.PathLike) -> PolygonMask:
    """A mask from a GeoJSON file path or GeoJSON text."""
    text = os.fspath(source)
    try:
        if text.lstrip().startswith("{"):
            payload = json.loads(text)
        else:
            if not os.path.isfile(text):
                raise InputError(f"Mask file not found: {text}. Give a GeoJSON file of polygons.")
            with open(text, encoding="utf-8") as fh:
                payload = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"The mask {text[:200]} is not valid GeoJSON ({exc}); give a GeoJSON file of polygons.") from exc
    crs_name = ((payload.get("crs") or {}).get("properties") or {}).get("name") if isinstance(payload, dict) else None
    try:
        crs = CRS.from_user_input(crs_name) if crs_name else CRS.from_epsg(4326)
    except Exception as exc:  # rasterio's CRSError
        raise InputError(f"The mask's CRS '{crs_name}' is not understood ({exc}).") from exc
    geometries = _geometries(payload)
    if not geometries:
        raise InputError("The mask has no polygons; choose a polygon layer with at least one feature.")
    return PolygonMask(tuple(geometries), crs)
