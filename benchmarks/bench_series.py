"""`series` temporal consistency: Mumbai's real VIIRS annual medians 2013–2022, or a synthetic scene.

--region mumbai (default; ../shared/data/real/mumbai, a hold-out region): the truth is the real annual median
of each year. --region synthetic: the truth is ten years (2005–2014) of core.sample's growing landscape
(towns growing 0–5 %/year, new towns, more rural scatter) through its VIIRS composite model, a different
place, kind of change and light distribution (smooth growth, no crisis), so an improvement that holds on
both is not a Mumbai artefact. DMSP-OLS has no years after 2013, so the first seven truth
years (2013–2019) stand in for the DMSP years 2007–2013: each is simulated to DMSP (core.dmsp_like, the
satellite drawn among those flying that year) after multiplying it by a residual gain drawn from the spread of
the Elvidge coefficients (what intercalibration leaves uncorrected); the last three truth years (2020–2022) are
the real VIIRS years 2014–2016 (references and bands). The series' year-to-year sum-of-lights ratios are
compared with the truth's, and the DMSP→VIIRS seam step with the truth's last-DMSP→first-VIIRS step; with the
temporal step off, `prior` and `local-trend` (core/temporal.py), over several seeds (gain and satellite draws),
plus the null series `persistence` (every DMSP year = the first VIIRS year) that shows what a flat series scores.
The DMSP is simulated with the same sensor model the `prior` level fit inverts: on real DMSP the model's
mismatch adds level error that this bench cannot show.

python -m benchmarks.bench_series [--region mumbai|synthetic] [--model reference-change] [--seeds 0-9]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.pipeline.series import SeriesRequest, run_series
from nightlight_fusion_plugin.core.pipeline.temporal import gain_sigma
from nightlight_fusion_plugin.core.raster.grids import VIIRS_PIXEL_DEG
from nightlight_fusion_plugin.core.report.sample import ORIGIN, radiance_field, viirs_composite
from nightlight_fusion_plugin.core.sensor.intercalibration import published_coefficients

from .results import record

MUMBAI = Path(os.environ.get("NLF_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "real" / "mumbai"
TRUTH_YEARS = list(range(2013, 2023))
DMSP_LABELS = list(range(2007, 2014))  # truth 2013–2019
VIIRS_LABELS = [2014, 2015, 2016]  # truth 2020–2022


def gain_spread() -> float:
    """σ of log gain across the published satellite-years (core.temporal.gain_sigma, the `prior` fit's σ)."""
    return gain_sigma()


SYNTHETIC_YEARS = list(range(2005, 2015))
SYNTHETIC_SIZE = 120  # 15″ pixels (0.5°): a few towns, seconds per series


def truth_year(region: str, index: int, seed: int) -> tuple[np.ndarray, dict]:
    """The truth of the index-th year and a GeoTIFF profile to write it (and the DMSP simulated from it) with."""
    if region == "mumbai":
        with rasterio.open(MUMBAI / f"viirs_dnb_annual_median_{TRUTH_YEARS[index]}.tif") as src:
            return src.read(1), src.profile
    year = SYNTHETIC_YEARS[index]
    data = viirs_composite(radiance_field(year, SYNTHETIC_SIZE, seed=7 + seed), seed=1000 * seed + year)
    profile = dict(driver="GTiff", count=1, dtype="float32", crs="EPSG:4326", nodata=np.nan, width=SYNTHETIC_SIZE,
                   height=SYNTHETIC_SIZE, transform=from_origin(*ORIGIN, VIIRS_PIXEL_DEG, VIIRS_PIXEL_DEG))  # fmt: skip
    return np.maximum(data, 0.0).astype(np.float32), profile


def build_inputs(folder: Path, seed: int, region: str = "mumbai") -> tuple[list[str], list[str], dict[int, np.ndarray], dict]:
    rng = np.random.default_rng(seed)
    table = published_coefficients()
    sigma = gain_spread()
    dmsp, viirs, truth, drawn = [], [], {}, {}
    for i, year in enumerate(TRUTH_YEARS):
        data, profile = truth_year(region, i, seed)
        truth[year] = data
        if i < len(DMSP_LABELS):
            label = DMSP_LABELS[i]
            flying = sorted(s for s, y in table if y == label) or ["F18"]  # 2013: only F18 flew (no published row)
            sat = str(rng.choice(flying))
            gain = float(np.exp(rng.normal(0.0, sigma)))
            scaled = folder / f"scaled_{year}.tif"
            with rasterio.open(scaled, "w", **profile) as dst:
                dst.write((data * gain).astype(profile["dtype"]), 1)
            out = folder / f"{sat}_{label}.tif"
            simulate_dmsp_raster(str(scaled), str(out), satellite=sat, year=label)
            dmsp.append(str(out))
            drawn[label] = {"truth_year": year, "satellite": sat, "residual_gain": round(gain, 4)}
        else:
            label = VIIRS_LABELS[i - len(DMSP_LABELS)]
            out = folder / f"viirs_{label}.tif"
            with rasterio.open(out, "w", **profile) as dst:
                dst.write(data, 1)
            viirs.append(str(out))
    return dmsp, viirs, truth, {"sigma_log_gain": round(sigma, 4), "years": drawn}


def score(series: np.ndarray, truth: np.ndarray) -> dict:
    """Year-to-year sum-of-lights ratio errors against the truth's (DMSP pairs) and the seam's."""
    valid = np.all(np.isfinite(series), axis=0) & np.all(np.isfinite(truth), axis=0)
    sums_s = np.where(valid, series, 0).sum(axis=(1, 2))
    sums_t = np.where(valid, truth, 0).sum(axis=(1, 2))
    ratio_s, ratio_t = sums_s[1:] / sums_s[:-1], sums_t[1:] / sums_t[:-1]
    error = ratio_s / ratio_t - 1
    seam = len(DMSP_LABELS) - 1  # the ratio last DMSP → first VIIRS
    return {"pairs": error[:seam], "seam_step": ratio_s[seam] - 1, "truth_step": ratio_t[seam] - 1, "seam_error": error[seam]}


def summarise(config: dict, scores: list[dict], seconds: list[float], disagreement: list[float]) -> dict:
    pairs = np.array([s["pairs"] for s in scores])
    seam = np.array([s["seam_error"] for s in scores])
    within = np.sum(np.abs(pairs) <= 0.1, axis=1)
    return {
        **config,
        "seeds": len(scores),
        "pairs_within_10pct_mean": f"{within.mean():.2f}/{pairs.shape[1]}",
        "seeds_all_pairs_within": f"{int(np.sum(within == pairs.shape[1]))}/{len(scores)}",
        "median_abs_ratio_error_dmsp": float(np.median(np.abs(pairs))),
        "max_abs_ratio_error_dmsp": float(np.max(np.abs(pairs))),
        "truth_seam_step_median": float(np.median([s["truth_step"] for s in scores])),
        "seam_error_median": float(np.median(seam)),
        "seam_abs_error_max": float(np.max(np.abs(seam))),
        "seeds_seam_within_10pct": f"{int(np.sum(np.abs(seam) <= 0.1))}/{len(scores)}",
        "trend_sign_disagreement": float(np.mean(disagreement)) if disagreement else None,
        "seconds_per_series": round(float(np.mean(seconds)), 2) if seconds else None,
    }


def seed_list(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", choices=["mumbai", "synthetic"], default="mumbai")
    parser.add_argument("--model", default="reference-change", help="the project's default with a reference")
    parser.add_argument("--seeds", type=seed_list, default=seed_list("0-9"), help="e.g. 0-9 or 3,5")
    parser.add_argument("--section", help="results section (default: series consistency, <region>)")
    args = parser.parse_args()
    configs = [("off", False, "prior"), ("prior", True, "prior"), ("local-trend", True, "local-trend")]
    results: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name, _, _ in configs}
    results["persistence"] = ([], [], [])
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            dmsp, viirs, truth, drawn = build_inputs(folder, seed, args.region)
            print(json.dumps({"seed": seed, **drawn}))
            t = np.stack([truth[y] for y in TRUTH_YEARS])
            flat = np.concatenate([np.repeat(t[len(DMSP_LABELS)][None], len(DMSP_LABELS), axis=0), t[len(DMSP_LABELS) :]])
            results["persistence"][0].append(score(flat, t))
            for name, smoothing, fit in configs:
                out = folder / f"series_{name}.tif"
                result = run_series(
                    SeriesRequest(dmsp=dmsp, viirs=viirs, output=str(out), model=args.model, temporal_smoothing=smoothing,
                                  temporal_fit=fit, seed=0)
                )  # fmt: skip
                with rasterio.open(out) as src:
                    results[name][0].append(score(src.read(), t))
                results[name][1].append(result.seconds)
                results[name][2].append(result.report["trend_sign_disagreement"])
    rows = []
    for name, (scores, seconds, disagreement) in results.items():
        model = "persistence (null)" if name == "persistence" else args.model
        rows.append(summarise({"region": args.region, "model": model, "temporal_step": "-" if name == "persistence" else name},
                              scores, seconds, disagreement))  # fmt: skip
        print(json.dumps(rows[-1]))
    record(args.section or f"series consistency, {args.region}", rows)


if __name__ == "__main__":
    main()
