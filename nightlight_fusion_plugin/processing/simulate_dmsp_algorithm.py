"""`nightlightfusion:simulate_dmsp`: VIIRS radiance -> DMSP-OLS-like stable lights (core.dmsp_like)."""

from __future__ import annotations

from .common import SatelliteYearRasterAlgorithm


class SimulateDmspAlgorithm(SatelliteYearRasterAlgorithm):
    INPUT_ROLE = "VIIRS"
    INPUT_LABEL = "VIIRS DNB radiance (nW/cm²/sr)"
    MISSING_INPUT = "No VIIRS layer given: choose a VIIRS DNB radiance raster."
    OUTPUT_LABEL = "DMSP-OLS-like stable lights"

    def name(self) -> str:
        return "simulate_dmsp"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Simulate DMSP-OLS stable lights from VIIRS")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(
            "<p>Turns a VIIRS DNB radiance raster (nW/cm²/sr) into a DMSP-OLS-like stable-lights raster (6-bit DN, "
            "30″ EPSG:4326 grid on the DMSP product lattice) with the sensor model the training data is simulated "
            "with: the wide point-spread function and blooming halo, 30″ aggregation, the saturating gain and 6-bit "
            "digitisation, calibrated on real Athens DMSP against Greece VIIRS. SATELLITE/YEAR pick the gain (default "
            "the calibrated F18 2013). Deterministic. Nodata stays nodata (255).</p>"
        )

    def produce(self, progress, cancelled):
        from ..core.pipeline.dmsp_like import simulate_dmsp_raster

        return simulate_dmsp_raster(
            self._input, self._output, self._satellite, self._year, overwrite=True, progress=progress, is_cancelled=cancelled
        )
