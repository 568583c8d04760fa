"""Which precision of a zoo model runs: fp32, or a quantized variant that passed `make report`'s real-imagery gate.

int8 pays on CPUs with VNNI or AMX and may not elsewhere; fp16 pays on GPUs (CUDA, DirectML), not on CPUs. So
`auto` measures once, on this machine: one tile of the model's inference size through each candidate, the
fastest wins. The choice is cached in a small JSON file keyed by the machine (CPU model and flags, cores,
onnxruntime version, device) and the files' sha256: a profile copied from another machine, or a replaced model,
is measured again, never trusted. Explicit fp32/int8/fp16 run that variant or say which exist.

A variant is a manifest entry with `variant_of` naming the fp32 model and its own `precision`; the manifest holds
only variants that passed the gate (`make report` removes the others).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .zoo import ZooModel, load_manifest

PRECISIONS = ("auto", "fp32", "int8", "fp16")
GPU_DEVICES = ("cuda", "directml")
CACHE_FILE = "precision_choice.json"


@dataclass(frozen=True)
class PrecisionChoice:
    model: ZooModel
    reason: str  # why this variant ran (tagged NLF_PRECISION, shown by the dialog)


def variants(model: ZooModel, zoo: list[ZooModel] | None = None) -> dict[str, ZooModel]:
    """precision -> zoo entry for the model's fp32 root and every variant of it (the model may be either)."""
    zoo = load_manifest(model.zoo_dir) if zoo is None else zoo
    root = model.variant_of or model.id
    found = {m.precision: m for m in zoo if m.id == root or m.variant_of == root}
    found.setdefault(model.precision, model)
    return found


def machine_fingerprint(device: str) -> str:
    """What makes a speed measurement valid elsewhere: CPU model and ISA flags, core count, onnxruntime, device."""
    cpu, flags = platform.processor(), ""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    try:
        info: dict[str, str] = {}
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "flags"):
                    info.setdefault(key.strip(), value.strip())
        cpu = info.get("model name") or cpu
        flags = " ".join(f for f in info.get("flags", "").split() if f in wanted)
    except OSError:
        pass
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "none"
    text = f"{platform.machine()}|{cpu}|{flags}|{os.cpu_count()}|onnxruntime {ort_version}|{device}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """NLF_CACHE_DIR, else the platform's user cache folder (XDG on Linux, LOCALAPPDATA on Windows)."""
    if os.environ.get("NLF_CACHE_DIR"):
        return Path(os.environ["NLF_CACHE_DIR"])
    base = os.environ.get("LOCALAPPDATA") or os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "nightlight_fusion"


class ChoiceCache:
    """The measured choices, one JSON file; unreadable or foreign content is ignored (then re-measured)."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.path = Path(folder or default_cache_dir()) / CACHE_FILE

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> dict | None:
        entry = self._load().get(key)
        return entry if isinstance(entry, dict) and "precision" in entry else None

    def put(self, key: str, entry: dict) -> None:
        data = self._load()
        data[key] = entry
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only profile: the choice is measured again next time, nothing breaks


def seconds_per_tile(model: ZooModel, device: str, threads: int | None, repeats: int = 2) -> float:
    """Time of one network evaluation on one tile of the model's inference size (zeros; the first call warms up)."""
    from .runtime import OnnxModel
    from .transforms import CONDITION_CHANNELS, condition_version

    session = OnnxModel(model.path, device, threads, model.sha256)
    meta = session.metadata
    tile = int(meta.inference_tile or meta.tile_size)
    channels = len(CONDITION_CHANNELS[condition_version(meta.extra)])
    feed = {"condition": np.zeros((1, channels, tile, tile), np.float32)}
    if "sample" in session.input_names:
        feed.update(sample=np.zeros((1, 1, tile, tile), np.float32), timestep=np.array([500.0], np.float32))
    if "latent" in session.input_names:
        feed["latent"] = np.zeros((1, 1, tile, tile), np.float32)
    session.run(**feed)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(**feed)
        best = min(best, time.perf_counter() - started)
    return best


def _auto_candidates(found: dict[str, ZooModel], device: str) -> tuple[dict[str, ZooModel], str]:
    """The variants auto times on `device` (fp16 only on a GPU) and the cache key of that measurement."""
    candidates = {p: m for p, m in found.items() if p == "fp32" or p == "int8" or (p == "fp16" and device in GPU_DEVICES)}
    key = f"{machine_fingerprint(device)}|" + ",".join(f"{p}:{m.sha256[:12]}" for p, m in sorted(candidates.items()))
    return candidates, key


def cached_choice(model: ZooModel, device: str, cache: ChoiceCache | None = None) -> PrecisionChoice | None:
    """auto's choice if it was measured on this machine already (nothing is timed here: the dialog predicts run
    times with it); None when it was not."""
    candidates, key = _auto_candidates(variants(model), device)
    known = (cache or ChoiceCache()).get(key)
    if known and known["precision"] in candidates:
        return PrecisionChoice(candidates[known["precision"]], f"{known['precision']} (auto, measured here: {known['why']})")
    return None


def choose(
    model: ZooModel,
    requested: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    cache: ChoiceCache | None = None,
    timer=seconds_per_tile,
) -> PrecisionChoice:
    """The variant to run for `requested` (auto, fp32, int8, fp16) on `device` (the resolved one)."""
    requested = (requested or "auto").lower()
    if requested not in PRECISIONS:
        raise InputError(f"Unknown precision '{requested}': use {', '.join(PRECISIONS)}.")
    found = variants(model)
    root = model.variant_of or model.id
    if requested != "auto":
        if requested not in found:
            raise InputError(
                f"Model {root} has no {requested} variant (it has: {', '.join(sorted(found))}); choose one of those "
                "or --precision auto."
            )
        return PrecisionChoice(found[requested], f"{requested} (asked for)")
    if model.variant_of:  # a variant named explicitly as --model: that one
        return PrecisionChoice(model, f"{model.precision} (the model asked for)")
    candidates, key = _auto_candidates(found, device)
    if len(candidates) < 2:
        return PrecisionChoice(found.get("fp32", model), "fp32 (no quantized variant for this device)")
    cache = cache or ChoiceCache()
    known = cached_choice(model, device, cache)
    if known is not None:
        return known
    timings: dict[str, float] = {}
    broken: list[str] = []
    for precision, candidate in sorted(candidates.items()):
        try:
            timings[precision] = timer(candidate, device, threads)
        except InputError as exc:  # a corrupt or replaced variant file: never chosen, fp32 stays
            broken.append(f"{candidate.file}: {exc}")
    if "fp32" not in timings:
        return PrecisionChoice(found.get("fp32", model), "fp32 (auto: the variants could not be timed)")
    best = min(timings, key=timings.get)
    why = ", ".join(f"{p} {1000 * s:.1f} ms/tile" for p, s in sorted(timings.items()))
    if broken:  # said, not cached: a repaired file is measured next time
        return PrecisionChoice(candidates[best], f"{best} (auto, measured here: {why}; skipped {'; '.join(broken)})")
    cache.put(key, {"precision": best, "why": why, "measured": time.strftime("%Y-%m-%d")})
    return PrecisionChoice(candidates[best], f"{best} (auto, measured here: {why})")
