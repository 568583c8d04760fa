"""The trainer's fast path (issue #19): channels_last, sized threads, prefetching tile workers, bf16 where the CPU
has it. It trains, and a resumed run still reproduces the uninterrupted one weight for weight. Tiny configs, CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training import checkpoint as ckpt
from training import train
from training.config import validate_config
from training.models import ConfigError, build_model
from training.trainer import precision

REPO = Path(__file__).resolve().parent.parent
SMOKE = str(REPO / "training" / "configs" / "unet_smoke.toml")


def train_records(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "train"]


def test_fast_path_trains(tmp_path: Path, capsys) -> None:
    out = tmp_path / "fast"
    assert train.main(["--config", SMOKE, "--out", str(out), "--memory-format", "channels_last", "--num-workers", "1"]) == 0
    assert "channels_last, " in capsys.readouterr().out
    records = train_records(out)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert records[-1]["loss"] < 0.8 * records[0]["loss"]  # it learns
    assert all(r["data_wait_s"] >= 0 and r["steps_per_s"] > 0 for r in records)
    state = ckpt.load(out)
    assert state["meta"]["train"]["memory_format"] == "channels_last"  # the flag is part of the run
    assert state["meta"]["history"][-1]["memory_format"] == "channels_last"
    assert state["meta"]["history"][-1]["precision"] == ("bf16" if precision.native_cpu_bf16() else "fp32")
    # The checkpoint loads into a plain (contiguous) model for export: same values.
    model = ckpt.model_from_checkpoint(out)
    assert model.sample(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 16, 16)


@pytest.mark.parametrize(
    "flags",
    [
        ["--memory-format", "channels_last", "--num-workers", "1"],
        ["--memory-format", "channels_last", "--precision", "bf16"],
    ],
    ids=["channels_last+worker", "bf16"],
)
def test_fast_path_resume_is_exact(flags: list[str], tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train.main(["--config", SMOKE, "--out", str(whole), *flags]) == 0
    assert train.main(["--config", SMOKE, "--out", str(parts), "--max-steps", "7", *flags]) == 0
    assert train.main(["--resume", str(parts)]) == 0  # precision and memory format come back from the checkpoint
    a, b = ckpt.load(whole), ckpt.load(parts)
    assert a["step"] == b["step"] == 20 and b["meta"]["train"] == a["meta"]["train"]
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(b[key][name], tensor, atol=0, rtol=0, msg=f"{key}.{name}")


def test_precision_follows_native_bf16(monkeypatch) -> None:
    unet = build_model({"family": "unet", "base_channels": 8, "channel_mult": [1, 2]})
    flow = build_model({"family": "normalizing_flow", "levels": 1, "steps_per_level": 1, "hidden_channels": 8})
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_vnni"}))
    assert not precision.native_cpu_bf16()
    assert precision.resolve_precision("auto", unet, cpu) == "fp32"  # emulated bf16 is slower: not by default
    assert precision.resolve_precision("bf16", unet, cpu, quiet=True) == "bf16"  # but a measured option
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    if torch.backends.mkldnn.is_available():
        assert precision.native_cpu_bf16()
        assert precision.resolve_precision("auto", unet, cpu) == "bf16"
    assert precision.resolve_precision("auto", flow, cpu) == "fp32"  # log-determinants need fp32
    assert precision.resolve_precision("fp32", unet, cpu) == "fp32"
    assert precision.resolve_memory_format("auto", "unet") == torch.channels_last
    assert precision.resolve_memory_format("auto", "normalizing_flow") == torch.contiguous_format
    assert precision.resolve_memory_format("contiguous", "diffusion") == torch.contiguous_format
    assert precision.compute_threads(3, workers=1) == 3
    assert precision.compute_threads(0, workers=64) == 1


def test_fast_path_keys_are_checked() -> None:
    base = {"model": {"family": "unet"}, "train": {}}
    assert validate_config(base)["train"]["memory_format"] == "auto"
    for key, bad in (("memory_format", "nhwc"), ("threads", -1), ("prefetch", 0), ("precision", "fp16")):
        with pytest.raises(ConfigError, match=key):
            validate_config({**base, "train": {key: bad}})
