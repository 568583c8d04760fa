"""nightlightfusion:series: a thin front end to core.series.run_series."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.engine.samplers import SAMPLERS
from .common import (
    InputsUntouched,
    NightLightsStyler,
    core_callbacks,
    extent_parameter,
    help_url,
    inputs_untouched,
    kept,
    raster_file,
    require_core,
    run_core,
)
from .fuse_algorithm import DEVICES, model_ids

FITS = ("prior", "local-trend")  # core/temporal.py FITS (not imported here: core may lack its dependencies)

HELP = """<p>One VIIRS-like radiance map per DMSP year, plus the real VIIRS years, as a multi-band GeoTIFF whose band
descriptions are the years (and, with <b>PER_YEAR_DIR</b>, one GeoTIFF per year).</p>
<p><b>DMSP</b>: DMSP-OLS stable lights of several years (1992–2013); satellite and year are read from NOAA names
(F152005, F15_2005) or from <b>YEARS</b> (comma-separated, in the order of the layers). A year flown by two satellites
is intercalibrated and fused per satellite, then averaged. <b>VIIRS</b>: one or more references (year in the name);
each DMSP year uses the one nearest in time; all inputs are warped onto the earliest reference's grid.
<b>MODEL</b>/<b>SEED</b>: the same for every year. <b>TEMPORAL_SMOOTHING</b>: one whole-scene factor per DMSP year;
<b>TEMPORAL_FIT</b> <i>prior</i> (default): each year's level measured from the DMSP through the sensor model, smoothed
jointly with the VIIRS years under the known satellite-gain spread (a one-year jump is gain, a lasting step is
change); <i>local-trend</i>: the earlier per-year gain against a Theil–Sen trend (core/temporal.py).
The series report (JSON next to
the output) gives year-to-year sum-of-lights ratios, the DMSP→VIIRS seam step and the trend-sign disagreement.
Per-year layers are loaded with a fixed temporal range (their year) for the Temporal Controller.</p>
<p>Optional: <b>SATELLITES</b> (comma-separated, one per DMSP layer, empty entries: from the name),
<b>VIIRS_YEARS</b> (one per reference), <b>INCLUDE_VIIRS</b> (the real VIIRS years as bands), <b>EXTENT</b>, and,
as in <code>fuse</code>, <b>SPEED</b>, <b>SAMPLER</b>, <b>STEPS</b>, <b>TEMPERATURE</b>, <b>DEVICE</b>,
<b>THREADS</b>, <b>BATCH_SIZE</b>. <b>OVERWRITE</b> off: stop, writing nothing, when a file of the series exists.
Outputs: <b>LABELS</b> (the band labels, comma-separated) and <b>PER_YEAR_FILES</b>.</p>"""


class _YearRange(QgsProcessingLayerPostProcessorInterface):
    """QGIS 3.22 has no per-band time for one raster: each per-year layer gets its year as a fixed range and
    the series' shared stretch (gui/series_layers.py, which the dialog uses too)."""

    def __init__(self, year: int, maximum: float | None = None):
        super().__init__()
        self.year, self.maximum = year, maximum

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            from .series_layers import style_year

            style_year(layer, self.year, self.maximum)


class SeriesAlgorithm(InputsUntouched, QgsProcessingAlgorithm):
    DMSP, VIIRS, YEARS, MODEL, SEED = "DMSP", "VIIRS", "YEARS", "MODEL", "SEED"
    TEMPORAL_SMOOTHING, OUTPUT, PER_YEAR_DIR, REPORT = "TEMPORAL_SMOOTHING", "OUTPUT", "PER_YEAR_DIR", "REPORT"
    TEMPORAL_FIT = "TEMPORAL_FIT"
    SATELLITES, VIIRS_YEARS, INCLUDE_VIIRS, EXTENT = "SATELLITES", "VIIRS_YEARS", "INCLUDE_VIIRS", "EXTENT"
    SPEED, SAMPLER, STEPS, TEMPERATURE = "SPEED", "SAMPLER", "STEPS", "TEMPERATURE"
    DEVICE, THREADS, BATCH_SIZE, OVERWRITE = "DEVICE", "THREADS", "BATCH_SIZE", "OVERWRITE"
    LABELS, PER_YEAR_FILES = "LABELS", "PER_YEAR_FILES"

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
        integer = QgsProcessingParameterNumber.Integer
        # the options the dialog's area, model and advanced panels set (optional: the earlier calls stay valid)
        advanced = [
            QgsProcessingParameterString(
                self.SATELLITES, self.tr("DMSP satellites, comma-separated (empty: from names)"), optional=True
            ),
            QgsProcessingParameterString(
                self.VIIRS_YEARS, self.tr("VIIRS years, comma-separated (empty: from names)"), optional=True
            ),
            QgsProcessingParameterBoolean(self.INCLUDE_VIIRS, self.tr("The real VIIRS years as bands of the series"), True),
            QgsProcessingParameterEnum(
                self.TEMPORAL_FIT, self.tr("Temporal fit"), list(FITS), defaultValue=FITS[0], usesStaticStrings=True
            ),
            QgsProcessingParameterExtent(self.EXTENT, self.tr("Area"), optional=True),
            QgsProcessingParameterNumber(
                self.SPEED, self.tr("Speed level (1 = fastest; empty: the model's default)"), integer, optional=True, minValue=1
            ),
            QgsProcessingParameterEnum(
                self.SAMPLER, self.tr("Sampler (overrides the speed level)"), list(SAMPLERS), optional=True,
                usesStaticStrings=True,
            ),
            QgsProcessingParameterNumber(self.STEPS, self.tr("Sampler steps"), integer, optional=True, minValue=1),
            QgsProcessingParameterNumber(
                self.TEMPERATURE, self.tr("Normalizing-flow temperature"), QgsProcessingParameterNumber.Double,
                defaultValue=0.8, minValue=0.0, maxValue=2.0,
            ),
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), DEVICES, defaultValue="auto", usesStaticStrings=True),
            QgsProcessingParameterNumber(
                self.THREADS, self.tr("CPU threads (empty: all cores)"), integer, optional=True, minValue=1, maxValue=256
            ),
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, self.tr("Tiles per model call (batch size)"), integer, defaultValue=8, minValue=1, maxValue=256
            ),
            # on by default: Processing's destination widget asks before an existing OUTPUT is replaced
            QgsProcessingParameterBoolean(self.OVERWRITE, self.tr("Replace existing files of the series"), True),
        ]  # fmt: skip
        for param in advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Series (one band per year)")))
        self.addParameter(
            QgsProcessingParameterFolderDestination(
                self.PER_YEAR_DIR, self.tr("Also one GeoTIFF per year in"), optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString(self.REPORT, self.tr("Series report (JSON file)")))
        self.addOutput(QgsProcessingOutputString(self.LABELS, self.tr("Band labels (years), comma-separated")))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.PER_YEAR_FILES, self.tr("One GeoTIFF per year")))

    def _optional_int(self, parameters, name, context):
        return self.parameterAsInt(parameters, name, context) if parameters.get(name) not in (None, "") else None

    def _list(self, parameters, name, context, cast):
        text = self.parameterAsString(parameters, name, context).strip()
        if not text:
            return None
        try:
            return [cast(v.strip()) for v in text.split(",")]
        except ValueError as exc:
            raise QgsProcessingException(self.tr(f"{name} must be comma-separated years, got '{text}'.")) from exc

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        with inputs_untouched():  # file paths are opened as layers here: no .aux.xml next to the inputs
            dmsp = self.parameterAsLayerList(parameters, self.DMSP, context)
            viirs = self.parameterAsLayerList(parameters, self.VIIRS, context)
        if not dmsp:
            raise QgsProcessingException(self.tr("No DMSP layers given: choose DMSP-OLS rasters of several years."))
        self._dmsp = [raster_file(layer, "DMSP") for layer in dmsp]
        self._viirs = [raster_file(layer, "VIIRS") for layer in viirs]
        self._years = self._list(parameters, self.YEARS, context, int)
        self._viirs_years = self._list(parameters, self.VIIRS_YEARS, context, int)
        self._satellites = self._list(parameters, self.SATELLITES, context, str)
        self._include_viirs = self.parameterAsBoolean(parameters, self.INCLUDE_VIIRS, context)
        self._extent, self._extent_crs = extent_parameter(self, parameters, self.EXTENT, context)
        self._speed = self._optional_int(parameters, self.SPEED, context)
        self._sampler = self.parameterAsEnumString(parameters, self.SAMPLER, context) or None
        self._steps = self._optional_int(parameters, self.STEPS, context)
        self._temperature = self.parameterAsDouble(parameters, self.TEMPERATURE, context)
        self._device = self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto"
        self._threads = self._optional_int(parameters, self.THREADS, context)
        self._batch_size = self._optional_int(parameters, self.BATCH_SIZE, context) or 8
        self._overwrite = self.parameterAsBoolean(parameters, self.OVERWRITE, context)
        self._model = self.parameterAsEnumString(parameters, self.MODEL, context) or None
        self._seed = self.parameterAsInt(parameters, self.SEED, context)
        self._smooth = self.parameterAsBoolean(parameters, self.TEMPORAL_SMOOTHING, context)
        self._fit = self.parameterAsEnumString(parameters, self.TEMPORAL_FIT, context) or FITS[0]
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        self._per_year_dir = None
        if parameters.get(self.PER_YEAR_DIR) not in (None, ""):
            self._per_year_dir = self.parameterAsString(parameters, self.PER_YEAR_DIR, context) or None
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        require_core()
        from ..core.pipeline.series import SeriesRequest, run_series

        request = SeriesRequest(
            dmsp=self._dmsp,
            viirs=self._viirs,
            output=self._output,
            per_year_dir=self._per_year_dir,
            years=self._years,
            satellites=self._satellites,
            viirs_years=self._viirs_years,
            include_viirs=self._include_viirs,
            temporal_smoothing=self._smooth,
            temporal_fit=self._fit,
            model=self._model,
            seed=self._seed,
            extent=self._extent,
            extent_crs=self._extent_crs,
            overwrite=self._overwrite,
            device=self._device,
            threads=self._threads,
            batch_size=self._batch_size,
            speed=self._speed,
            sampler=self._sampler,
            steps=self._steps,
            temperature=self._temperature,
        )
        progress, cancelled = core_callbacks(feedback)
        result = run_core(lambda: run_series(request, None, progress, cancelled), feedback)
        for note in result.notes:
            feedback.pushInfo(note)
        for ratio in result.report["year_to_year_ratios"]:
            # None: the earlier year has no light over the pixels valid in every year (core's report says so too)
            value = f"×{ratio['ratio']:.3f}" if ratio["ratio"] is not None else "n/a (no light in the earlier year)"
            feedback.pushInfo(f"sum of lights {ratio['from']} → {ratio['to']}: {value}")
        if result.output and context.willLoadLayerOnCompletion(result.output):
            context.layerToLoadOnCompletionDetails(result.output).setPostProcessor(kept(NightLightsStyler()))
        maximum = None
        if result.per_year:  # one stretch for all years (styled alike); read here, off the main thread
            from .series_layers import shared_maximum

            with inputs_untouched():  # the statistics would be saved as .aux.xml files next to the per-year files
                maximum = shared_maximum([(QgsRasterLayer(p, "", "gdal"), 1) for p in result.per_year])
        for path, label in zip(result.per_year, result.labels):
            post = kept(_YearRange(int(label.split()[0]), maximum))
            details = QgsProcessingContext.LayerDetails(f"Night lights {label}", context.project(), os.path.basename(path))
            details.setPostProcessor(post)
            context.addLayerToLoadOnCompletion(path, details)
        return {
            self.OUTPUT: result.output,
            self.PER_YEAR_DIR: self._per_year_dir,
            self.REPORT: result.report_path,
            self.LABELS: ",".join(result.labels),
            self.PER_YEAR_FILES: result.per_year,
        }
