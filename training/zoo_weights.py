"""Store a zoo model's float weights in half precision and compute in float32.

python -m training.zoo_weights model_zoo/ [ID ...]

The plugin zip must stay under the plugins.qgis.org limit (25 MB) while it carries one model per family, and
float32 weights barely deflate. Each large float initializer is stored as float16 and cast back to float32 by a
`Cast` node; onnxruntime folds those casts into constants when it builds the session, so inference runs the same
float32 kernels at the same speed, with weights rounded to 11 significant bits (relative error ≤ 2⁻¹¹). The
rounding's effect on the model's raw output is measured on the export parity inputs and recorded in the
manifest (`weights_parity_max_abs`), next to `weights: "fp16"`; the engine reads the file like any other.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Below this size an initializer is a shape, a scalar or a bias: not worth a Cast node.
MIN_ELEMENTS = 256
CAST_SUFFIX = "__fp16"


def store_weights_fp16(src: Path, dst: Path, min_elements: int = MIN_ELEMENTS) -> int:
    """Write `src` to `dst` with its float32 initializers of at least `min_elements` stored as float16 behind a
    Cast to float32. Returns the number of initializers converted; metadata, inputs and outputs are unchanged."""
    model = onnx.load(str(src))
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs or np.prod(init.dims) < min_elements:
            kept.append(init)
            continue
        half = numpy_helper.to_array(init).astype(np.float16)
        kept.append(numpy_helper.from_array(half, init.name + CAST_SUFFIX))
        casts.append(helper.make_node("Cast", [init.name + CAST_SUFFIX], [init.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts come first: the graph stays topologically sorted
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return len(casts)


def weights_are_fp16(path: Path) -> bool:
    return any(init.name.endswith(CAST_SUFFIX) for init in onnx.load(str(path)).graph.initializer)


def parity_inputs(family: str, channels: int, tile: int = 64) -> list[dict[str, np.ndarray]]:
    from .export import PARITY_TIMESTEPS, example_inputs

    steps = PARITY_TIMESTEPS if family in ("diffusion", "flow_matching") else (500.0,)
    return [example_inputs(family, 2, tile, t, seed=int(t), channels=channels) for t in steps]


def output_parity(reference: Path, candidate: Path, family: str) -> float:
    """Max |output(reference) − output(candidate)| over the export parity inputs."""
    import onnxruntime as ort

    ref = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    cand = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
    channels = next(i.shape[1] for i in ref.get_inputs() if i.name == "condition")
    worst = 0.0
    for inputs in parity_inputs(family, int(channels)):
        worst = max(worst, float(np.abs(ref.run(None, inputs)[0] - cand.run(None, inputs)[0]).max()))
    return worst


def convert_entry(zoo: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Convert one manifest entry's file in place (through a temporary file: the original is replaced only after
    the converted model loads and its parity is measured) and return the updated entry."""
    from .export import sha256_of

    path = zoo / entry["file"]
    if entry.get("weights") == "fp16" or weights_are_fp16(path):
        return entry
    if entry["precision"] != "fp32":
        raise SystemExit(f"{entry['id']}: only fp32 models are stored with fp16 weights (this one is {entry['precision']})")
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / path.name
        count = store_weights_fp16(path, converted)
        error = output_parity(path, converted, entry["family"])
        converted.replace(path)
    if entry.get("card") and (zoo / entry["card"]).is_file():
        card = zoo / entry["card"]
        card.write_text(
            card.read_text().rstrip("\n")
            + f"\n- **Storage**: weights stored as float16 and computed in float32 (`python -m training.zoo_weights`, "
            f"{count} tensors); the largest change of the raw output on the export parity inputs is {error:.1e}.\n"
        )
    return {
        **entry,
        "sha256": sha256_of(path),
        "size_bytes": path.stat().st_size,
        "weights": "fp16",
        "weights_converted": count,
        "weights_parity_max_abs": error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.zoo_weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo", type=Path)
    parser.add_argument("ids", nargs="*", help="models to convert (default: every fp32 model in the manifest)")
    args = parser.parse_args(argv)
    manifest_path = args.zoo / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    known = {m["id"] for m in manifest["models"]}
    unknown = sorted(set(args.ids) - known)
    if unknown:
        parser.error(f"{', '.join(unknown)} not in {manifest_path} (known: {', '.join(sorted(known))})")
    wanted = set(args.ids) or {m["id"] for m in manifest["models"] if m["precision"] == "fp32"}
    for i, entry in enumerate(manifest["models"]):
        if entry["id"] in wanted:
            before = entry["size_bytes"]
            manifest["models"][i] = entry = convert_entry(args.zoo, entry)
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")  # after each model: nothing half-done
            print(
                f"{entry['id']}: {before / 1e6:.2f} -> {entry['size_bytes'] / 1e6:.2f} MB, "
                f"max |Δ output| {entry.get('weights_parity_max_abs', 0.0):.2e}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
