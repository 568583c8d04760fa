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


class IntercalibrateAlgorithm(QgsProcessingAlgorithm):
    DMSP, SATELLITE, YEAR, OUTPUT = "DMSP", "SATELLITE", "YEAR", "OUTPUT"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("IntercalibrateAlgorithm", text)

    def createInstance(self):  # noqa: N802
        return IntercalibrateAlgorithm()

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

    def helpUrl(self) -> str:  # noqa: N802
        return help_url("intercalibrate")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.DMSP, self.tr("DMSP-OLS stable lights (DN 0–63)")))
        self.addParameter(QgsProcessingParameterString(self.SATELLITE, self.tr("DMSP satellite (e.g. F18)"), optional=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.YEAR,
                self.tr("DMSP year"),
                QgsProcessingParameterNumber.Integer,
                optional=True,
                minValue=1992,
                maxValue=2013,
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Intercalibrated DMSP")))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        dmsp = self.parameterAsRasterLayer(parameters, self.DMSP, context)
        if dmsp is None:
            raise QgsProcessingException(self.tr("No DMSP layer given: choose a DMSP-OLS stable-lights raster."))
        self._dmsp = raster_file(dmsp, "DMSP")
        self._satellite = self.parameterAsString(parameters, self.SATELLITE, context) or None
        self._year = self.parameterAsInt(parameters, self.YEAR, context) if parameters.get(self.YEAR) not in (None, "") else None
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        require_core()
        from ..core.fuse import intercalibrate

        progress, cancelled = core_callbacks(feedback)
        result = run_core(
            lambda: intercalibrate(
                self._dmsp,
                self._output,
                self._satellite,
                self._year,
                overwrite=True,
                progress=progress,
                is_cancelled=cancelled,
            ),
            feedback,
        )
        for note in result.notes:
            feedback.pushInfo(note)
        return {self.OUTPUT: result.output}
