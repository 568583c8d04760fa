"""Scale-out throughput: single process vs `--workers 1 --threads 1` vs `--workers 2 --threads 1` (Dask
LocalCluster, blocks of rows), on a synthetic area made by the project's sample code, plus where the
single-process time goes (cProfile over fuse(): input reads and warps, the model, the output write).

python -m benchmarks.bench_dask [--size 1024] [--model unet-fp32] [--block-rows 256]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

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
    """This process's peak resident memory (MB); run on each Dask worker through client.run."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="side of the synthetic VIIRS-grid area (px)")
    parser.add_argument("--model", default="unet-fp32")
    parser.add_argument("--block-rows", type=int, default=256)
    parser.add_argument("--section", default="dask scale-out")
    args = parser.parse_args()
    rows = []
    load = os.getloadavg()[0]  # other jobs on the machine make every figure slower
    with tempfile.TemporaryDirectory() as tmp:
        sample = write_sample(Path(tmp) / "area", size=args.size, seed=11)
        mpx = args.size * args.size / 1e6

        def request(name: str, threads: int | None = 1) -> FuseRequest:
            return FuseRequest(
                dmsp=str(sample["dmsp"]),
                viirs=str(sample["reference"]),
                output=str(Path(tmp) / name),
                model=args.model,
                seed=1,
                threads=threads,
                block_size=256,
            )

        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        fuse(request("single.tif"))
        profile.disable()
        single = time.perf_counter() - started
        phases = phase_times(profile)
        with rasterio.open(Path(tmp) / "single.tif") as src:
            reference = src.read(1)
        rows.append(
            {
                "run": "single process, 1 thread",
                "model": args.model,
                "area": f"{args.size}²",
                "seconds": round(single, 2),
                "mpx_per_min": round(mpx / single * 60, 3),
                "mpx_per_core_hour": round(mpx / single * 3600, 1),
                "identical": True,
                **{f"{k}_s": round(v, 2) for k, v in phases.items()},
            }
        )
        print(rows[-1], flush=True)
        # The plain default (onnxruntime picks its threads, no profiler): what `--workers 2` must not be slower than.
        started = time.perf_counter()
        fuse(request("default.tif", threads=None))
        seconds = time.perf_counter() - started
        rows.append(
            {
                "run": "single process, default threads (no profiler)",
                "model": args.model,
                "area": f"{args.size}²",
                "seconds": round(seconds, 2),
                "mpx_per_min": round(mpx / seconds * 60, 3),
                "mpx_per_core_hour": round(mpx / seconds * 3600 / (os.cpu_count() or 1), 1),
                "identical": True,
                **{f"{k}_s": "" for k in PHASES},
            }
        )
        print(rows[-1], flush=True)
        for workers in (1, 2):
            options = ClusterOptions(workers=workers, threads=1, block_rows=args.block_rows)
            with cluster_client(options) as client:
                started = time.perf_counter()
                fuse_blocks(request(f"w{workers}.tif"), options, client=client)
                seconds = time.perf_counter() - started
                worker_peak = max(client.run(peak_rss_mb).values())
            with rasterio.open(Path(tmp) / f"w{workers}.tif") as src:
                same = bool(np.array_equal(src.read(1), reference, equal_nan=True))
            rows.append(
                {
                    "run": f"--workers {workers} --threads 1",
                    "model": args.model,
                    "area": f"{args.size}²",
                    "seconds": round(seconds, 2),
                    "mpx_per_min": round(mpx / seconds * 60, 3),
                    "mpx_per_core_hour": round(mpx / seconds * 3600 / workers, 1),
                    "identical": same,
                    **{f"{k}_s": "" for k in PHASES},
                    "worker_peak_rss_mb": round(worker_peak, 1),
                }
            )
            print(rows[-1], flush=True)
    rows[0]["note"] = f"cores on this machine: {os.cpu_count()}; load average before the runs: {load:.2f}"
    for r in rows[1:]:
        r["note"] = ""
    record(args.section, rows)


if __name__ == "__main__":
    main()
