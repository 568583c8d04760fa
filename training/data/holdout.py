"""Regions never trained on: the real-temporal evaluation set (`python -m training.simulate real-temporal`) is cut
from them, and every training dataset that reads real rasters must skip them (`overlaps_holdout`).

Bounds are lon/lat (west, south, east, north), EPSG:4326.
"""

from __future__ import annotations

REAL_TEMPORAL_HOLDOUT: dict[str, tuple[float, float, float, float]] = {
    # Black Marble tile 20–30N/30–40E, whole: the Nile valley and delta edge, Jeddah, Mecca (bright cores),
    # the Eastern Desert (large dark areas) and the Red Sea (fill).
    "sudan_tile_20N30N_30E40E": (30.0, 20.0, 40.0, 30.0),
    # The Libyan oil fields in the north-west corner of tile 20–30N/20–30E: gas flares up to 3000 nW/cm²/sr.
    "libya_flares": (20.0, 26.8, 23.2, 30.0),
    # The whole Mumbai cube (2012–2023): a megacity with real change over gaps of 1–9 years.
    "mumbai": (72.7, 18.8, 73.0, 19.3),
}


def overlaps_holdout(bounds: tuple[float, float, float, float]) -> str | None:
    """The name of the first hold-out region that `bounds` (west, south, east, north) touches, else None."""
    west, south, east, north = bounds
    for name, (w, s, e, n) in REAL_TEMPORAL_HOLDOUT.items():
        if west < e and east > w and south < n and north > s:
            return name
    return None
