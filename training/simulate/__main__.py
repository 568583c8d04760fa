"""python -m training.simulate {pairs,greece,real-temporal,dmsp,calibrate,figure} — see docs/training_data.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nightlight_fusion_plugin.core.errors import FusionError

DEFAULT_REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.simulate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="write N simulated scenes (DMSP t, VIIRS t_ref, VIIRS t truth) + manifest")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--size", type=int, default=256, help="scene side in VIIRS (15″) pixels; even")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spread", type=float, default=1.0, help="width of the sensor-parameter randomisation")
    p.add_argument("--robustness-holdout", action="store_true", help="sensor parameters outside the training range")
    p.add_argument("--min-gap", type=int, default=1, help="minimum years between the DMSP year and the reference year")
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("greece", help="semi-real evaluation scenes from the Greece hold-out region (never trained on)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--real", type=Path, default=DEFAULT_REAL)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("real-temporal", help="evaluation scenes with real truth and real reference of another date")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--real", type=Path, default=DEFAULT_REAL)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--region", choices=["sudan", "mumbai", "kenya", "nigeria", "greece"], help="one region's set")
    which.add_argument(
        "--gap-class",
        choices=["1", "2-5", "6+", "none"],
        help="the scenes of one gap class (years between DMSP and reference; none: no reference) from every region",
    )
    p.add_argument("--gap", type=int, help="mumbai: years between truth and reference (1, 3, 5 or 9)")
    p.add_argument(
        "--sources", type=Path, help="--gap-class: where the region sets are (made when missing; default OUT/../real_regions)"
    )
    p.add_argument("--regions", nargs="+", help="--gap-class: only these regions (default: every region whose data are present)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("dmsp", help="DMSP-like DN from a VIIRS radiance raster (30″ EPSG:4326 output)")
    p.add_argument("--viirs", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--satellite", default="F18")
    p.add_argument("--year", type=int, default=2013)
    p.add_argument("--overwrite", action="store_true")
    p = sub.add_parser("calibrate", help="fit the DMSP sensor model on real Athens DMSP vs Greece VIIRS")
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help="../shared/data/real")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--docs", type=Path, default=Path("docs/training_data.md"))
    p = sub.add_parser("change-prior", help="measure scene_gain's prior (sensor vs real change) on training regions")
    p.add_argument("--real", type=Path, default=DEFAULT_REAL)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("figure", help="simulated vs real tiles side by side (PNG)")
    p.add_argument("--real", type=Path, default=DEFAULT_REAL)
    p.add_argument("--output", type=Path, default=Path("docs/images/simulator_vs_real.png"))
    p.add_argument("--seed", type=int, default=6, help="scene seed (6: an urban scene on a coast)")
    args = parser.parse_args(argv)
    try:
        if args.command == "pairs":
            from .writer import write_pairs

            print(
                write_pairs(
                    args.out, args.count, args.size, args.seed, args.spread, args.robustness_holdout, args.overwrite, args.min_gap
                )
            )
        elif args.command == "greece":
            from .greece import write_greece_holdout

            print(write_greece_holdout(args.real, args.out, args.size, args.seed, args.overwrite))
        elif args.command == "real-temporal":
            from .real_temporal import write_gap_class, write_real_temporal

            if args.gap_class:
                print(write_gap_class(args.real, args.out, args.gap_class, args.sources, args.seed, args.overwrite, args.regions))
            else:
                print(write_real_temporal(args.real, args.out, args.region, args.gap, args.seed, args.overwrite))
        elif args.command == "dmsp":
            from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster

            result = simulate_dmsp_raster(args.viirs, args.output, args.satellite, args.year, overwrite=args.overwrite)
            g = result.grid
            print(f"wrote {result.output}: {g.width}×{g.height} px, 30″ EPSG:4326, {args.satellite} {args.year}")
        elif args.command == "calibrate":
            from .calibrate import markdown_table, run
            from .docs import replace_section

            report = run(args.real, iterations=args.iterations)
            replace_section(args.docs, "calibration", markdown_table(report))
            print(markdown_table(report))
        elif args.command == "change-prior":
            from .change_prior import write_prior

            payload = write_prior(args.real, seed=args.seed)
            print(json.dumps({k: v for k, v in payload.items() if k != "windows"}, indent=1))
        elif args.command == "figure":
            from .figure import make_figure

            print(make_figure(args.real, args.output, args.seed))
    except (FusionError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
