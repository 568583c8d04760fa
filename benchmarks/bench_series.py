"""`series` temporal consistency on real VIIRS (Mumbai annual medians 2013–2022 in ../shared/data/real/mumbai).

The truth is the real annual median of each year. DMSP-OLS has no years after 2013, so the first seven truth
years (2013–2019) stand in for the DMSP years 2007–2013: each is simulated to DMSP (core.dmsp_like, the
satellite drawn among those flying that year) after multiplying it by a residual gain drawn from the spread of
the Elvidge coefficients (what intercalibration leaves uncorrected); the last three truth years (2020–2022) are
the real VIIRS years 2014–2016 (references and bands). The series' year-to-year sum-of-lights ratios are
compared with the truth's, and the DMSP→VIIRS seam step with the truth's 2019→2020 step; with and without the
temporal step.

python -m benchmarks.bench_series [--model baseline] [--seed 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from nightlight_fusion_plugin.core.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.intercalibration import published_coefficients
from nightlight_fusion_plugin.core.series import SeriesRequest, run_series

from .results import record

MUMBAI = Path(os.environ.get("NLF_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "real" / "mumbai"
TRUTH_YEARS = list(range(2013, 2023))
DMSP_LABELS = list(range(2007, 2014))  # truth 2013–2019
VIIRS_LABELS = [2014, 2015, 2016]  # truth 2020–2022


def gain_spread() -> float:
    """σ of log gain across the published satellite-years: log of the DNc each curve gives at mid-scale DN 30."""
    dnc = [c0 + c1 * 30 + c2 * 900 for c0, c1, c2 in published_coefficients().values()]
    return float(np.std(np.log(dnc)))


def build_inputs(folder: Path, seed: int) -> tuple[list[str], list[str], dict[int, np.ndarray], dict]:
    rng = np.random.default_rng(seed)
    table = published_coefficients()
    sigma = gain_spread()
    dmsp, viirs, truth, drawn = [], [], {}, {}
    for i, year in enumerate(TRUTH_YEARS):
        src_path = MUMBAI / f"viirs_dnb_annual_median_{year}.tif"
        with rasterio.open(src_path) as src:
            data, profile = src.read(1), src.profile
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="baseline")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--section", default="series consistency, Mumbai")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dmsp, viirs, truth, drawn = build_inputs(folder, args.seed)
        print(json.dumps(drawn, indent=1))
        t = np.stack([truth[y] for y in TRUTH_YEARS])
        for smoothing in (False, True):
            out = folder / f"series_{smoothing}.tif"
            result = run_series(
                SeriesRequest(dmsp=dmsp, viirs=viirs, output=str(out), model=args.model, temporal_smoothing=smoothing, seed=0)
            )
            with rasterio.open(out) as src:
                s = src.read()
            valid = np.all(np.isfinite(s), axis=0) & np.all(np.isfinite(t), axis=0)
            sums_s = np.where(valid, s, 0).sum(axis=(1, 2))
            sums_t = np.where(valid, t, 0).sum(axis=(1, 2))
            ratio_s, ratio_t = sums_s[1:] / sums_s[:-1], sums_t[1:] / sums_t[:-1]
            error = ratio_s / ratio_t - 1
            seam = len(DMSP_LABELS) - 1  # the ratio last DMSP → first VIIRS
            dmsp_pairs = error[:seam]
            rows.append(
                {
                    "model": args.model,
                    "temporal_step": "on" if smoothing else "off",
                    "years": f"{len(DMSP_LABELS)} DMSP + {len(VIIRS_LABELS)} VIIRS",
                    "max_abs_ratio_error_dmsp": float(np.max(np.abs(dmsp_pairs))),
                    "median_abs_ratio_error_dmsp": float(np.median(np.abs(dmsp_pairs))),
                    "pairs_within_10pct": f"{int(np.sum(np.abs(dmsp_pairs) <= 0.1))}/{len(dmsp_pairs)}",
                    "seam_step": float(ratio_s[seam] - 1),
                    "truth_step_2019_2020": float(ratio_t[seam] - 1),
                    "seam_step_vs_truth": float(error[seam]),
                    "seam_within_10pct": bool(abs(error[seam]) <= 0.1),
                    "trend_sign_disagreement": result.report["trend_sign_disagreement"],
                    "seconds": round(result.seconds, 2),
                }
            )
            print(json.dumps(rows[-1]))
    record(args.section, rows)


if __name__ == "__main__":
    main()
