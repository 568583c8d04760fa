"""nightlightfusion:series: a thin front end to core.series.run_series."""

from __future__ import annotations

import os

from qgis.core import (
    QgsDateTimeRange,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsRasterLayer,
    QgsRasterLayerTemporalProperties,
)
from qgis.PyQt.QtCore import QCoreApplication, QDate, QDateTime, QTime

from .common import NightLightsStyler, core_callbacks, help_url, raster_file, require_core, run_core
from .fuse_algorithm import model_ids

HELP = """<p>One VIIRS-like radiance map per DMSP year, plus the real VIIRS years, as a multi-band GeoTIFF whose band
descriptions are the years (and, with <b>PER_YEAR_DIR</b>, one GeoTIFF per year).</p>
<p><b>DMSP</b>: DMSP-OLS stable lights of several years (1992–2013); satellite and year are read from NOAA names
(F152005, F15_2005) or from <b>YEARS</b> (comma-separated, in the order of the layers). A year flown by two satellites
is intercalibrated and fused per satellite, then averaged. <b>VIIRS</b>: one or more references (year in the name);
each DMSP year uses the one nearest in time; all inputs are warped onto the earliest reference's grid.
<b>MODEL</b>/<b>SEED</b>: the same for every year. <b>TEMPORAL_SMOOTHING</b>: divide each DMSP year by a robust
whole-scene gain (running median of 3 years of each pixel's log-radiance series). The series report (JSON next to
the output) gives year-to-year sum-of-lights ratios, the DMSP→VIIRS seam step and the trend-sign disagreement.
Per-year layers are loaded with a fixed temporal range (their year) for the Temporal Controller.</p>"""


class _YearRange(QgsProcessingLayerPostProcessorInterface):
    """QGIS 3.22 has no per-band time for one raster: each per-year layer gets its year as a fixed range."""

    def __init__(self, year: int):
        super().__init__()
        self.year = year

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            from ..gui.style import apply_night_lights_style

            apply_night_lights_style(layer)
            props = layer.temporalProperties()
            props.setMode(QgsRasterLayerTemporalProperties.ModeFixedTemporalRange)
            props.setFixedTemporalRange(
                QgsDateTimeRange(
                    QDateTime(QDate(self.year, 1, 1), QTime(0, 0)), QDateTime(QDate(self.year, 12, 31), QTime(23, 59, 59))
                )
            )
            props.setIsActive(True)


class SeriesAlgorithm(QgsProcessingAlgorithm):
    DMSP, VIIRS, YEARS, MODEL, SEED = "DMSP", "VIIRS", "YEARS", "MODEL", "SEED"
    TEMPORAL_SMOOTHING, OUTPUT, PER_YEAR_DIR, REPORT = "TEMPORAL_SMOOTHING", "OUTPUT", "PER_YEAR_DIR", "REPORT"

    def __init__(self):
        super().__init__()
        self._styler = NightLightsStyler()
        self._post: list[_YearRange] = []  # post-processors must outlive processAlgorithm

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("SeriesAlgorithm", text)

    def createInstance(self):  # noqa: N802
        return SeriesAlgorithm()

    def name(self) -> str:
        return "series"

    def displayName(self) -> str:  # noqa: N802
        return self.tr("Night-lights time series (DMSP years → VIIRS-like)")

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(HELP)

    def helpUrl(self) -> str:  # noqa: N802
        return help_url("series")

    def initAlgorithm(self, config=None):  # noqa: N802
        raster = QgsProcessing.TypeRaster
        self.addParameter(
            QgsProcessingParameterMultipleLayers(self.DMSP, self.tr("DMSP-OLS stable lights (several years)"), raster)
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(self.VIIRS, self.tr("VIIRS DNB references"), raster, optional=True)
        )
        self.addParameter(
            QgsProcessingParameterString(self.YEARS, self.tr("DMSP years, comma-separated (empty: from names)"), optional=True)
        )
        ids, default = model_ids()
        self.addParameter(
            QgsProcessingParameterEnum(self.MODEL, self.tr("Model"), ids, defaultValue=default, usesStaticStrings=True)
        )
        self.addParameter(QgsProcessingParameterNumber(self.SEED, self.tr("Seed"), QgsProcessingParameterNumber.Integer, 0))
        self.addParameter(QgsProcessingParameterBoolean(self.TEMPORAL_SMOOTHING, self.tr("Temporal consistency step"), True))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Series (one band per year)")))
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.PER_YEAR_DIR, self.tr("Also one GeoTIFF per year in"), optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString(self.REPORT, self.tr("Series report (JSON file)")))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        dmsp = self.parameterAsLayerList(parameters, self.DMSP, context)
        if not dmsp:
            raise QgsProcessingException(self.tr("No DMSP layers given: choose DMSP-OLS rasters of several years."))
        self._dmsp = [raster_file(layer, "DMSP") for layer in dmsp]
        self._viirs = [raster_file(layer, "VIIRS") for layer in self.parameterAsLayerList(parameters, self.VIIRS, context)]
        years = self.parameterAsString(parameters, self.YEARS, context).strip()
        try:
            self._years = [int(v) for v in years.split(",")] if years else None
        except ValueError as exc:
            raise QgsProcessingException(self.tr(f"YEARS must be comma-separated years, got '{years}'.")) from exc
        self._model = self.parameterAsEnumString(parameters, self.MODEL, context) or None
        self._seed = self.parameterAsInt(parameters, self.SEED, context)
        self._smooth = self.parameterAsBoolean(parameters, self.TEMPORAL_SMOOTHING, context)
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        self._per_year_dir = None
        if parameters.get(self.PER_YEAR_DIR) not in (None, ""):
            self._per_year_dir = self.parameterAsString(parameters, self.PER_YEAR_DIR, context) or None
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        require_core()
        from ..core.series import SeriesRequest, run_series

        request = SeriesRequest(
            dmsp=self._dmsp,
            viirs=self._viirs,
            output=self._output,
            per_year_dir=self._per_year_dir,
            years=self._years,
            temporal_smoothing=self._smooth,
            model=self._model,
            seed=self._seed,
            overwrite=True,  # Processing's destination widget already asked
        )
        progress, cancelled = core_callbacks(feedback)
        result = run_core(lambda: run_series(request, None, progress, cancelled), feedback)
        for note in result.notes:
            feedback.pushInfo(note)
        for ratio in result.report["year_to_year_ratios"]:
            feedback.pushInfo(f"sum of lights {ratio['from']} → {ratio['to']}: ×{ratio['ratio']:.3f}")
        if result.output and context.willLoadLayerOnCompletion(result.output):
            context.layerToLoadOnCompletionDetails(result.output).setPostProcessor(self._styler)
        for path, label in zip(result.per_year, result.labels):
            post = _YearRange(int(label.split()[0]))
            self._post.append(post)
            details = QgsProcessingContext.LayerDetails(f"Night lights {label}", context.project(), os.path.basename(path))
            details.setPostProcessor(post)
            context.addLayerToLoadOnCompletion(path, details)
        return {self.OUTPUT: result.output, self.PER_YEAR_DIR: self._per_year_dir, self.REPORT: result.report_path}
