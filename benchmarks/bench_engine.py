"""Engine benchmarks (issue targets; never timed tests):
  - int8 vs fp32 of the same model, same sampler/NFE: speed-up (target ≥ 1.8×) and PSNR loss (≤ 0.2 dB)
  - throughput at the default speed level on a 1024×1024 VIIRS-grid area (target ≥ 1 Mpx/min)
  - peak memory for 512² vs 2048² outputs (target: ≤ +30 %)
  - the model's FLOPs per pixel per evaluation and the distance from this CPU's peak
  - the engine against the same model in PyTorch with the equivalent diffusers scheduler (--checkpoint)

python -m benchmarks.bench_engine [--model ID] [--checkpoint RUN_DIR] [--zoo DIR]
python -m benchmarks.bench_engine --prefetch-only [--model unet-fp32] [--size 2048] [--reps 1]
  (only the band prefetch of methods/generative.py: end to end with it on and off against the bare network)
Inputs: the bundled synthetic sample tiled to 2160×2160 VIIRS pixels (with its truth).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from nightlight_fusion_plugin.core.engine.zoo import load_manifest
from nightlight_fusion_plugin.core.report.metrics import psnr_log

from .results import record

SAMPLE = Path(__file__).resolve().parents[1] / "nightlight_fusion_plugin" / "sample_data"
REPS = 9
INT8_AREA = 1536  # issue #20: int8 end to end on an area of at least 1536²


def tiled_inputs(directory: Path) -> dict[str, Path]:
    """The sample repeated 9×9 (a 2160² VIIRS area) so the sizes below fit inside it."""
    out = {}
    for key, name in (
        ("dmsp", "dmsp_F15_2005_sample.tif"),
        ("reference", "viirs_2015_reference_sample.tif"),
        ("truth", "viirs_2005_truth_sample.tif"),
    ):
        with rasterio.open(SAMPLE / name) as src:
            data, profile = np.tile(src.read(1), (REPS, REPS)), src.profile
            res = src.res[0]
        profile.update(
            width=data.shape[1],
            height=data.shape[0],
            transform=from_origin(0.0, float(REPS), res, res),
            tiled=True,
            blockxsize=256,
            blockysize=256,
        )
        out[key] = directory / name
        with rasterio.open(out[key], "w", **profile) as dst:
            dst.write(data, 1)
    return out


def run_fuse(inputs: dict[str, Path], output: Path, size: int, setup: str = "", **options) -> dict:
    """One engine run in a fresh process: wall time and peak RSS of that process alone (`setup`: a line of code
    run before it, e.g. a module switch)."""
    extent = (0.05, REPS - 0.05 - size / 240, 0.05 + size / 240, REPS - 0.05)
    code = (
        "import json, resource, time, sys\n"
        f"{setup}\n"
        "from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse\n"
        f"req = FuseRequest(dmsp={str(inputs['dmsp'])!r}, viirs={str(inputs['reference'])!r}, output={str(output)!r},"
        f" overwrite=True, extent={extent!r}, extent_crs='EPSG:4326', **{options!r})\n"
        "t = time.perf_counter(); r = fuse(req); s = time.perf_counter() - t\n"
        "print(json.dumps({'seconds': s, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'device': r.device, 'sampler': r.sampler, 'width': r.grid.width, 'height': r.grid.height}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ},
        cwd=Path(__file__).resolve().parents[1],
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def psnr_against_truth(output: Path, truth: Path) -> float:
    with rasterio.open(output) as a, rasterio.open(truth) as t:
        window = rasterio.windows.from_bounds(*a.bounds, transform=t.transform)
        truth_values = t.read(1, window=window.round_offsets().round_lengths())
        values = a.read(1)
    h, w = min(values.shape[0], truth_values.shape[0]), min(values.shape[1], truth_values.shape[1])
    ok = np.isfinite(values[:h, :w]) & np.isfinite(truth_values[:h, :w])
    return psnr_log(values[:h, :w][ok], truth_values[:h, :w][ok])


def flops_per_pixel(onnx_path: Path, tile: int = 64) -> float:
    """Multiply-accumulates ×2 of every Conv/Gemm per output pixel, from the graph with a fixed tile size."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(onnx_path))
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            d.dim_value = 1 if i == 0 else (tile if i >= 2 else d.dim_value)
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    shapes.update({v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.output})
    weights = {w.name: list(w.dims) for w in inferred.graph.initializer}
    for node in inferred.graph.node:  # float16-stored weights reach the Conv through a Cast (zoo_weights)
        if node.op_type in ("Cast", "DequantizeLinear") and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    total = 0.0
    for node in inferred.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights and node.output[0] in shapes:
            cout, cin_g, kh, kw = weights[node.input[1]]
            out = shapes[node.output[0]]
            total += 2.0 * cout * cin_g * kh * kw * out[2] * out[3]
        elif node.op_type == "Gemm" and node.input[1] in weights:
            a, b = weights[node.input[1]]
            total += 2.0 * a * b
    return total / (tile * tile)


def session_seconds(path: Path, inputs: dict[str, np.ndarray], reps: int = 5) -> tuple[float, np.ndarray]:
    """Median seconds of one onnxruntime run (CPU, all cores, as the engine configures it) and its output."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feed = {k: v for k, v in inputs.items() if k in names}
    out = session.run(None, feed)[0]
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return float(np.median(times)), out


def dynamic_quantization_row(fp32: Path, static_int8: Path | None, tmp: Path) -> dict:
    """Dynamic int8 (weights only, ConvInteger) against fp32 and the shipped static QDQ int8 on one batch of
    eight 64×64 tiles: the measurement behind choosing static quantization."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    inputs = {
        "condition": rng.uniform(-1, 1, (8, 3, 64, 64)).astype(np.float32),
        "sample": rng.standard_normal((8, 1, 64, 64)).astype(np.float32),
        "timestep": np.full(8, 500.0, np.float32),
    }
    dynamic = tmp / "dynamic.onnx"
    try:
        quantize_dynamic(str(fp32), str(dynamic), weight_type=QuantType.QInt8)
    except ValueError as exc:  # weights stored in float16 reach the convolutions through Cast nodes
        return {
            "what": "dynamic int8 (ConvInteger) vs fp32",
            "value": float("nan"),
            "unit": "×",
            "target": f"not measured: {str(exc)[:80]} (float16-stored weights)",
            "met": "",
        }
    t_fp32, y_fp32 = session_seconds(fp32, inputs)
    try:
        t_dyn, y_dyn = session_seconds(dynamic, inputs)
    except Exception as exc:  # ConvInteger lacks kernels for some type combinations
        return {
            "what": "dynamic int8 (ConvInteger) vs fp32",
            "value": float("nan"),
            "unit": "×",
            "target": f"static QDQ chosen: dynamic does not run ({str(exc)[:80]})",
            "met": "",
        }
    note = f"mean |Δ| vs fp32 {float(np.abs(y_dyn - y_fp32).mean()):.4f}"
    if static_int8 is not None:
        t_static, y_static = session_seconds(static_int8, inputs)
        note += f"; static QDQ: {t_fp32 / t_static:.2f}×, mean |Δ| {float(np.abs(y_static - y_fp32).mean()):.4f}"
    return {
        "what": "dynamic int8 (ConvInteger) speed-up over fp32, one batch of 8 tiles",
        "value": t_fp32 / t_dyn,
        "unit": "×",
        "target": note,
        "met": "",
    }


def cpu_peak_gflops() -> tuple[float, str]:
    """Peak fp32 throughput assuming 2 AVX-512 FMA units per core (32 FLOP/cycle/unit)."""
    mhz = 0.0
    flags = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("cpu MHz") and not mhz:
                mhz = float(line.split(":")[1])
            if line.startswith("flags") and not flags:
                flags = line
    per_cycle = 64 if "avx512f" in flags else 32
    isa = "AVX-512" if "avx512f" in flags else "AVX2"
    isa += " VNNI" if "avx512_vnni" in flags else ""
    isa += " AMX" if "amx_tile" in flags else ""
    return (os.cpu_count() or 1) * mhz / 1000 * per_cycle, isa


def bare_network_mpx_per_min(path: Path, tile: int = 256, batch: int = 2, reps: int = 5) -> float:
    """The network alone through the engine's own session (runtime.load_model: same threads and options) on
    `batch` tiles of tile² pixels: median Mpx/min of `reps` runs after one warm-up."""
    from nightlight_fusion_plugin.core.engine.runtime import load_model

    model = load_model(path, "cpu")
    rng = np.random.default_rng(0)
    feed = {}
    for spec in model.session.get_inputs():
        if spec.name == "timestep":
            feed[spec.name] = np.full(batch, 500.0, np.float32)
        elif spec.name == "condition":
            feed[spec.name] = rng.uniform(-1, 1, (batch, spec.shape[1], tile, tile)).astype(np.float32)
        else:  # sample / latent
            feed[spec.name] = rng.standard_normal((batch, 1, tile, tile)).astype(np.float32)
    model.run(**feed)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        model.run(**feed)
        times.append(time.perf_counter() - started)
    return batch * tile * tile / 1e6 / (float(np.median(times)) / 60)


def prefetch_rows(inputs: dict[str, Path], tmp: Path, model_id: str = "unet-fp32", size: int = 2048, reps: int = 1) -> list[dict]:
    """Issue #20's engine target for the band prefetch of methods/generative.py: `fuse` end to end on size² with
    the prefetch on and off (each run a fresh process, alternating, fastest of `reps` each), against the bare
    network on 2 × 256² tiles in the same run (target: end to end ≥ 75 % of it). The two outputs must be
    byte-identical. The 1-minute load average is recorded: on a shared machine the ratios are what to compare."""
    model = {m.id: m for m in load_manifest()}[model_id]
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(reps):
        for on in (False, True):
            setup = f"import nightlight_fusion_plugin.core.methods.generative as g; g.PREFETCH = {on}"
            run = run_fuse(inputs, tmp / f"prefetch-{on}.tif", size, setup=setup, model=model_id)
            seconds[on].append(run["seconds"])
    bare = bare_network_mpx_per_min(model.path)
    with rasterio.open(tmp / "prefetch-True.tif") as a, rasterio.open(tmp / "prefetch-False.tif") as b:
        identical = a.read(1).tobytes() == b.read(1).tobytes()
    load = f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    rows = []
    for on in (True, False):
        mpx = size * size / 1e6 / (min(seconds[on]) / 60)
        label = "on" if on else "off"
        rows.append(
            {
                "what": f"end to end, {size}², {model_id}, prefetch {label}",
                "value": mpx,
                "unit": "Mpx/min",
                "target": f"{min(seconds[on]):.1f} s; {load}",
                "met": "",
            }
        )
        rows.append(
            {
                "what": f"end to end / bare network (2 × 256² tiles, {bare:.1f} Mpx/min), prefetch {label}",
                "value": mpx / bare,
                "unit": "fraction",
                "target": "≥ 0.75",
                "met": mpx / bare >= 0.75,
            }
        )
    rows.append(
        {
            "what": "prefetch speed-up (time off / time on); outputs byte-identical",
            "value": min(seconds[False]) / min(seconds[True]),
            "unit": "×",
            "target": "> 1, identical",
            "met": identical,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="zoo model id (default: the zoo's default model)")
    parser.add_argument("--zoo", help="model zoo directory (default: model_zoo/)")
    parser.add_argument(
        "--checkpoint",
        help="training run of the same model, for the PyTorch + diffusers comparison "
        "(default: the checkpoint named in the model's manifest provenance, when it exists here)",
    )
    parser.add_argument("--section", default="engine", help="name of the results section (one per benchmarked model)")
    parser.add_argument("--prefetch-only", action="store_true", help="only the band prefetch: end to end on/off vs network")
    parser.add_argument("--size", type=int, default=2048, help="--prefetch-only: output side in VIIRS pixels")
    parser.add_argument("--reps", type=int, default=1, help="--prefetch-only: runs each way (the fastest counts)")
    args = parser.parse_args()
    if args.zoo:
        os.environ["NLF_MODEL_ZOO"] = str(Path(args.zoo).resolve())
    if args.prefetch_only:
        with tempfile.TemporaryDirectory() as tmp:
            rows = prefetch_rows(tiled_inputs(Path(tmp)), Path(tmp), args.model or "unet-fp32", args.size, args.reps)
        record("engine, prefetch", rows)
        for row in rows:
            print(row)
        return
    zoo = {m.id: m for m in load_manifest()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = tiled_inputs(Path(tmp))
        model = zoo.get(args.model) if args.model else next((m for m in zoo.values() if m.default), None)
        name = model.id if model else "baseline"
        exact = {"precision": model.precision} if model is not None else {}  # this file, not the auto choice
        for size in (512, 2048):
            run = run_fuse(inputs, Path(tmp) / f"mem{size}.tif", size, model=name, **exact)
            rows.append(
                {
                    "what": f"peak RSS, {size}² output, {name}",
                    "value": run["peak_rss_mb"],
                    "unit": "MB",
                    "target": "2048² ≤ 1.3 × 512²",
                    "met": "",
                }
            )
        rows[-1]["met"] = rows[-1]["value"] <= 1.3 * rows[-2]["value"]
        if model is not None and not (model.speed(None) and model.speed(None).sampler):  # one-pass models
            end_to_end = 2048 * 2048 / 1e6 / (run["seconds"] / 60)
            bare = bare_network_mpx_per_min(model.path)
            rows.append(
                {
                    "what": f"end to end 2048² ({end_to_end:.1f} Mpx/min) / bare network on 2 × 256² tiles "
                    f"({bare:.1f} Mpx/min), {name}",
                    "value": end_to_end / bare,
                    "unit": "fraction",
                    "target": "≥ 0.75",
                    "met": end_to_end / bare >= 0.75,
                }
            )
        run = run_fuse(inputs, Path(tmp) / "speed.tif", 1024, model=name, **exact)
        mpx_per_min = 1024 * 1024 / 1e6 / (run["seconds"] / 60)
        rows.append(
            {
                "what": f"throughput, 1024², {name} at its default speed ({run['sampler'] or 'traditional'})",
                "value": mpx_per_min,
                "unit": "Mpx/min",
                "target": "≥ 1 Mpx/min (1024² in ≤ 60 s)",
                "met": mpx_per_min >= 1.0,
            }
        )
        if model is not None:
            fp32_file = zoo[model.variant_of].path if model.variant_of in zoo else model.path  # QDQ hides conv weights
            flops = flops_per_pixel(fp32_file)
            peak, isa = cpu_peak_gflops()
            level = model.speed(None)
            nfe = level.nfe if level else 1
            achieved = flops * nfe * 1024 * 1024 / run["seconds"] / 1e9
            rows.append(
                {
                    "what": f"FLOPs per pixel per evaluation ({model.id})",
                    "value": flops,
                    "unit": "FLOP/px",
                    "target": "",
                    "met": "",
                }
            )
            rows.append(
                {
                    "what": f"achieved vs CPU peak ({isa}, {peak:.0f} GFLOP/s assumed)",
                    "value": achieved / peak,
                    "unit": "fraction of peak",
                    "target": "",
                    "met": "",
                }
            )
            fp32 = zoo.get(model.variant_of) if model.variant_of else None
            int8 = next((m for m in zoo.values() if m.variant_of == model.id and m.precision == "int8"), None)
            pair = (fp32, model) if model.precision == "int8" and fp32 else (model, int8)
            if pair[0]:
                rows.append(dynamic_quantization_row(pair[0].path, pair[1].path if pair[1] else None, Path(tmp)))
            if pair[0] and pair[1]:
                opts = {"sampler": level.sampler, "steps": level.steps} if level and level.sampler else {}
                timed = {}
                for m in pair:
                    out = Path(tmp) / f"{m.id}.tif"
                    timed[m.precision] = (  # issue #20: end to end on at least 1536²
                        run_fuse(inputs, out, INT8_AREA, model=m.id, precision=m.precision, **opts)["seconds"],
                        psnr_against_truth(out, inputs["truth"]),
                    )
                speedup = timed["fp32"][0] / timed["int8"][0]
                loss = timed["fp32"][1] - timed["int8"][1]
                rows.append(
                    {
                        "what": f"int8 speed-up over fp32 end to end, {INT8_AREA}² ({pair[0].id} vs {pair[1].id})",
                        "value": speedup,
                        "unit": "×",
                        "target": "≥ 1.8×",
                        "met": speedup >= 1.8,
                    }
                )
                rows.append(
                    {
                        "what": "int8 PSNR loss vs fp32 (log radiance, against the sample's truth)",
                        "value": loss,
                        "unit": "dB",
                        "target": "≤ 0.2 dB",
                        "met": loss <= 0.2,
                    }
                )
            checkpoint = args.checkpoint or provenance_checkpoint(model)
            if checkpoint:
                rows.append(torch_comparison(checkpoint, inputs, run["seconds"], level, engine_tiling(model.path)))
    record(args.section, rows)
    for row in rows:
        print(row)


def engine_tiling(path: Path) -> tuple[int, int]:
    """(tile, overlap) the engine runs this model with: its ONNX metadata (nlf_inference_tile/_overlap, norm-free
    networks), else the 64-pixel tiles every 48 pixels of tile-dependent (GroupNorm) ones."""
    from nightlight_fusion_plugin.core.engine.runtime import load_model

    meta = load_model(path, "cpu").metadata
    return int(meta.inference_tile or 64), int(meta.inference_overlap if meta.inference_overlap is not None else 16)


def provenance_checkpoint(model) -> str | None:
    """The training checkpoint the model (or the fp32 model it was quantized from) was exported from."""
    import json

    entries = {m["id"]: m for m in json.loads((Path(model.zoo_dir) / "manifest.json").read_text())["models"]}
    entry = entries.get(model.id, {})
    path = (entry.get("provenance") or {}).get("checkpoint")
    return path if path and Path(path).exists() else None


def torch_comparison(checkpoint: str, inputs: dict[str, Path], engine_seconds: float, level, tiling=(64, 16)) -> dict:
    """The same model in PyTorch eager (CPU, fp32, torch's own thread count) with diffusers' scheduler over the
    tiles the engine runs on a 1024² area (its tile and overlap: `tiling`), batches of 8 (2 for tiles ≥ 256²);
    no reading or blending, so the comparison favours PyTorch."""
    import torch

    from training.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(checkpoint)
    tile, overlap = tiling
    stride = tile - overlap
    tiles = (-(-(1024 - overlap) // stride)) ** 2
    batch = 2 if tile >= 256 else 8
    generator = torch.Generator().manual_seed(0)
    condition = torch.rand(batch, model.in_channels, tile, tile, generator=generator) * 2 - 1
    steps = level.steps if level and level.sampler else 1
    started = time.perf_counter()
    with torch.no_grad():
        for _ in range(0, tiles, batch):
            if model.family in ("diffusion", "flow_matching"):
                from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

                scheduler = (
                    DDIMScheduler(**model.scheduler_config())
                    if model.family == "diffusion"
                    else FlowMatchEulerDiscreteScheduler(**model.scheduler_config())
                )
                scheduler.set_timesteps(steps)
                x = torch.randn(batch, 1, tile, tile)
                # staged levels (strength < 1) run only the last steps × strength timesteps, as the engine does
                strength = level.strength if level and level.sampler else 1.0
                timesteps = scheduler.timesteps[steps - max(1, round(steps * strength)) :]
                scale = 1000 if model.family == "flow_matching" else 1
                if strength < 1:
                    model(x, torch.full((batch,), float(timesteps[0])) / scale, condition)
                for t in timesteps:
                    tt = torch.full((batch,), float(t))
                    out = model(x, tt / 1000 if model.family == "flow_matching" else tt, condition)
                    x = scheduler.step(out, t, x).prev_sample
            else:
                model.sample(condition)
    seconds = time.perf_counter() - started
    return {
        "what": f"PyTorch eager + diffusers, same model and steps, 1024² ({tiles} tiles of {tile}²)",
        "value": seconds / engine_seconds,
        "unit": "× engine time",
        "target": "≥ 1.5 (engine faster)",
        "met": seconds >= 1.5 * engine_seconds,
    }


if __name__ == "__main__":
    main()
