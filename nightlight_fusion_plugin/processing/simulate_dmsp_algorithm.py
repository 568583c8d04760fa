"""`nightlightfusion:simulate_dmsp`: VIIRS radiance -> DMSP-OLS-like stable lights (core.dmsp_like)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from .common import core_callbacks, help_url, raster_file, require_core, run_core


class SimulateDmspAlgorithm(QgsProcessingAlgorithm):
    VIIRS, SATELLITE, YEAR, OUTPUT = "VIIRS", "SATELLITE", "YEAR", "OUTPUT"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("SimulateDmspAlgorithm", text)

    def createInstance(self):  # noqa: N802
        return SimulateDmspAlgorithm()

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

    def helpUrl(self) -> str:  # noqa: N802
        return help_url("simulate_dmsp")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.VIIRS, self.tr("VIIRS DNB radiance (nW/cm²/sr)")))
        self.addParameter(QgsProcessingParameterString(self.SATELLITE, self.tr("DMSP satellite (e.g. F18)"), optional=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.YEAR, self.tr("DMSP year"), QgsProcessingParameterNumber.Integer, optional=True, minValue=1992, maxValue=2013
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("DMSP-OLS-like stable lights")))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        viirs = self.parameterAsRasterLayer(parameters, self.VIIRS, context)
        if viirs is None:
            raise QgsProcessingException(self.tr("No VIIRS layer given: choose a VIIRS DNB radiance raster."))
        self._viirs = raster_file(viirs, "VIIRS")
        self._satellite = self.parameterAsString(parameters, self.SATELLITE, context) or None
        self._year = self.parameterAsInt(parameters, self.YEAR, context) if parameters.get(self.YEAR) not in (None, "") else None
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        require_core()
        from ..core.dmsp_like import simulate_dmsp_raster

        progress, cancelled = core_callbacks(feedback)
        result = run_core(
            lambda: simulate_dmsp_raster(
                self._viirs, self._output, self._satellite, self._year, overwrite=True, progress=progress, is_cancelled=cancelled
            ),
            feedback,
        )
        for note in result.notes:
            feedback.pushInfo(note)
        return {self.OUTPUT: result.output}
