"""Compare a fused raster with a VIIRS truth on the truth's grid."""

from __future__ import annotations

import numpy as np

from ..raster.grids import AlignedReader, Grid, inspect_raster
from .metrics import all_metrics


def compare_rasters(prediction_path: str, truth_path: str) -> dict[str, float]:
    truth = inspect_raster(truth_path, "truth")
    prediction = inspect_raster(prediction_path, "prediction")
    grid = Grid(truth.crs, truth.transform, truth.width, truth.height)
    parts_p, parts_t = [], []
    with AlignedReader(prediction, grid) as p_reader, AlignedReader(truth, grid) as t_reader:
        for window in grid.blocks(1024):
            parts_p.append(p_reader.read(window).ravel())
            parts_t.append(t_reader.read(window).ravel())
    return all_metrics(np.concatenate(parts_p), np.concatenate(parts_t))
