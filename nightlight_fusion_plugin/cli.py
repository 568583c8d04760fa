"""Headless command line over core: `python -m nightlight_fusion_plugin COMMAND ...`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core.errors import FusionError

PROG = "python -m nightlight_fusion_plugin"


def _extent(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"extent must be xmin,ymin,xmax,ymax (4 numbers), got '{text}'")
    return values  # type: ignore[return-value]


def _progress_printer(quiet: bool):
    last = [-1]

    def report(fraction: float, message: str) -> None:
        step = int(fraction * 10)
        if not quiet and step != last[0]:
            last[0] = step
            print(f"{fraction:4.0%}  {message}", file=sys.stderr)

    return report


def cmd_fuse(args: argparse.Namespace) -> int:
    from .core.pipeline.fuse import FuseRequest, fuse

    request = FuseRequest(
        sampler=args.sampler,
        steps=args.steps,
        strength=args.strength,
        mask=args.mask,
        speed=args.speed,
        ensemble=args.ensemble,
        uncertainty=args.uncertainty,
        device=args.device,
        precision=args.precision,
        dmsp_consistency=args.dmsp_consistency,
        threads=args.threads,
        batch_size=args.batch_size,
        temperature=args.temperature,
        dmsp=args.dmsp,
        viirs=args.viirs,
        output=args.output,
        model=args.model,
        extent=args.extent,
        extent_crs=args.extent_crs,
        seed=args.seed,
        satellite=args.satellite,
        year=args.year,
        reference_year=args.reference_year,
        overwrite=args.overwrite,
    )
    if args.workers or args.scheduler or args.resume:  # blocks of rows, resumable, optionally on Dask
        from .core.pipeline.distributed import cluster_client, fuse_blocks

        options = _cluster_options(args)
        try:
            with cluster_client(options) as client:
                result = fuse_blocks(request, options, _progress_printer(args.quiet), client=client)
        except KeyboardInterrupt:  # finished blocks are journalled next to the output: say how to go on
            print("interrupted; finished blocks are kept: rerun the same command with --resume to continue", file=sys.stderr)
            return 130
    else:
        result = fuse(request, progress=_progress_printer(args.quiet))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    g = result.grid
    device = f" on {result.device} ({result.sampler})" if result.sampler else ""
    if "NLF_PRECISION" in result.tags:
        device += f", precision {result.tags['NLF_PRECISION']}"
    size = f"{g.width}×{g.height} px, {g.crs.to_string()}"
    print(f"wrote {result.output}: {size}, model {result.model}{device}, {result.seconds:.1f} s")
    if result.uncertainty:
        print(f"wrote {result.uncertainty}: ensemble standard deviation (nW/cm²/sr)")
    if args.report:
        from .core.report.run_report import dmsp_consistency, write_report

        qa = dmsp_consistency(result.output, args.dmsp, args.satellite, args.year)
        print(
            f"wrote {write_report(args.report, result, args.dmsp, args.viirs, qa)}: run report "
            f"(QA: re-simulated DMSP vs input, Pearson r {qa['pearson_r']:.3f})"
        )
    return 0


def _cluster_options(args: argparse.Namespace):
    from .core.pipeline.distributed import BLOCK_COLS, BLOCK_ROWS, ClusterOptions

    return ClusterOptions(
        workers=args.workers,
        threads=args.threads or 1,
        scheduler=args.scheduler,
        resume=args.resume,
        block_rows=args.block_rows or BLOCK_ROWS,
        block_cols=args.block_cols or BLOCK_COLS,
    )


def _add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, help="run blocks of the output on a local Dask cluster of N worker processes")
    p.add_argument("--scheduler", help="run blocks on a running dask.distributed scheduler (tcp://HOST:8786)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted block run (finished blocks are journalled)")
    p.add_argument("--block-rows", type=int, help="output rows per task (default 512; placed on the method's boundaries)")
    p.add_argument("--block-cols", type=int, help="output columns per task (default 4096; placed on the method's boundaries)")


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated years, got '{text}'") from None


def cmd_series(args: argparse.Namespace) -> int:
    from .core.pipeline.series import SeriesRequest, run_series

    request = SeriesRequest(
        dmsp=args.dmsp,
        viirs=args.viirs or [],
        output=args.output,
        per_year_dir=args.per_year_dir,
        years=args.years,
        satellites=args.satellites.split(",") if args.satellites else None,
        viirs_years=args.viirs_years,
        include_viirs=not args.no_viirs_bands,
        temporal_smoothing=not args.no_temporal_smoothing,
        temporal_fit=args.temporal_fit,
        model=args.model,
        seed=args.seed,
        extent=args.extent,
        extent_crs=args.extent_crs,
        overwrite=args.overwrite,
        resume=args.resume,
        device=args.device,
        threads=args.threads,
        batch_size=args.batch_size,
    )
    options = _cluster_options(args) if (args.workers or args.scheduler or args.resume) else None
    result = run_series(request, options, _progress_printer(args.quiet))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({k: result.report[k] for k in ("labels", "year_gains", "year_to_year_ratios", "seam",
                                                     "trend_sign_disagreement")}, indent=2))  # fmt: skip
    for path in ([result.output] if result.output else []) + result.per_year:
        print(f"wrote {path}")
    print(f"wrote {result.report_path}: series report ({result.seconds:.1f} s)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .core.engine.models import available_models

    models = available_models()
    if args.json:
        print(json.dumps([m.as_dict() for m in models], indent=2))
        return 0
    print(f"{'id':<24} {'family':<16} {'precision':<9} {'default':<7} {'variant_of':<22} speed levels / summary")
    for m in models:
        levels = ", ".join(f"{s.level}:{s.sampler}×{s.steps}" for s in m.zoo.speed_levels) if m.zoo else ""
        print(
            f"{m.id:<24} {m.family:<16} {m.precision:<9} {'yes' if m.default else '':<7} {m.variant_of or '':<22} "
            f"{levels or m.summary}"
        )
    return 0


def cmd_intercalibrate(args: argparse.Namespace) -> int:
    from .core.pipeline.calibrate import intercalibrate

    result = intercalibrate(
        args.dmsp, args.output, args.satellite, args.year, args.overwrite, progress=_progress_printer(args.quiet)
    )
    print(f"wrote {result.output}; {result.notes[0]}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .core.pipeline.calibrate import fit_calibration

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FusionError(f"{output} already exists; pass --overwrite to replace it.")
    curve = fit_calibration(args.dmsp, args.viirs, args.satellite, args.year)
    curve.to_json(
        output,
        provenance={
            "dmsp": Path(args.dmsp).name,
            "viirs": [Path(v).name for v in args.viirs],
            "command": " ".join([PROG, *sys.argv[1:]]),
        },
    )
    print(f"wrote {output}: {curve.describe()}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from .core.report.sample import write_sample

    try:
        paths = write_sample(args.out, seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as exc:
        raise FusionError(str(exc)) from exc
    for key, path in paths.items():
        print(f"{key:<9} {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .core.report.compare import compare_rasters

    def line(values: dict) -> str:
        return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())

    scores = compare_rasters(args.prediction, args.truth)
    print(line(scores))
    if args.reference:
        persistence = compare_rasters(args.reference, args.truth)
        print(f"persistence (the reference {args.reference} taken as the answer) vs the truth:")
        print(line(persistence))
        if scores["psnr_log"] < persistence["psnr_log"]:
            # Users must not read a loss to the input they gave as a success: say it, and what to try.
            print(
                f"note: the fused map scores {persistence['psnr_log'] - scores['psnr_log']:.2f} dB below simply copying the "
                "reference: little changed between the two dates where it matters, and the model redraws the map from the "
                "blurry DMSP instead of keeping what the reference shows. `--model reference-change` keeps the reference "
                "and changes only what the DMSP says changed (docs/design_space.md compares them on real imagery)."
            )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """The start-up check of the QGIS plugin, headless; --install runs the same installer as its dialog."""
    from .core.install import dependencies as deps

    target = Path(args.target) if args.target else deps.deps_folder()
    print(f"python       {sys.version.split()[0]} ({sys.executable})")
    print(f"numpy        {deps.numpy_version() or 'missing'}")
    print(f"target       {target}")
    statuses = [deps.check(d) for d in deps.DEPENDENCIES]
    for status in statuses:
        print(f"{status.name:<12} {status.version or 'missing'}" + (f"  ({status.location})" if status.location else ""))
    wanted = [d for d, s in zip(deps.DEPENDENCIES, statuses) if not s.available]
    if args.wheel and not wanted:  # an explicit file: install it even if a copy is importable elsewhere
        wanted = [deps.ONNXRUNTIME]
    if not (args.install or args.wheel):  # a wheel file given is an install request
        if wanted:
            print(f"missing: {', '.join(d.name for d in wanted)}; run `{PROG} doctor --install` to install into {target}")
        return 1 if wanted else 0
    failed = False
    for dependency in wanted:
        result = deps.install(
            dependency, target, wheels=args.wheel or (), log=(lambda line: None) if args.quiet else _stderr_line
        )
        print(f"install {dependency.name}: {'ok' if result.ok else 'FAILED'}\n{result.message}")
        failed |= not result.ok
    if not wanted:
        print("nothing to install")
    return 1 if failed else 0


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Nightlight Fusion: DMSP-OLS + VIIRS DNB fusion, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fuse", help="fuse DMSP (and optionally a VIIRS reference) into VIIRS-like radiance")
    p.add_argument("--dmsp", required=True, help="DMSP-OLS stable lights GeoTIFF (DN 0–63, single band)")
    p.add_argument("--viirs", help="VIIRS DNB reference GeoTIFF (nW/cm²/sr); its grid becomes the output grid")
    p.add_argument("--output", required=True, help="output GeoTIFF (float32 radiance, nW/cm²/sr)")
    p.add_argument("--model", help="model id (see the 'models' command); default: the recommended one")
    p.add_argument("--extent", type=_extent, help="xmin,ymin,xmax,ymax to restrict the area")
    p.add_argument("--extent-crs", help="CRS of --extent (e.g. EPSG:4326); default: the output grid's CRS")
    p.add_argument("--seed", type=int, default=0, help="random seed (generative models)")
    p.add_argument("--speed", type=int, help="speed level of the model (1 = fastest); see 'models'")
    p.add_argument("--sampler", help="explicit sampler (ddpm, ddim, dpmpp_2m, euler, heun, flow_euler, flow_heun)")
    p.add_argument("--steps", type=int, help="explicit number of sampler steps")
    p.add_argument(
        "--strength",
        type=float,
        help="staged warm start: run only this fraction of the steps, starting from "
        "the regression estimate (needs the model's regression partner in the zoo)",
    )
    p.add_argument("--ensemble", type=int, help="average K samples (default 1, or 2 with --uncertainty)")
    p.add_argument("--uncertainty", help="also write the ensemble standard deviation to this GeoTIFF")
    p.add_argument("--temperature", type=float, default=0.8, help="normalizing-flow sampling temperature")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "directml", "coreml"])
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "int8", "fp16"],
        help="model precision: auto (the faster variant that passed the real-imagery gate, measured once on this "
        "machine and cached), or fp32, int8, fp16 (the model's variant of that precision)",
    )
    p.add_argument("--threads", type=int, help="CPU threads for onnxruntime (default: all cores)")
    p.add_argument("--batch-size", type=int, default=8, help="tiles per onnxruntime call")
    p.add_argument("--mask", help="GeoJSON polygons: only pixels inside are written (the rest nodata)")
    p.add_argument(
        "--dmsp-consistency",
        action="store_true",
        help="a last pass that scales the map locally so that, re-simulated to DMSP, it matches the DMSP",
    )
    p.add_argument("--report", help="also write an HTML run report (thumbnails, QA) to this file")
    p.add_argument("--satellite", help="DMSP satellite (F10…F18) if the file name does not say")
    p.add_argument("--year", type=int, help="DMSP year if the file name does not say")
    p.add_argument(
        "--reference-year",
        type=int,
        help="VIIRS reference year if the file name does not say (sets how much of a scene-wide DMSP/reference "
        "difference is read as the sensor rather than change)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    _add_cluster_arguments(p)
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("series", help="one VIIRS-like map per DMSP year (+ real VIIRS years), consistent in time")
    p.add_argument("--dmsp", required=True, nargs="+", help="DMSP files (several satellites per year allowed)")
    p.add_argument("--viirs", nargs="*", help="VIIRS references (year in the name or --viirs-years); nearest in time is used")
    p.add_argument("--output", help="multi-band GeoTIFF, one band per year (band descriptions = years)")
    p.add_argument("--per-year-dir", help="also/instead: one GeoTIFF per year in this folder")
    p.add_argument("--years", type=_int_list, help="year of each DMSP file, comma-separated (default: from the names)")
    p.add_argument("--satellites", help="satellite of each DMSP file, comma-separated (default: from the names)")
    p.add_argument("--viirs-years", type=_int_list, help="year of each VIIRS file (default: from the names)")
    p.add_argument("--no-viirs-bands", action="store_true", help="do not append the real VIIRS years as bands")
    p.add_argument("--no-temporal-smoothing", action="store_true", help="skip the per-year level fit (docs/scale.md)")
    p.add_argument(
        "--temporal-fit",
        choices=["prior", "local-trend"],
        default="prior",
        help="prior: year levels measured from the DMSP via the sensor model, smoothed with the Elvidge gain prior "
        "(default); local-trend: the earlier per-year gain vs a Theil-Sen trend (core/temporal.py)",
    )
    p.add_argument("--model", help="model id (see 'models'); the same model and seed for every year")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extent", type=_extent, help="xmin,ymin,xmax,ymax to restrict the area")
    p.add_argument("--extent-crs")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "directml", "coreml"])
    p.add_argument("--threads", type=int, help="onnxruntime threads (per worker with --workers)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    _add_cluster_arguments(p)
    p.set_defaults(func=cmd_series)

    p = sub.add_parser("models", help="list the models --model accepts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("intercalibrate", help="intercalibrate DMSP DN (Elvidge et al. 2014) on its own grid")
    p.add_argument("--dmsp", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--satellite")
    p.add_argument("--year", type=int)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_intercalibrate)

    p = sub.add_parser("calibrate", help="fit the DN→radiance curve of a DMSP raster against VIIRS (mean of several)")
    p.add_argument("--dmsp", required=True)
    p.add_argument("--viirs", required=True, nargs="+")
    p.add_argument("--output", required=True, help="curve JSON")
    p.add_argument("--satellite")
    p.add_argument("--year", type=int)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("sample", help="write the synthetic DMSP/VIIRS sample")
    p.add_argument("--out", required=True, help="folder")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("compare", help="metrics of a fused raster against a VIIRS truth")
    p.add_argument("prediction")
    p.add_argument("truth")
    p.add_argument("--reference", help="also score this VIIRS reference as the answer (persistence) and say when it wins")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("doctor", help="check (and install) onnxruntime / rasterio for this Python, as the plugin does")
    p.add_argument("--install", action="store_true", help="pip-install what is missing into the plugin's own folder")
    p.add_argument("--wheel", action="append", help="install this downloaded wheel file (offline); repeatable")
    p.add_argument("--target", help="install folder (default: the plugin's _deps folder for this Python)")
    p.add_argument("--quiet", action="store_true", help="no pip log")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no output was written", file=sys.stderr)
        return 130
