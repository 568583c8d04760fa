"""The traditional fusion method: intercalibrate DMSP, warp it to the VIIRS grid, calibrate DN to radiance.

No learning and no randomness: the same inputs give the same output. With a VIIRS reference the DN ->
radiance curve is fitted on the overlap (see calibration.py); without one the documented fixed curve is used.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..raster.grids import AlignedReader, Grid
from ..sensor.calibration import RadianceCurve, default_curve, fit_radiance_curve
from ..sensor.intercalibration import Intercalibration

MAX_FIT_SAMPLES = 200_000


class TraditionalFusion:
    """Intercalibration (Elvidge et al. 2014) + DN->radiance calibration; the `baseline` model."""

    model_id = "baseline"

    def __init__(self, intercalibration: Intercalibration, curve: RadianceCurve | None = None):
        self.intercalibration = intercalibration
        self.curve = curve
        self.notes: list[str] = []

    def prepare(
        self,
        dmsp: AlignedReader,
        viirs: AlignedReader | None,
        grid: Grid,
        block_size: int,
        progress: Callable[[float], None],
        check_cancel: Callable[[], None],
    ) -> None:
        """Fit the radiance curve on a bounded, deterministic sample of the overlap (one windowed pass)."""
        if self.curve is not None:
            return
        if viirs is None:
            self.curve = default_curve()
            self.notes.append("No VIIRS reference: used the fixed DN→radiance curve fitted on Athens/Greece.")
            return
        rng = np.random.default_rng(0)
        keep_fraction = min(1.0, MAX_FIT_SAMPLES / max(grid.width * grid.height, 1))
        dn_parts, rad_parts = [], []
        total = grid.block_count(block_size)
        for i, window in enumerate(grid.blocks(block_size)):
            check_cancel()
            dn, rad = dmsp.read(window).ravel(), viirs.read(window).ravel()
            both = np.flatnonzero(np.isfinite(dn) & np.isfinite(rad))
            if keep_fraction < 1.0 and both.size:
                both = rng.choice(both, size=max(1, int(round(both.size * keep_fraction))), replace=False)
            dn_parts.append(dn[both])
            rad_parts.append(rad[both])
            progress((i + 1) / total)
        dmsp_dn = np.concatenate(dn_parts) if dn_parts else np.empty(0, np.float32)
        radiance = np.concatenate(rad_parts) if rad_parts else np.empty(0, np.float32)
        source = f"fitted to the VIIRS reference {viirs.info.path} on {dmsp_dn.size} co-located pixels"
        self.curve = fit_radiance_curve(self.intercalibration.apply(dmsp_dn), dmsp_dn, radiance, source)
        if self.curve is None:
            self.curve = default_curve()
            self.notes.append(
                f"The DMSP/VIIRS overlap has too few lit pixels to fit a calibration ({dmsp_dn.size} co-located); "
                "used the fixed DN→radiance curve instead."
            )

    def predict(self, dmsp_dn: np.ndarray, viirs_radiance: np.ndarray | None) -> np.ndarray:
        dnc = self.intercalibration.apply(dmsp_dn)
        return self.curve.radiance(dnc, dmsp_dn)

    def tags(self) -> dict[str, str]:
        return {
            "NLF_INTERCALIBRATION": self.intercalibration.describe(),
            "NLF_CALIBRATION": self.curve.describe() if self.curve else "",
        }
