"""The real rasters training reads and the regions it must never train on, shared by the datasets
(training.data) and the evaluation-set builders (training.simulate), below both.

- DEFAULT_REAL: ../shared/data/real beside the checkout (NLF_SHARED_DATA points elsewhere).
- REAL_TEMPORAL_HOLDOUT / overlaps_holdout: regions never trained on. The real-temporal evaluation set
  (`python -m training.simulate real-temporal`) is cut from them, and every training dataset that reads real
  rasters must skip them. Bounds are lon/lat (west, south, east, north), EPSG:4326.
- GREECE_HOLDOUT / greece_mean: the semi-real Greece hold-out and the 12-month Greece mean it is cut from.
- sudan_tiles: the Sudan Black Marble tile pairs (2023 and 2024) that are not wholly held out.
"""

from __future__ import annotations

import glob
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from nightlight_fusion_plugin.core.raster.grids import AlignedReader, Grid, MeanReader, inspect_raster

# ../shared/data beside the checkout; NLF_SHARED_DATA points elsewhere (as in the tests; e.g. a copy of the tree
# on another machine).
DEFAULT_REAL = Path(os.environ.get("NLF_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data") / "real"
# Thessaloniki and its hinterland: never used for training, only for validation and the report.
GREECE_HOLDOUT = (22.3, 40.2, 24.3, 41.2)  # lon/lat: west, south, east, north
SUDAN_YEARS = (2023, 2024)
_NAME = re.compile(r"vnp46a3_(\d{4})_(\d{2})_(\d{2})N(\d{2})N_(\d{2})E(\d{2})E\.tif$")

REAL_TEMPORAL_HOLDOUT: dict[str, tuple[float, float, float, float]] = {
    # Black Marble tile 20–30N/30–40E, whole: the Nile valley and delta edge, Jeddah, Mecca (bright cores),
    # the Eastern Desert (large dark areas) and the Red Sea (fill).
    "sudan_tile_20N30N_30E40E": (30.0, 20.0, 40.0, 30.0),
    # The Libyan oil fields in the north-west corner of tile 20–30N/20–30E: gas flares up to 3000 nW/cm²/sr.
    "libya_flares": (20.0, 26.8, 23.2, 30.0),
    # The whole Mumbai cube (2012–2023): a megacity with real change over gaps of 1–9 years.
    "mumbai": (72.7, 18.8, 73.0, 19.3),
    # Kenya (Black Marble VNP46A4 annual 2020–2023): Nairobi and the central highlands (Thika, Machakos, Kajiado,
    # Naivasha, Nyeri, Embu, Meru). Nairobi is held out rather than the coast because it is where Kenya's light
    # and its real change are (half the country's sum of lights, +50 % from 2020 to 2023), so the one- to
    # three-year classes measure change in a city; the coast held out would be two-thirds sea fill and bush
    # with ~3,000 lit pixels. Training keeps Mombasa, Malindi and the coast, Kisumu, Nakuru and Eldoret (west
    # of 36.3°E), which change too (the west's light doubles). 624×720 px: one 560×656 window per year pair.
    "kenya_nairobi": (36.3, -2.8, 38.9, 0.2),
    # Nigeria (VNP46A4 2023): Lagos, Abeokuta, Benin City and the western Niger delta's gas flares (Warri,
    # Forcados, Escravos; up to 2,500 nW/cm²/sr), for the no-reference class. Training keeps Abuja, Kano,
    # Kaduna, Ibadan, Onitsha, Enugu and Port Harcourt with the eastern delta's flares (up to 3,000), so both
    # sides have a megacity-scale city and flares. About half of the box is sea or Benin (fill).
    "nigeria_lagos_west_delta": (2.6, 4.2, 6.2, 7.2),
}


def overlaps_holdout(bounds: tuple[float, float, float, float]) -> str | None:
    """The name of the first hold-out region that `bounds` (west, south, east, north) touches, else None."""
    west, south, east, north = bounds
    for name, (w, s, e, n) in REAL_TEMPORAL_HOLDOUT.items():
        if west < e and east > w and south < n and north > s:
            return name
    return None


@lru_cache(maxsize=2)
def greece_mean(real_dir: str) -> tuple[np.ndarray, Grid]:
    """12-month mean of the Greece 2017 VIIRS composites on their own grid (NaN = nodata)."""
    paths = sorted(glob.glob(str(Path(real_dir) / "greece" / "viirs_dnb_monthly_2017_*.tif")))
    if len(paths) != 12:
        raise FileNotFoundError(f"expected 12 Greece VIIRS monthly composites under {real_dir}/greece")
    infos = [inspect_raster(p, "VIIRS") for p in paths]
    grid = Grid(infos[0].crs, infos[0].transform, infos[0].width, infos[0].height)
    readers = [AlignedReader(i, grid, Resampling.nearest).__enter__() for i in infos]
    try:
        mean = MeanReader(readers).read(Window(0, 0, grid.width, grid.height))
    finally:
        for r in readers:
            r.__exit__(None, None, None)
    return mean, grid


def sudan_tiles(real_dir: str | Path) -> dict[str, dict[int, Path]]:
    """{tile key: {year: path}} for the Black Marble tiles that have both years and are not wholly held out."""
    tiles: dict[str, dict[int, Path]] = {}
    for path in sorted((Path(real_dir) / "sudan_blackmarble").glob("vnp46a3_*.tif")):
        m = _NAME.search(path.name)
        if not m:
            continue
        year, south, north, west, east = int(m[1]), int(m[3]), int(m[4]), int(m[5]), int(m[6])
        key = f"{south:02d}N{north:02d}N_{west:02d}E{east:02d}E"
        tiles.setdefault(key, {})[year] = path
    out = {}
    for key, years in tiles.items():
        if not all(y in years for y in SUDAN_YEARS):
            continue
        m = re.match(r"(\d+)N(\d+)N_(\d+)E(\d+)E", key)
        south, north, west, east = (float(v) for v in m.groups())
        name = overlaps_holdout((west + 1e-6, south + 1e-6, east - 1e-6, north - 1e-6))
        if name is not None and name.startswith("sudan_tile"):
            continue  # the whole tile is a hold-out region
        out[key] = years
    if not out:
        raise FileNotFoundError(f"no Sudan Black Marble tile pairs (2023 and 2024) under {real_dir}/sudan_blackmarble")
    return out


KENYA_PATTERN = "vnp46a4_*_kenya.tif"  # Black Marble VNP46A4 annual composites, one file per year
REAL_PAIR_REGIONS = ("sudan", "kenya", "nigeria")
NIGERIA_FILE = "nigeria_blackmarble/vnp46a4_2023_nigeria.tif"  # one year: reference-free tiles (Abuja, Kano, flares)


def kenya_years(real_dir: str | Path) -> dict[int, Path]:
    """{year: path} of the Kenya annual composites (2020–2023): every ordered pair of years is a real pair with a
    gap of 1–3 years; the Nairobi hold-out inside them is refused window by window (overlaps_holdout)."""
    found = {}
    for path in sorted((Path(real_dir) / "kenya_blackmarble").glob(KENYA_PATTERN)):
        m = re.search(r"vnp46a4_(\d{4})_kenya\.tif$", path.name)
        if m:
            found[int(m[1])] = path
    if len(found) < 2:
        raise FileNotFoundError(f"fewer than two Kenya Black Marble annual composites under {real_dir}/kenya_blackmarble")
    return found


def real_pair_sources(real_dir: str | Path, regions: tuple[str, ...] | list[str] = ("sudan",)) -> dict[str, dict[int, Path]]:
    """{source key: {year: path}} of the real VIIRS of `regions` (REAL_PAIR_REGIONS): each Sudan Black Marble tile
    (2023, 2024) under its tile key, Kenya's annual composites (2020–2023) under "kenya", Nigeria's 2023 annual
    under "nigeria" (one year: tiles without a reference; Lagos and the western delta are held out)."""
    unknown = [r for r in regions if r not in REAL_PAIR_REGIONS]
    if unknown or not regions:
        raise ValueError(f"real_regions {list(regions)}: choose among {', '.join(REAL_PAIR_REGIONS)}")
    out: dict[str, dict[int, Path]] = {}
    if "sudan" in regions:
        out.update(sudan_tiles(real_dir))
    if "kenya" in regions:
        out["kenya"] = kenya_years(real_dir)
    if "nigeria" in regions:
        path = Path(real_dir) / NIGERIA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no Nigeria Black Marble annual composite at {path}")
        out["nigeria"] = {2023: path}
    return out
