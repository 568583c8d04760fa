from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.models import available_models, default_model
from .common import NightLightsStyler, core_callbacks, raster_file, require_core, run_core

HELP = """<p>Fuses a DMSP-OLS stable-lights raster (DN 0–63) into a VIIRS-like radiance raster (nW/cm²/sr).</p>
<p><b>DMSP</b>: single-band DMSP-OLS stable lights of the target year. <b>VIIRS</b> (optional): a VIIRS DNB
composite of a reference year; the output is written on its grid and the DN→radiance calibration is fitted
against it. Without it the output is on a 15″ EPSG:4326 grid and a fixed calibration curve is used.
<b>EXTENT</b> (optional) restricts the area. <b>MODEL</b>: <code>baseline</code> is the traditional method
(Elvidge et al. 2014 intercalibration + calibration). <b>SATELLITE</b>/<b>YEAR</b> choose the intercalibration
coefficients when the file name does not say (NOAA names such as F182013 are recognised).</p>
<p>Nodata and NaN in the inputs stay nodata in the output; negative VIIRS radiance is valid.</p>"""


class FuseAlgorithm(QgsProcessingAlgorithm):
    DMSP, VIIRS, EXTENT, MODEL, SEED, SATELLITE, YEAR, OUTPUT = (
        "DMSP",
        "VIIRS",
        "EXTENT",
        "MODEL",
        "SEED",
        "SATELLITE",
        "YEAR",
        "OUTPUT",
    )

    def __init__(self):
        super().__init__()
        self._styler = NightLightsStyler()

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("FuseAlgorithm", text)

    def createInstance(self):  # noqa: N802
        return FuseAlgorithm()

    def name(self) -> str:
        return "fuse"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Fuse DMSP-OLS and VIIRS night lights")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(HELP)

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.DMSP, self.tr("DMSP-OLS stable lights (DN 0–63)")))
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.VIIRS, self.tr("VIIRS DNB reference (nW/cm²/sr)"), optional=True)
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Area"), optional=True))
        ids = [m.id for m in available_models()]
        self.addParameter(
            QgsProcessingParameterEnum(
                self.MODEL, self.tr("Model"), options=ids, defaultValue=default_model().id, usesStaticStrings=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SEED, self.tr("Random seed"), QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0
            )
        )
        for param in (
            QgsProcessingParameterString(self.SATELLITE, self.tr("DMSP satellite (e.g. F18)"), optional=True),
            QgsProcessingParameterNumber(
                self.YEAR,
                self.tr("DMSP year"),
                QgsProcessingParameterNumber.Integer,
                optional=True,
                minValue=1992,
                maxValue=2013,
            ),
        ):
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Fused VIIRS-like radiance")))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        # Layers live in the main thread: resolve them to files here, process in the worker thread.
        dmsp = self.parameterAsRasterLayer(parameters, self.DMSP, context)
        if dmsp is None:
            raise QgsProcessingException(self.tr("No DMSP layer given: choose a DMSP-OLS stable-lights raster."))
        self._dmsp = raster_file(dmsp, "DMSP")
        self._viirs = raster_file(self.parameterAsRasterLayer(parameters, self.VIIRS, context), "VIIRS")
        self._extent = self._extent_crs = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context)
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            if not rect.isNull():
                self._extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
                self._extent_crs = crs.toWkt() if crs.isValid() else None
        self._model = self.parameterAsEnumString(parameters, self.MODEL, context) or default_model().id
        self._seed = self.parameterAsInt(parameters, self.SEED, context)
        self._satellite = self.parameterAsString(parameters, self.SATELLITE, context) or None
        self._year = self.parameterAsInt(parameters, self.YEAR, context) if parameters.get(self.YEAR) not in (None, "") else None
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        require_core()
        from ..core.fuse import FuseRequest, fuse

        request = FuseRequest(
            dmsp=self._dmsp,
            viirs=self._viirs,
            output=self._output,
            model=self._model,
            extent=self._extent,
            extent_crs=self._extent_crs,
            seed=self._seed,
            satellite=self._satellite,
            year=self._year,
            overwrite=True,  # Processing's destination widget already asked before overwriting
        )
        progress, cancelled = core_callbacks(feedback)
        result = run_core(lambda: fuse(request, progress, cancelled), feedback)
        for note in result.notes:
            feedback.pushInfo(note)
        if context.willLoadLayerOnCompletion(result.output):
            context.layerToLoadOnCompletionDetails(result.output).setPostProcessor(self._styler)
        return {self.OUTPUT: result.output}
