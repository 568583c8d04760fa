"""Scale-out: throughput, worker memory in width, and a continental dry run (Dask LocalCluster, 2-D blocks).

python -m benchmarks.bench_dask [--size 1024] [--model unet-fp32] [--block-rows 256]
    single process vs `--workers 1 --threads 1` vs `--workers 2 --threads 1` on a synthetic area made by the
    project's sample code, each band compared with the single process, and where the single-process time goes
    (cProfile over fuse(): input reads and warps, the model, the output write).
python -m benchmarks.bench_dask --strips [--strip-rows 256] [--widths 1024,8192]
    a worker's peak memory for strips of those widths (`--workers 1 --threads 1`, default blocks; median of 3).
python -m benchmarks.bench_dask --continental [--area 10240]
    a synthetic area of area² px (0.1 Gpx by default) with the one-pass default model (unet-fp32, no reference)
    on a LocalCluster of 2 workers: throughput, each worker's peak memory, the cost of a 0.9 Gpx global year.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from nightlight_fusion_plugin.core.pipeline.distributed import ClusterOptions, cluster_client, fuse_blocks
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.raster.grids import AlignedReader
from nightlight_fusion_plugin.core.report.sample import write_sample

from .results import record

PHASES = {  # cProfile function names -> phase (cumulative time; the phases do not nest)
    "read": ("grids.py", "read"),  # AlignedReader.read only: MirroredReader.read wraps it (counted once)
    "model": ("runtime.py", "run"),
    "write": ("output.py", "write"),
    "overviews": ("output.py", "finish"),
}
GLOBAL_YEAR_GPX = 0.9  # lit land at 15″ (docs/scale.md)


def phase_times(profile: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profile).stats
    out = dict.fromkeys(PHASES, 0.0)
    for (filename, line, name), (_, _, _, cumulative, _) in stats.items():
        for phase, (file, func) in PHASES.items():
            nested = phase == "read" and line != AlignedReader.read.__code__.co_firstlineno
            if filename.endswith(file) and name == func and not nested:
                out[phase] += cumulative
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB); run on each Dask worker through client.run. VmHWM, the peak of
    the process's own address space: getrusage's ru_maxrss survives exec, so a worker spawned (fork + exec) by
    this process would report at least what this process held when it started the cluster (earlier figures of
    this bench, made after writing the inputs here, were inflated by that)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """This process's CPU time (user + system), run on each worker: the work done, whatever else the machine ran."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tiled_inputs(out_dir: Path, width: int, height: int, reference: bool = True, seed: int = 11) -> dict[str, Path]:
    """DMSP (30″) and a VIIRS reference (15″) of width × height output pixels, made by repeating the 1024² synthetic
    sample (mirrored every other time, so the tiles meet without seams), written strip by strip."""
    base = write_sample(out_dir / "base", size=1024, seed=seed)
    paths = {}
    for key, path, factor in (("dmsp", base["dmsp"], 2), ("reference", base["reference"], 1)):
        if key == "reference" and not reference:
            continue
        with rasterio.open(path) as src:
            tile, nodata, res, dtype = src.read(1), src.nodata, src.res[0], src.dtypes[0]
        mirrored = np.block([[tile, tile[:, ::-1]], [tile[::-1], tile[::-1, ::-1]]])
        w, h = width // factor, height // factor
        profile = dict(driver="GTiff", width=w, height=h, count=1, dtype=dtype, crs="EPSG:4326", nodata=nodata,
                       transform=from_origin(0.0, 40.0, res, res), tiled=True, blockxsize=256, blockysize=256,
                       compress="deflate", BIGTIFF="IF_SAFER")  # fmt: skip
        paths[key] = out_dir / f"{key}_{width}x{height}.tif"
        with rasterio.open(paths[key], "w", **profile) as dst:
            for row in range(0, h, 512):
                rows = np.arange(row, min(row + 512, h)) % mirrored.shape[0]
                strip = mirrored[rows][:, np.arange(w) % mirrored.shape[1]]
                dst.write(strip.astype(dtype), 1, window=Window(0, row, w, len(rows)))
    return paths


def run_on_cluster(request: FuseRequest, workers: int, cpu: list | None = None, **options) -> tuple[float, list[float]]:
    """(seconds, each worker's peak RSS in MB) of fuse_blocks on a fresh LocalCluster; the workers' CPU seconds
    for the run are appended to `cpu` when given."""
    cluster = ClusterOptions(workers=workers, threads=1, **options)
    with cluster_client(cluster) as client:
        before = sum(client.run(cpu_seconds).values())
        started = time.perf_counter()
        fuse_blocks(request, cluster, client=client)
        seconds = time.perf_counter() - started
        peaks = sorted(client.run(peak_rss_mb).values())
        if cpu is not None:
            cpu.append(sum(client.run(cpu_seconds).values()) - before)
    return seconds, peaks


def throughput(args) -> None:
    rows = []
    load = os.getloadavg()[0]  # other jobs on the machine make every figure slower
    with tempfile.TemporaryDirectory() as tmp:
        sample = write_sample(Path(tmp) / "area", size=args.size, seed=11)
        mpx = args.size * args.size / 1e6

        def request(name: str, threads: int | None = 1) -> FuseRequest:
            return FuseRequest(
                dmsp=str(sample["dmsp"]), viirs=str(sample["reference"]), output=str(Path(tmp) / name),
                model=args.model, seed=1, threads=threads, block_size=256,
            )  # fmt: skip

        def row(run: str, seconds: float, cores: int, identical: bool, **extra) -> None:
            rows.append({"run": run, "model": args.model, "area": f"{args.size}²", "seconds": round(seconds, 2),
                         "mpx_per_min": round(mpx / seconds * 60, 3),
                         "mpx_per_core_hour": round(mpx / seconds * 3600 / cores, 1), "identical": identical,
                         **{f"{k}_s": "" for k in PHASES}, **extra})  # fmt: skip
            print(rows[-1], flush=True)

        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        fuse(request("single.tif"))
        profile.disable()
        row("single process, 1 thread, under cProfile", time.perf_counter() - started, 1, True)
        rows[-1].update({f"{k}_s": round(v, 2) for k, v in phase_times(profile).items()})
        with rasterio.open(Path(tmp) / "single.tif") as src:
            reference = src.read(1)
        # The plain default (onnxruntime picks its threads, no profiler): what `--workers 2` must not be slower than.
        started = time.perf_counter()
        fuse(request("default.tif", threads=None))
        row("single process, default threads (no profiler)", time.perf_counter() - started, os.cpu_count() or 1, True)
        for workers in (1, 2):
            cpu: list[float] = []
            seconds, peaks = run_on_cluster(request(f"w{workers}.tif"), workers, cpu, block_rows=args.block_rows)
            with rasterio.open(Path(tmp) / f"w{workers}.tif") as src:
                same = bool(np.array_equal(src.read(1), reference, equal_nan=True))
            row(f"--workers {workers} --threads 1", seconds, workers, same, worker_peak_rss_mb=round(max(peaks), 1),
                workers_cpu_s=round(cpu[0], 1))  # fmt: skip
    rows[0]["note"] = f"cores on this machine: {os.cpu_count()}; load average before the runs: {load:.2f}"
    for r in rows[1:]:
        r["note"] = ""
    record(args.section, rows)


def strips(args) -> None:
    """Worker peak memory against the area's width: the same rows, 1024 and 8192 columns, on one worker (which then
    runs every block), each run on a fresh cluster, `--repeats` times (a worker's peak moves by tens of MB from run
    to run with how the allocator reuses freed memory): the median and the range."""
    rows = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            inputs = tiled_inputs(Path(tmp) / f"w{width}", width, args.strip_rows)
            for model in args.strip_models:
                request = FuseRequest(dmsp=str(inputs["dmsp"]), viirs=str(inputs["reference"]), model=model, seed=1,
                                      output=str(Path(tmp) / f"{model}_{width}.tif"), overwrite=True)  # fmt: skip
                runs = [run_on_cluster(request, 1) for _ in range(args.repeats)]
                peaks = sorted(max(p) for _, p in runs)
                rows.append({"model": model, "area": f"{width}×{args.strip_rows}",
                             "seconds": round(float(np.median([s for s, _ in runs])), 1),
                             "worker_peak_rss_mb": round(float(np.median(peaks)), 0),
                             "runs_mb": " / ".join(f"{p:.0f}" for p in peaks),
                             "blocks": "default (512 rows × 4096 columns), --workers 1 --threads 1"})  # fmt: skip
                print(rows[-1], flush=True)
    for model in args.strip_models:
        mine = [r["worker_peak_rss_mb"] for r in rows if r["model"] == model]
        rows.append({"model": model, "area": f"ratio {args.widths[-1]} / {args.widths[0]} wide", "seconds": "",
                     "worker_peak_rss_mb": round(mine[-1] / mine[0], 3), "runs_mb": "", "blocks": ""})  # fmt: skip
        print(rows[-1], flush=True)
    rows[0]["note"] = f"cores: {os.cpu_count()}; load average before the runs: {load:.2f}"
    record(args.section if args.section != "dask scale-out" else "dask worker memory in width", rows)


def continental(args) -> None:
    """The one-pass default without a reference over args.area² px on two workers (a dry run of a global year)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        made = time.perf_counter()
        inputs = tiled_inputs(Path(tmp), args.area, args.area, reference=False)
        made = time.perf_counter() - made
        request = FuseRequest(dmsp=str(inputs["dmsp"]), output=str(Path(tmp) / "continent.tif"), seed=1)
        cpu: list[float] = []
        seconds, peaks = run_on_cluster(request, 2, cpu)
        size = os.path.getsize(request.output)
    mpx = args.area * args.area / 1e6
    per_core_hour = mpx / seconds * 3600 / 2
    per_cpu_hour = mpx / cpu[0] * 3600  # what a core that ran only this would do (the machine may be shared)
    row = {
        "area": f"{args.area}² px ({mpx / 1000:.3f} Gpx)",
        "model": "default without a reference (unet-fp32)",
        "workers": "2 × 1 thread (LocalCluster)",
        "seconds": round(seconds, 1),
        "mpx_per_min": round(mpx / seconds * 60, 2),
        "mpx_per_core_hour": round(per_core_hour, 1),
        "worker_peak_rss_mb": " / ".join(f"{p:.0f}" for p in peaks),
        "client_peak_rss_mb": round(peak_rss_mb(), 0),
        "output_mb": round(size / 1e6, 1),
        "workers_cpu_s": round(cpu[0], 1),
        "mpx_per_cpu_hour": round(per_cpu_hour, 1),
        "global_year_core_hours": round(GLOBAL_YEAR_GPX * 1000 / per_core_hour, 2),
        "global_year_cpu_hours": round(GLOBAL_YEAR_GPX * 1000 / per_cpu_hour, 2),
        "global_year_hours_on_these_2_workers": round(GLOBAL_YEAR_GPX * 1000 / mpx * seconds / 3600, 2),
        "note": f"inputs made in {made:.0f} s; cores: {os.cpu_count()}; load average before: {load:.2f}",
    }
    print(row, flush=True)
    record(args.section if args.section != "dask scale-out" else f"continental dry run, {args.area}²", [row])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="side of the synthetic VIIRS-grid area (px)")
    parser.add_argument("--model", default="unet-fp32")
    parser.add_argument("--block-rows", type=int, default=256)
    parser.add_argument("--section", default="dask scale-out")
    parser.add_argument("--strips", action="store_true", help="worker peak memory against the area's width")
    parser.add_argument("--strip-rows", type=int, default=512)
    parser.add_argument("--widths", type=lambda s: [int(v) for v in s.split(",")], default=[1024, 8192])
    parser.add_argument("--strip-models", type=lambda s: s.split(","), default=["unet-fp32", "reference-change"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per strip and model (fresh cluster each)")
    parser.add_argument("--continental", action="store_true", help="the dry run of a global year")
    parser.add_argument("--area", type=int, default=10240, help="side of the continental dry run's area (px)")
    parser.add_argument("--tmp", default=None, help="where the dry run's inputs and output go (~0.5 GB at 10240²)")
    args = parser.parse_args()
    if args.strips:
        strips(args)
    elif args.continental:
        continental(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
