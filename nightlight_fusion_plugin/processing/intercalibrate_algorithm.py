"""`nightlightfusion:intercalibrate`: Elvidge et al. (2014) intercalibration of DMSP-OLS DN (core.fuse)."""

from __future__ import annotations

from .common import SatelliteYearRasterAlgorithm


class IntercalibrateAlgorithm(SatelliteYearRasterAlgorithm):
    INPUT_ROLE = "DMSP"
    INPUT_LABEL = "DMSP-OLS stable lights (DN 0–63)"
    MISSING_INPUT = "No DMSP layer given: choose a DMSP-OLS stable-lights raster."
    OUTPUT_LABEL = "Intercalibrated DMSP"

    def name(self) -> str:
        return "intercalibrate"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Intercalibrate DMSP-OLS stable lights")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "<p>Applies the Elvidge et al. (2014) second-order intercalibration DNc = c0 + c1·DN + c2·DN² so that "
            "DMSP-OLS DN of any satellite-year are comparable (reference F12 1999). The satellite and year are read "
            "from NOAA file names (e.g. F182013) unless given. Years without published coefficients (F18 2013) "
            "use the nearest year of the same satellite. DN 0 stays 0; results are clipped to 0–63. "
            "The output stays on the DMSP grid.</p>"
        )

    def produce(self, progress, cancelled):
        from ..core.pipeline.calibrate import intercalibrate

        return intercalibrate(
            self._input, self._output, self._satellite, self._year, overwrite=True, progress=progress, is_cancelled=cancelled
        )
