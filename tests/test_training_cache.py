"""The tile cache (training.data.cache) and slim checkpoints (scripts/pack_run.py): same tiles, same run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import checkpoint as ckpt
from training import train
from training.data import build_dataset
from training.data.cache import CachedDataset, CacheError, fill_cache

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "training" / "configs" / "unet_smoke.toml"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return fill_cache(train.load_config(SMOKE)["data"], tmp_path_factory.mktemp("tiles"), workers=2)


def test_cache_holds_exactly_the_dataset_items(cache: Path) -> None:
    table = train.load_config(SMOKE)["data"]
    plain, cached = build_dataset(table, "train"), CachedDataset(cache, table)
    assert len(plain) == len(cached) == table["length"]
    for i in (0, 17, len(plain) - 1):
        for key, value in plain[i].items():
            assert torch.equal(cached[i][key], value), (i, key)
    with pytest.raises(IndexError):
        cached[len(plain)]


def test_cache_refuses_another_data_table(cache: Path, tmp_path: Path) -> None:
    table = {**train.load_config(SMOKE)["data"], "seed": 1}
    with pytest.raises(CacheError, match="another \\[data\\] table"):
        CachedDataset(cache, table)
    with pytest.raises(CacheError, match="not a complete tile cache"):
        CachedDataset(tmp_path, table)


def test_training_from_the_cache_is_the_same_run(cache: Path, tmp_path: Path) -> None:
    plain, cached = tmp_path / "plain", tmp_path / "cached"
    assert train.main(["--config", str(SMOKE), "--out", str(plain), "--max-steps", "6"]) == 0
    assert train.main(["--config", str(SMOKE), "--out", str(cached), "--max-steps", "6", "--data-cache", str(cache)]) == 0
    a, b = ckpt.load(plain), ckpt.load(cached)
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, atol=0, rtol=0, msg=name)


def test_slim_checkpoint_exports_and_resumes(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train.main(["--config", str(SMOKE), "--out", str(run), "--max-steps", "4"]) == 0
    slim = tmp_path / "slim.pt"
    subprocess.run([sys.executable, str(REPO / "scripts" / "pack_run.py"), str(run / "checkpoint.pt"), str(slim)], check=True)
    state = ckpt.load(slim)
    assert state["optimizer"] is None and state["step"] == 4
    assert slim.stat().st_size < (run / "checkpoint.pt").stat().st_size
    name, keys, *_ = state["rng"][0]["numpy"]
    assert name == "MT19937" and isinstance(keys, list)  # plain values: loads under numpy 1 and 2
    assert ckpt.model_from_checkpoint(slim).sample(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 16, 16)
    assert train.main(["--resume", str(slim), "--out", str(tmp_path / "more"), "--max-steps", "6"]) == 0
    assert "no optimizer state" in capsys.readouterr().out
    assert ckpt.load(tmp_path / "more")["step"] == 6
    ema_only = tmp_path / "ema.pt"
    subprocess.run([sys.executable, str(REPO / "scripts" / "pack_run.py"), str(slim), str(ema_only), "--ema-only"], check=True)
    assert ckpt.load(ema_only)["model"] is None
    exported = ckpt.model_from_checkpoint(ema_only).state_dict()
    for name, tensor in ckpt.model_from_checkpoint(slim).state_dict().items():
        assert torch.equal(exported[name], tensor), name
    assert train.main(["--resume", str(ema_only), "--out", str(tmp_path / "again"), "--max-steps", "6"]) == 0
    assert "only EMA weights" in capsys.readouterr().out
