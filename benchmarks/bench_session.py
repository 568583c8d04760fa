"""onnxruntime session options and batching for the engine's one-pass network, measured (issue #20): the bare
network's throughput through sessions built like engine/runtime.py's, with intra-op spinning on and off, over tile
sizes and batches, interleaved (two rounds, the faster of each counts) so a loaded machine biases no setting.

python -m benchmarks.bench_session [--model ID] [--zoo DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nightlight_fusion_plugin.core.engine.zoo import load_manifest

from .results import record

SETTINGS = [(256, 1), (256, 2), (256, 4), (256, 8), (512, 1), (128, 8)]  # (tile, batch)


def session(path: Path, spinning: bool, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def sweep(path: Path, threads: int, rounds: int = 2) -> dict[tuple[int, int, bool], float]:
    """{(tile, batch, spinning): Mpx/min} of the network alone (condition-only models), best of `rounds`."""
    sessions = {spin: session(path, spin, threads) for spin in (False, True)}
    channels = sessions[False].get_inputs()[0].shape[1]
    rng = np.random.default_rng(0)
    best: dict[tuple[int, int, bool], float] = {}
    for _ in range(rounds):
        for (tile, batch), spin in itertools.product(SETTINGS, (False, True)):
            feed = {"condition": rng.uniform(-1, 1, (batch, channels, tile, tile)).astype(np.float32)}
            sessions[spin].run(None, feed)
            repeats = max(1, 4 * 256 * 256 // (batch * tile * tile))
            started = time.perf_counter()
            for _ in range(repeats):
                sessions[spin].run(None, feed)
            mpx = repeats * batch * tile * tile / 1e6 / ((time.perf_counter() - started) / 60)
            best[(tile, batch, spin)] = max(best.get((tile, batch, spin), 0.0), mpx)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="zoo id of a one-pass (condition-only) model (default: the zoo's default)")
    parser.add_argument("--zoo", help="model zoo directory (default: model_zoo/)")
    args = parser.parse_args()
    if args.zoo:
        os.environ["NLF_MODEL_ZOO"] = str(Path(args.zoo).resolve())
    zoo = {m.id: m for m in load_manifest()}
    model = zoo[args.model] if args.model else next(m for m in zoo.values() if m.default)
    threads = os.cpu_count() or 1
    best = sweep(model.path, threads)
    load = f"load avg {os.getloadavg()[0]:.1f} on {threads} cores"
    engine = best[(256, 2, False)]  # what engine/runtime.py runs: spinning off, batches capped at two 256² tiles
    rows = [
        {
            "what": f"{model.id}, {tile}² × {batch}, spinning {'on' if spin else 'off'}",
            "value": mpx,
            "unit": "Mpx/min",
            "target": f"vs engine's setting: {mpx / engine:.2f}×; {load}",
            "met": "",
        }
        for (tile, batch, spin), mpx in sorted(best.items())
    ]
    record(f"engine, session options ({model.id})", rows)
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
