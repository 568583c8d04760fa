"""The trainer (`python -m training.train`): smoke runs of every family, exact resume, config and checkpoint
errors, non-finite losses, SIGTERM. Tiny configs (training/configs/*_smoke.toml), CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training import checkpoint as ckpt
from training import train
from training.models import FAMILIES
from training.models.regression import RegressionUNet

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "training" / "configs"


def smoke(family: str) -> str:
    return str(CONFIGS / f"{family}_smoke.toml")


def run(*args: str) -> int:
    return train.main([*args])


def records(out: Path, split: str) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_smoke_run_every_family(family: str, tmp_path: Path) -> None:
    out = tmp_path / family
    assert run("--config", smoke(family), "--max-steps", "20", "--out", str(out)) == 0
    state = ckpt.load(out)
    assert state["step"] == 20
    meta = state["meta"]
    assert meta["family"] == family and meta["seed"] == 0 and meta["data"]["tile"] == 16
    assert meta["transforms"]["version"].startswith("nlf-transforms")
    assert meta["git_commit"] and "--max-steps" in meta["command"]
    if family in ("diffusion", "flow_matching"):
        assert meta["schedule"]["num_train_timesteps"] == 1000
    val = records(out, "val")
    assert [r["step"] for r in val] == [10, 20]
    assert all(r["psnr_log"] > 0 and r["mse"] > 0 for r in val)
    assert records(out, "train")[-1]["step"] == 20
    model = ckpt.model_from_checkpoint(out / "checkpoint.pt")
    assert model.sample(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 16, 16)


def test_module_entry_point(tmp_path: Path) -> None:
    """The documented command line, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "training.train", "--config", smoke("unet"), "--max-steps", "5", "--out", str(tmp_path / "run")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert ckpt.load(tmp_path / "run")["step"] == 5
    assert "done: step 5" in proc.stdout


@pytest.mark.parametrize("family", ["diffusion", "normalizing_flow"])
def test_resume_reproduces_the_uninterrupted_run(family: str, tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run("--config", smoke(family), "--out", str(whole)) == 0
    assert run("--config", smoke(family), "--out", str(parts), "--max-steps", "7") == 0
    assert ckpt.load(parts)["step"] == 7
    assert run("--resume", str(parts / "checkpoint.pt"), "--max-steps", "13") == 0  # config from the checkpoint
    assert run("--config", smoke(family), "--resume", str(parts)) == 0
    a, b = ckpt.load(whole), ckpt.load(parts)
    assert a["step"] == b["step"] == 20
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(b[key][name], tensor, atol=0, rtol=0, msg=f"{key}.{name}")
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    history = b["meta"]["history"]
    assert [h["from_step"] for h in history] == [0, 7, 13] and "--max-steps" in history[1]["command"]
    final = [r for r in records(parts, "val") if r["step"] == 20]
    assert final[-1] == records(whole, "val")[-1]


def test_config_errors_name_the_key(tmp_path: Path, capsys) -> None:
    base = Path(smoke("unet")).read_text()
    cases = {
        "[train]\nstepz": base.replace("steps = 20", "stepz = 20"),
        "[model]\nlos": base.replace('loss = "l1"', 'los = "l1"'),
        "[data]\ntil": base.replace("tile = 16", "til = 16"),
        "top level": base + "\n[optimizer]\nlr = 1\n",
        "family": base.replace('family = "unet"', 'family = "gan"'),
    }
    expected = {"[train]\nstepz": "stepz", "[model]\nlos": "los", "[data]\ntil": "til", "top level": "optimizer", "family": "gan"}
    for name, text in cases.items():
        path = write_config(tmp_path / "bad.toml", text)
        assert run("--config", path, "--out", str(tmp_path / "never")) == 2, name
        assert expected[name] in capsys.readouterr().err, name
        assert not (tmp_path / "never").exists()


def test_resume_checks_family_and_shape(tmp_path: Path, capsys) -> None:
    out = tmp_path / "unet"
    assert run("--config", smoke("unet"), "--max-steps", "2", "--out", str(out)) == 0
    assert run("--config", smoke("diffusion"), "--resume", str(out)) == 1
    err = capsys.readouterr().err
    assert "'unet' model" in err and "'diffusion'" in err
    wider = write_config(
        tmp_path / "wide.toml", Path(smoke("unet")).read_text().replace("base_channels = 8", "base_channels = 16")
    )
    assert run("--config", wider, "--resume", str(out)) == 1
    assert "base_channels" in capsys.readouterr().err
    # Same family and config but foreign weights: a clear error too.
    state = ckpt.load(out)
    state["model"] = {k: v[:1] for k, v in state["model"].items()}
    ckpt.save_atomic(state, tmp_path / "broken.pt")
    assert run("--config", smoke("unet"), "--resume", str(tmp_path / "broken.pt"), "--out", str(tmp_path / "b")) == 1
    assert "does not fit this model" in capsys.readouterr().err
    # An existing run is never overwritten by a fresh start.
    assert run("--config", smoke("unet"), "--out", str(out)) == 1
    assert "--resume" in capsys.readouterr().err


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "nan"
    original = RegressionUNet.loss
    calls = {"n": 0}

    def flaky(self, batch):
        calls["n"] += self.training  # validation (EMA model, eval mode) also calls loss
        loss, logs = original(self, batch)
        return (loss * float("nan"), logs) if calls["n"] > 13 else (loss, logs)

    monkeypatch.setattr(RegressionUNet, "loss", flaky)
    assert run("--config", smoke("unet"), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "non-finite loss" in err and "step 14" in err and "step 10" in err
    assert ckpt.load(out)["step"] == 10
    assert not list(out.glob(".*tmp*"))


def test_sigterm_saves_a_checkpoint_and_exits(tmp_path: Path) -> None:
    config = write_config(tmp_path / "long.toml", Path(smoke("unet")).read_text().replace("steps = 20", "steps = 100000"))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.train", "--config", config, "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 90
        while not (out / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (out / "metrics.jsonl").exists(), "training never started"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stdout and "Traceback" not in stderr
    step = ckpt.load(out)["step"]
    assert 5 <= step < 100000
    assert train.main(["--resume", str(out), "--max-steps", str(step + 2)]) == 0
    assert ckpt.load(out)["step"] == step + 2


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_distributed_data_parallel_on_cpu(tmp_path: Path) -> None:
    """torchrun with two CPU processes (gloo): the same code path as multi-GPU, only rank 0 writes."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "training.train",
            "--config",
            smoke("diffusion"),
            "--max-steps",
            "4",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    state = ckpt.load(out)
    assert state["step"] == 4 and state["meta"]["world_size"] == 2 and len(state["rng"]) == 2
    assert proc.stdout.count("done: step 4") == 1


def test_init_from_fine_tunes_from_another_runs_ema_weights(tmp_path: Path, capsys) -> None:
    first = tmp_path / "first"
    assert run("--config", smoke("unet"), "--max-steps", "2", "--out", str(first)) == 0
    text = Path(smoke("unet")).read_text().replace("[train]\n", f'[train]\ninit_from = "{first / "checkpoint.pt"}"\n')
    second = tmp_path / "second"
    assert run("--config", write_config(tmp_path / "ft.toml", text), "--max-steps", "1", "--out", str(second)) == 0
    source, state = ckpt.load(first), ckpt.load(second)
    assert state["step"] == 1  # a new run: its own step and schedule
    recorded = state["meta"]["init_from"]
    assert recorded["step"] == 2 and len(recorded["sha256"]) == 64
    # Started from the first run's EMA weights, not a random init: one small step stays close to them.
    start = source["ema"]
    fresh = {k: v for k, v in RegressionUNet(ckpt.model_from_checkpoint(first).config).state_dict().items()}
    moved = sum(float((state["model"][k] - start[k]).abs().sum()) for k in start)
    random_distance = sum(float((fresh[k] - start[k]).abs().sum()) for k in start)
    assert moved < 0.1 * random_distance
    # The model card names where the weights started.
    from training.export import export

    entry = export(str(second), tmp_path / "zoo", quantize="none", model_id="tuned")[0]
    card = (tmp_path / "zoo" / entry["card"]).read_text()
    assert f"fine-tuned from the EMA weights of `{first / 'checkpoint.pt'}` (step 2" in card
    # A missing or incompatible checkpoint is a config error that names the key.
    bad = text.replace(str(first / "checkpoint.pt"), str(tmp_path / "nowhere"))
    assert run("--config", write_config(tmp_path / "bad.toml", bad), "--out", str(tmp_path / "never")) == 2
    assert "init_from" in capsys.readouterr().err
    wide = text.replace("base_channels = 8", "base_channels = 16")
    assert run("--config", write_config(tmp_path / "wide.toml", wide), "--out", str(tmp_path / "never2")) != 0
    assert "base_channels" in capsys.readouterr().err
