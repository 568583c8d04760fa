"""The real-temporal evaluation sets: truth and reference are both *real* VIIRS of different dates; only the
DMSP is simulated, from the truth, by the project's sensor model (`real_scenes.write_scene`:
`core.dmsp_like.simulate_dmsp_raster`), sensor parameters from the calibrated range (even scenes) or outside it.

python -m training.simulate real-temporal --region sudan --out DIR          # Black Marble Feb 2024, ref Feb 2023
python -m training.simulate real-temporal --region mumbai --gap 5 --out DIR  # annual medians 5 years apart
python -m training.simulate real-temporal --region kenya --out DIR          # annual 2020–2023, every pair
python -m training.simulate real-temporal --region nigeria --out DIR        # annual 2023, no reference
python -m training.simulate real-temporal --region greece --out DIR         # 2017 mean, no reference
python -m training.simulate real-temporal --gap-class 2-5 --out DIR [--sources DIR] [--regions kenya mumbai]

Scenes come only from `training.real_sources.REAL_TEMPORAL_HOLDOUT` (never trained on):
- sudan: four 768² windows of tile 20–30N/30–40E chosen by their light (the two brightest: Jeddah/Mecca and the
  Nile at Cairo's edge; the median; the darkest mostly-valid one: desert), and the Libyan flare field
  (704², tile 20–30N/20–30E); 2.9 Mpx. A one-year gap (truth Feb 2024, reference Feb 2023).
- mumbai: the whole 48×101 clip (the cube is no bigger), truth 2013 with the reference 2013+gap and truth 2022
  with 2022−gap, each with two sensor draws: 4 scenes, 19 kpx per gap.
- kenya: the Nairobi hold-out (Black Marble VNP46A4 annual composites) as one 560×656 window (its whole area
  less the DMSP context margin), truth year T with reference year R for every ordered pair of 2020–2023:
  six one-year scenes, four two-year and two three-year (0.37 Mpx each; 2.2 Mpx per gap class).
- nigeria: the Lagos / western-delta hold-out, VNP46A4 2023, in quarters (392×319), the three that are mostly
  land: Lagos and two of the western delta's flare fields (up to 2,500 nW/cm²/sr); no reference.
- greece: the Thessaloniki hold-out (`GREECE_HOLDOUT`), 2017 12-month mean, one window, no reference.
Every scene records its truth and reference years, the signed gap (reference year − truth year; None without
a reference) and its gap class (`real_scenes.gap_class`), so gap-aware models can be given it.

A gap-class set (`--gap-class 1 | 2-5 | 6+ | none`) gathers the scenes of that class from the region sets
(built under --sources when missing; the class set's manifest points at their files), so one evaluation of it
pools every pixel of the class and reports each region beside (`training.evaluate`'s `set_regions`):
- 1 year: Mumbai gap 1, Sudan, Kenya's one-year pairs.
- 2–5 years: Mumbai gaps 3 and 5, Kenya's two- and three-year pairs.
- ≥ 6 years: Mumbai gap 9 (the only real pairs this far apart: 19 kpx).
- no reference: every distinct truth scene (truth, window, sensor draw) of every region, the reference dropped:
  Mumbai, Sudan, Kenya, Nigeria, Greece.
NaN fill stays NaN in truth and reference (excluded from scoring; a reference hole is a hole for the engine);
the DMSP simulation counts truth fill as dark, as the real DMSP would see the sea or a masked pixel.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..real_sources import GREECE_HOLDOUT, REAL_TEMPORAL_HOLDOUT, greece_mean
from .real_scenes import (
    GAP_CLASSES,
    MARGIN,
    NO_REFERENCE,
    draw_sensor,
    holdout_window,
    scene_years,
    window_with_context,
    write_scene,
)

SUDAN_FILE = "sudan_blackmarble/vnp46a3_{date}_02_{tile}.tif"
SUDAN_TILE, FLARE_TILE = "20N30N_30E40E", "20N30N_20E30E"
SUDAN_TRUTH_DATE, SUDAN_REFERENCE_DATE = 2024, 2023
WINDOW, FLARE_WINDOW = 768, 704
MUMBAI_FILE = "mumbai/viirs_dnb_annual_median_{year}.tif"
MUMBAI_YEARS = (2013, 2022)
MUMBAI_GAPS = (1, 3, 5, 9)
KENYA_FILE = "kenya_blackmarble/vnp46a4_{year}_kenya.tif"
KENYA_YEARS = (2020, 2021, 2022, 2023)
NIGERIA_FILE = "nigeria_blackmarble/vnp46a4_2023_nigeria.tif"
NIGERIA_YEAR = 2023
NIGERIA_SPLIT, NIGERIA_MIN_VALID, FLARE_PEAK = 2, 0.3, 1000.0  # the sea and Benin are fill (NaN)
GREECE_YEAR = 2017
REGIONS = ("sudan", "mumbai", "kenya", "nigeria", "greece")
REGION_DIRS = {  # what each region needs under ../shared/data/real
    "sudan": "sudan_blackmarble",
    "mumbai": "mumbai",
    "kenya": "kenya_blackmarble",
    "nigeria": "nigeria_blackmarble",
    "greece": "greece",
}
SEED_OFFSETS = {"sudan": 0, "mumbai": 1000, "kenya": 20000, "nigeria": 30000, "greece": 40000}
# The region sets a gap-class set is gathered from (name under --sources: (region, gap)), in this order.
SOURCE_SETS = {
    **{f"mumbai_gap{gap}": ("mumbai", gap) for gap in MUMBAI_GAPS},
    "sudan": ("sudan", None),
    "kenya": ("kenya", None),
    "nigeria": ("nigeria", None),
    "greece": ("greece", None),
}


def sudan_windows(truth_path: Path) -> list[tuple[str, Window]]:
    """Four windows of the hold-out tile chosen by light: brightest two, median, darkest (≥ 60 % valid)."""
    offsets = (48, 48 + WINDOW, 48 + 2 * WINDOW)
    candidates = []
    with rasterio.open(truth_path) as src:
        data = src.read(1).astype(np.float32)
    for row in offsets:
        for col in offsets:
            block = data[row : row + WINDOW, col : col + WINDOW]
            valid = float(np.isfinite(block).mean())
            if valid >= 0.6:
                candidates.append((float(np.nansum(block)), Window(col, row, WINDOW, WINDOW)))
    candidates.sort(key=lambda c: c[0])
    picks = [("bright core", candidates[-1][1]), ("bright core", candidates[-2][1])]
    picks += [("median light", candidates[len(candidates) // 2][1]), ("dark", candidates[0][1])]
    return picks


def nigeria_windows(path: Path) -> list[tuple[str, Window]]:
    """The Nigerian hold-out (less the DMSP context margin) cut in NIGERIA_SPLIT × NIGERIA_SPLIT windows, those
    at least NIGERIA_MIN_VALID valid (the rest is sea or Benin: fill): the brightest is the bright core (Lagos),
    the others peaking above FLARE_PEAK are the western delta's gas flares."""
    with rasterio.open(path) as src:
        area = holdout_window(src, "nigeria_lagos_west_delta")
        data = src.read(1, window=area).astype(np.float32)
    height, width = area.height // NIGERIA_SPLIT, area.width // NIGERIA_SPLIT
    found = []
    for i in range(NIGERIA_SPLIT):
        for j in range(NIGERIA_SPLIT):
            block = data[i * height : (i + 1) * height, j * width : (j + 1) * width]
            if float(np.isfinite(block).mean()) >= NIGERIA_MIN_VALID:
                window = Window(area.col_off + j * width, area.row_off + i * height, width, height)
                found.append((float(np.nansum(block)), float(np.nanmax(block)), window))
    brightest = max(c[0] for c in found)
    return [
        ("bright core" if light == brightest else "flares" if peak > FLARE_PEAK else "median light", window)
        for light, peak, window in found
    ]


def _kenya_pairs() -> list[tuple[int, int]]:
    """(truth year, reference year) for every ordered pair of KENYA_YEARS, by gap; within a gap the direction
    that comes first alternates, so each direction meets both sensor draws (even index: calibrated range)."""
    pairs = []
    for gap in range(1, len(KENYA_YEARS)):
        for k, year in enumerate(y for y in KENYA_YEARS if y + gap in KENYA_YEARS):
            forward, backward = (year, year + gap), (year + gap, year)
            pairs += [forward, backward] if k % 2 == 0 else [backward, forward]
    return pairs


def _sudan_scenes(real_dir: Path, out: Path, seed: int) -> list[dict]:
    scenes: list[dict] = []
    jobs = [
        (SUDAN_TILE, kind, w) for kind, w in sudan_windows(real_dir / SUDAN_FILE.format(date=SUDAN_TRUTH_DATE, tile=SUDAN_TILE))
    ]
    jobs.append((FLARE_TILE, "flares", Window(MARGIN, MARGIN, FLARE_WINDOW, FLARE_WINDOW)))
    for tile, kind, window in jobs:
        truth_path = real_dir / SUDAN_FILE.format(date=SUDAN_TRUTH_DATE, tile=tile)
        reference_path = real_dir / SUDAN_FILE.format(date=SUDAN_REFERENCE_DATE, tile=tile)
        with rasterio.open(truth_path) as src, rasterio.open(reference_path) as ref:
            truth = src.read(1, window=window).astype(np.float32)
            reference = ref.read(1, window=window).astype(np.float32)
            context, context_window = window_with_context(src, window)
            index = len(scenes)
            scenes.append(
                write_scene(
                    out,
                    index,
                    truth,
                    reference,
                    context,
                    src.profile,
                    rasterio.windows.transform(window, src.transform),
                    rasterio.windows.transform(context_window, src.transform),
                    draw_sensor(seed, index),
                    {
                        "region": "sudan",
                        "kind": kind,
                        "tile": tile,
                        "window": [window.col_off, window.row_off, window.width, window.height],
                        "truth_date": f"{SUDAN_TRUTH_DATE}-02",
                        "reference_date": f"{SUDAN_REFERENCE_DATE}-02",
                        **scene_years(SUDAN_TRUTH_DATE, SUDAN_REFERENCE_DATE),
                    },
                )
            )
    return scenes


def _mumbai_scenes(real_dir: Path, out: Path, gap: int | None, seed: int) -> list[dict]:
    if gap not in MUMBAI_GAPS:
        raise ValueError(f"--gap must be one of {MUMBAI_GAPS} for mumbai, got {gap}")
    scenes: list[dict] = []
    for truth_year, reference_year in ((MUMBAI_YEARS[0], MUMBAI_YEARS[0] + gap), (MUMBAI_YEARS[1], MUMBAI_YEARS[1] - gap)):
        with (
            rasterio.open(real_dir / MUMBAI_FILE.format(year=truth_year)) as src,
            rasterio.open(real_dir / MUMBAI_FILE.format(year=reference_year)) as ref,
        ):
            truth = src.read(1).astype(np.float32)
            reference = ref.read(1).astype(np.float32)
            for _draw in range(2):
                index = len(scenes)
                scenes.append(
                    write_scene(
                        out,
                        index,
                        truth,
                        reference,
                        truth,
                        src.profile,
                        src.transform,
                        src.transform,
                        draw_sensor(seed + SEED_OFFSETS["mumbai"] * gap, index),
                        {
                            "region": "mumbai",
                            "kind": "megacity",
                            "window": [0, 0, src.width, src.height],
                            "truth_date": str(truth_year),
                            "reference_date": str(reference_year),
                            **scene_years(truth_year, reference_year),
                        },
                    )
                )
    return scenes


def _kenya_scenes(real_dir: Path, out: Path, seed: int) -> list[dict]:
    scenes: list[dict] = []
    for truth_year, reference_year in _kenya_pairs():
        with (
            rasterio.open(real_dir / KENYA_FILE.format(year=truth_year)) as src,
            rasterio.open(real_dir / KENYA_FILE.format(year=reference_year)) as ref,
        ):
            if src.transform != ref.transform or src.shape != ref.shape:
                raise ValueError(f"the Kenya {truth_year} and {reference_year} rasters are not on one grid")
            window = holdout_window(src, "kenya_nairobi")
            truth = src.read(1, window=window).astype(np.float32)
            reference = ref.read(1, window=window).astype(np.float32)
            context, context_window = window_with_context(src, window)
            index = len(scenes)
            scenes.append(
                write_scene(
                    out,
                    index,
                    truth,
                    reference,
                    context,
                    src.profile,
                    rasterio.windows.transform(window, src.transform),
                    rasterio.windows.transform(context_window, src.transform),
                    draw_sensor(seed + SEED_OFFSETS["kenya"], index),
                    {
                        "region": "kenya",
                        "kind": "Nairobi and the central highlands",
                        "window": [window.col_off, window.row_off, window.width, window.height],
                        "truth_date": str(truth_year),
                        "reference_date": str(reference_year),
                        **scene_years(truth_year, reference_year),
                    },
                )
            )
    return scenes


def _nigeria_scenes(real_dir: Path, out: Path, seed: int) -> list[dict]:
    scenes: list[dict] = []
    path = real_dir / NIGERIA_FILE
    for kind, window in nigeria_windows(path):
        with rasterio.open(path) as src:
            truth = src.read(1, window=window).astype(np.float32)
            context, context_window = window_with_context(src, window)
            index = len(scenes)
            scenes.append(
                write_scene(
                    out,
                    index,
                    truth,
                    None,
                    context,
                    src.profile,
                    rasterio.windows.transform(window, src.transform),
                    rasterio.windows.transform(context_window, src.transform),
                    draw_sensor(seed + SEED_OFFSETS["nigeria"], index),
                    {
                        "region": "nigeria",
                        "kind": kind,
                        "window": [window.col_off, window.row_off, window.width, window.height],
                        "truth_date": str(NIGERIA_YEAR),
                        "reference_date": None,
                        **scene_years(NIGERIA_YEAR, None),
                    },
                )
            )
    return scenes


def _greece_scenes(real_dir: Path, out: Path, seed: int) -> list[dict]:
    mean, grid = greece_mean(str(real_dir))
    t = grid.transform
    col0 = int(np.ceil((GREECE_HOLDOUT[0] - t.c) / t.a)) + MARGIN
    col1 = int(np.floor((GREECE_HOLDOUT[2] - t.c) / t.a)) - MARGIN
    row0 = int(np.ceil((GREECE_HOLDOUT[3] - t.f) / t.e)) + MARGIN
    row1 = int(np.floor((GREECE_HOLDOUT[1] - t.f) / t.e)) - MARGIN
    window = Window(col0, row0, col1 - col0, row1 - row0)
    context_window = Window(col0 - MARGIN, row0 - MARGIN, window.width + 2 * MARGIN, window.height + 2 * MARGIN)
    truth = mean[row0:row1, col0:col1]
    context = mean[context_window.row_off : row1 + MARGIN, context_window.col_off : col1 + MARGIN]
    profile = {"crs": grid.crs}
    scene = write_scene(
        out,
        0,
        truth,
        None,
        context,
        profile,
        rasterio.windows.transform(window, t),
        rasterio.windows.transform(context_window, t),
        draw_sensor(seed + SEED_OFFSETS["greece"], 0),
        {
            "region": "greece",
            "kind": "Thessaloniki (12-month mean; integer-rounded, clipped at 231)",
            "window": [window.col_off, window.row_off, window.width, window.height],
            "truth_date": str(GREECE_YEAR),
            "reference_date": None,
            **scene_years(GREECE_YEAR, None),
        },
    )
    return [scene]


def _pixels(out: Path, scenes: list[dict]) -> int:
    pixels = 0
    for scene in scenes:
        with rasterio.open(out / scene["files"]["viirs_truth"]) as src:
            pixels += src.width * src.height
    return pixels


def write_real_temporal(
    real_dir: Path, out: Path, region: str, gap: int | None = None, seed: int = 0, overwrite: bool = False
) -> Path:
    """One region's real-temporal set (`region` in REGIONS; mumbai also needs `gap`)."""
    if region not in REGIONS:
        raise ValueError(f"unknown region '{region}': one of {', '.join(REGIONS)}")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not overwrite:
        raise FileExistsError(f"{manifest_path} exists; choose another --out or pass --overwrite")
    if region == "sudan":
        scenes = _sudan_scenes(real_dir, out, seed)
    elif region == "mumbai":
        scenes = _mumbai_scenes(real_dir, out, gap, seed)
    elif region == "kenya":
        scenes = _kenya_scenes(real_dir, out, seed)
    elif region == "nigeria":
        scenes = _nigeria_scenes(real_dir, out, seed)
    else:
        scenes = _greece_scenes(real_dir, out, seed)
    gaps = sorted({s["gap_years"] for s in scenes if s["gap_years"] is not None})
    manifest = {
        "generator": "training.simulate real-temporal",
        "region": region,
        "gap_years": gaps[0] if len(gaps) == 1 else (gaps or None),
        "gap_classes": sorted({s["gap_class"] for s in scenes}),
        "seed": seed,
        "holdout_regions": REAL_TEMPORAL_HOLDOUT,
        "pixels": _pixels(out, scenes),
        "count": len(scenes),
        "scenes": scenes,
        "note": "truth and reference = real VIIRS of different dates (none where reference_date is null); "
        "DMSP simulated from the truth",
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest_path


def _class_scenes(scenes: list[dict], wanted: str) -> list[dict]:
    """A region set's scenes in class `wanted`; for 'no reference' each distinct truth scene once (truth date,
    window, sensor draw), its reference dropped."""
    if wanted != NO_REFERENCE:
        return [s for s in scenes if s["gap_class"] == wanted]
    seen, out = set(), []
    for scene in scenes:
        key = (scene["truth_date"], tuple(scene.get("window") or ()), scene["sensor_draw"])
        if key in seen:
            continue
        seen.add(key)
        files = {k: v for k, v in scene["files"].items() if k != "viirs_reference"}
        out.append({**scene, "files": files, "reference_date": None, **scene_years(scene["truth_year"], None)})
    return out


def write_gap_class(
    real_dir: Path,
    out: Path,
    which: str,
    sources: Path | None = None,
    seed: int = 0,
    overwrite: bool = False,
    regions: list[str] | None = None,
) -> Path:
    """The gap-class set `which` (a key of GAP_CLASSES): the scenes of that class from every region set whose
    data are present (and in `regions`, if given), region sets built under `sources` when missing (default:
    OUT/../real_regions). Its manifest points at the region sets' files (paths relative to OUT)."""
    if which not in GAP_CLASSES:
        raise ValueError(f"unknown gap class '{which}': one of {', '.join(GAP_CLASSES)}")
    wanted = GAP_CLASSES[which]
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not overwrite:
        raise FileExistsError(f"{manifest_path} exists; choose another --out or pass --overwrite")
    sources = sources or out.parent / "real_regions"
    scenes: list[dict] = []
    included: dict[str, dict] = {}
    missing = []
    for name, (region, gap) in SOURCE_SETS.items():
        if regions and region not in regions:
            continue
        if not (real_dir / REGION_DIRS[region]).is_dir():
            missing.append(region)
            continue
        if region == "mumbai" and wanted == NO_REFERENCE and gap != MUMBAI_GAPS[0]:
            continue  # the same truths as gap 1
        source = sources / name
        if not (source / "manifest.json").exists():
            write_real_temporal(real_dir, source, region, gap, seed, overwrite=True)
        chosen = _class_scenes(json.loads((source / "manifest.json").read_text())["scenes"], wanted)
        for scene in chosen:
            files = {k: os.path.relpath(source / v, out) for k, v in scene["files"].items()}
            scenes.append({**scene, "index": len(scenes), "source": name, "source_index": scene["index"], "files": files})
            with rasterio.open(source / scene["files"]["viirs_truth"]) as src:
                stats = included.setdefault(region, {"scenes": 0, "pixels": 0})
                stats["scenes"] += 1
                stats["pixels"] += src.width * src.height
    if not scenes:
        raise FileNotFoundError(f"no real-temporal scenes of class '{wanted}' under {real_dir} (missing: {missing})")
    manifest = {
        "generator": "training.simulate real-temporal --gap-class",
        "gap_class": wanted,
        "regions": included,
        "regions_missing": missing,
        "sources": os.path.relpath(sources, out),
        "seed": seed,
        "holdout_regions": REAL_TEMPORAL_HOLDOUT,
        "pixels": sum(r["pixels"] for r in included.values()),
        "count": len(scenes),
        "scenes": scenes,
        "note": "the scenes of one gap class from the region sets (files relative to this folder); truth and "
        "reference = real VIIRS of different dates, DMSP simulated from the truth",
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest_path
