"""Shared fixtures: the synthetic sample (made by the project's own code) and the real clips in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from nightlight_fusion_plugin.core.report.sample import write_sample

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NLF_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL = SHARED_DATA / "real"


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> dict[str, Path]:
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture
def real_data() -> Path:
    if not (REAL / "sao_tome").is_dir():
        pytest.skip(f"real data not found under {REAL}")
    return REAL


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    west: float = 0.0,
    north: float = 1.0,
    res: float = 1 / 120,
    crs: str = "EPSG:4326",
    nodata=None,
    transform=None,
) -> Path:
    """A small GeoTIFF for tests; 3-D data gives a multi-band raster."""
    data = np.asarray(data)
    bands = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=bands.shape[2],
        height=bands.shape[1],
        count=bands.shape[0],
        dtype=bands.dtype,
        crs=crs,
        nodata=nodata,
        transform=transform or from_origin(west, north, res, res),
    ) as dst:
        dst.write(bands)
    return path


@pytest.fixture(scope="session")
def smoke_zoo(tmp_path_factory) -> Path:
    """A real model zoo made by the real training and export commands, at smoke scale (a few steps of
    each family's smoke config): exercises train -> export -> onnxruntime -> engine end to end."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("zoo")
    runs, zoo = root / "runs", root / "model_zoo"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for family, quantize in (("unet", "none"), ("diffusion", "int8"), ("flow_matching", "none"), ("normalizing_flow", "none")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "training.train",
                "--config",
                f"training/configs/{family}_smoke.toml",
                "--out",
                str(runs / family),
                "--max-steps",
                "3",
            ],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "training.export",
                str(runs / family),
                "--out",
                str(zoo),
                "--quantize",
                quantize,
                "--calibration-tiles",
                "8",
            ],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
    return zoo


@pytest.fixture
def use_zoo(smoke_zoo, monkeypatch) -> Path:
    monkeypatch.setenv("NLF_MODEL_ZOO", str(smoke_zoo))
    return smoke_zoo
