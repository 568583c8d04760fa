from __future__ import annotations

import json
import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMessageLog,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsSettings,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.engine.samplers import SAMPLERS
from ..core.errors import FusionError
from .common import (
    InputsUntouched,
    NightLightsStyler,
    core_callbacks,
    extent_parameter,
    help_url,
    kept,
    precision_cache_dir,
    raster_file,
    require_core,
    run_core,
)

DEVICES = ["auto", "cpu", "cuda", "directml", "coreml"]
PRECISIONS = ["auto", "fp32", "int8", "fp16"]
HELP = """<p>Fuses a DMSP-OLS stable-lights raster (DN 0–63) into a VIIRS-like radiance raster (nW/cm²/sr).</p>
<p><b>DMSP</b>: single-band DMSP-OLS stable lights of the target year. <b>VIIRS</b> (optional): a VIIRS DNB
composite of a reference year; the output is written on its grid. Without it the output is on a 15″ EPSG:4326
grid. <b>EXTENT</b> (optional) restricts the area. <b>MODEL</b>: <code>baseline</code> is the traditional method
(Elvidge et al. 2014 intercalibration + DN→radiance calibration fitted to the reference); the other models are
the bundled ONNX models (<code>python -m nightlight_fusion_plugin models</code> lists them).
<b>SPEED</b>: the model's speed level, 1 = fastest (sampler and steps measured for each level);
<b>SAMPLER</b>/<b>STEPS</b> override it. <b>TEMPERATURE</b>: normalizing flows only, the scale of their random
latent (0: no sampling noise, deterministic; 0.8: the default). <b>ENSEMBLE</b> averages K samples;
<b>UNCERTAINTY</b> (optional output)
is their standard deviation. <b>DEVICE</b>: auto picks CUDA/DirectML/CoreML when onnxruntime has it, else the CPU;
the DEVICE output says which ran. <b>PRECISION</b>: auto runs the faster variant of the model that passed the
real-imagery gate (int8 where it pays on this CPU, fp16 on a GPU), measured once on this machine and remembered;
fp32/int8/fp16 ask for that variant; the PRECISION output says which ran and why.
<b>MASK</b> (optional polygon layer): only pixels inside its polygons are written,
the others are nodata; without EXTENT the polygons' extent is the area. <b>THREADS</b>/<b>BATCH_SIZE</b>: CPU threads
and tiles per model call. <b>REPORT</b> (optional HTML): thumbnails of DMSP, reference and result and a QA check (the
result re-simulated to DMSP vs the input DMSP: Pearson r of DN, also the QA_PEARSON_R output).
 <b>SATELLITE</b>/<b>YEAR</b> choose the intercalibration coefficients when the
file name does not say (NOAA names such as F182013 are recognised). <b>REFERENCE_YEAR</b>: the VIIRS reference's year
when its file name does not say (viirs_2015…, VNL_v21_npp_2016…, VNP46A3.A2023032… are recognised); with the DMSP
year it sets how much of a scene-wide difference between the DMSP and the reference is taken as the DMSP's sensor
rather than as change (a year apart: most of it; ten years apart: little).</p>
<p>Nodata and NaN in the inputs stay nodata in the output; negative VIIRS radiance is valid.</p>"""


def model_ids() -> tuple[list[str], str]:
    """Model ids for the MODEL enum; a broken zoo must not stop the plugin from loading (baseline stays)."""
    try:
        from ..core.engine.models import available_models, default_model

        return [m.id for m in available_models()], default_model().id
    except FusionError as exc:
        QgsMessageLog.logMessage(str(exc), "Nightlight Fusion")
        return ["baseline"], "baseline"


class FuseAlgorithm(InputsUntouched, QgsProcessingAlgorithm):
    DMSP, VIIRS, EXTENT, MODEL, SEED, OUTPUT = "DMSP", "VIIRS", "EXTENT", "MODEL", "SEED", "OUTPUT"
    SPEED, SAMPLER, STEPS, ENSEMBLE, DEVICE, UNCERTAINTY = "SPEED", "SAMPLER", "STEPS", "ENSEMBLE", "DEVICE", "UNCERTAINTY"
    SATELLITE, YEAR, REFERENCE_YEAR = "SATELLITE", "YEAR", "REFERENCE_YEAR"
    MASK, THREADS, BATCH_SIZE, REPORT = "MASK", "THREADS", "BATCH_SIZE", "REPORT"
    TEMPERATURE = "TEMPERATURE"

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

    def helpUrl(self) -> str:  # noqa: N802
        return help_url("fuse")

    def initAlgorithm(self, config=None):  # noqa: N802
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(QgsProcessingParameterRasterLayer(self.DMSP, self.tr("DMSP-OLS stable lights (DN 0–63)")))
        self.addParameter(
            QgsProcessingParameterRasterLayer(self.VIIRS, self.tr("VIIRS DNB reference (nW/cm²/sr)"), optional=True)
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Area"), optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.MASK,
                self.tr("Mask polygons (only pixels inside are written)"),
                [QgsProcessing.TypeVectorPolygon],
                optional=True,
            )
        )
        ids, default = model_ids()
        self.addParameter(
            QgsProcessingParameterEnum(self.MODEL, self.tr("Model"), options=ids, defaultValue=default, usesStaticStrings=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SPEED, self.tr("Speed level (1 = fastest; empty: the model's default)"), integer, optional=True, minValue=1
            )
        )
        self.addParameter(QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"), integer, defaultValue=0, minValue=0))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.DEVICE, self.tr("Device"), options=DEVICES, defaultValue="auto", usesStaticStrings=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "PRECISION", self.tr("Precision"), options=PRECISIONS, defaultValue="auto", usesStaticStrings=True
            )
        )
        advanced = [
            QgsProcessingParameterEnum(
                self.SAMPLER,
                self.tr("Sampler (overrides the speed level)"),
                options=list(SAMPLERS),
                optional=True,
                usesStaticStrings=True,
            ),
            QgsProcessingParameterNumber(self.STEPS, self.tr("Sampler steps"), integer, optional=True, minValue=1),
            QgsProcessingParameterNumber(
                self.ENSEMBLE, self.tr("Ensemble size K (mean of K samples)"), integer, defaultValue=1, minValue=1, maxValue=64
            ),
            QgsProcessingParameterNumber(
                self.TEMPERATURE,
                self.tr("Normalizing-flow temperature (latent scale; 0 = no sampling noise)"),
                QgsProcessingParameterNumber.Double,
                defaultValue=0.8,
                minValue=0.0,
                maxValue=2.0,
            ),
            QgsProcessingParameterString(self.SATELLITE, self.tr("DMSP satellite (e.g. F18)"), optional=True),
            QgsProcessingParameterNumber(self.YEAR, self.tr("DMSP year"), integer, optional=True, minValue=1992, maxValue=2013),
            QgsProcessingParameterNumber(
                self.REFERENCE_YEAR, self.tr("VIIRS reference year"), integer, optional=True, minValue=2012, maxValue=2100
            ),
            QgsProcessingParameterNumber(
                self.THREADS, self.tr("CPU threads (empty: all cores)"), integer, optional=True, minValue=1, maxValue=256
            ),
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, self.tr("Tiles per model call (batch size)"), integer, defaultValue=8, minValue=1, maxValue=256
            ),
        ]
        for param in advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Fused VIIRS-like radiance")))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.UNCERTAINTY, self.tr("Uncertainty (ensemble standard deviation)"), optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.REPORT,
                self.tr("Run report (HTML)"),
                self.tr("HTML files (*.html)"),
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputString("DEVICE", self.tr("Device that ran the model")))
        self.addOutput(QgsProcessingOutputString("PRECISION", self.tr("Precision that ran, and why")))
        self.addOutput(QgsProcessingOutputNumber("QA_PEARSON_R", self.tr("Re-simulated DMSP vs input DMSP: Pearson r")))
        self.addOutput(QgsProcessingOutputNumber("SECONDS", self.tr("Run time (s)")))
        self.addOutput(QgsProcessingOutputString("SAMPLER", self.tr("Sampler, steps and NFE used")))

    def _optional_int(self, parameters, name, context):
        return self.parameterAsInt(parameters, name, context) if parameters.get(name) not in (None, "") else None

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        # Layers live in the main thread: resolve them to files here, process in the worker thread.
        dmsp = self.parameterAsRasterLayer(parameters, self.DMSP, context)
        if dmsp is None:
            raise QgsProcessingException(self.tr("No DMSP layer given: choose a DMSP-OLS stable-lights raster."))
        self._dmsp = raster_file(dmsp, "DMSP")
        self._viirs = raster_file(self.parameterAsRasterLayer(parameters, self.VIIRS, context), "VIIRS")
        self._extent, self._extent_crs = extent_parameter(self, parameters, self.EXTENT, context)
        # MODEL left out (qgis_process, scripts): the engine's recommendation for these inputs, which with a VIIRS
        # reference is the manifest's default_with_reference, not the enum's reference-free default.
        given = parameters.get(self.MODEL) not in (None, "")
        self._model = (self.parameterAsEnumString(parameters, self.MODEL, context) or None) if given else None
        self._seed = self.parameterAsInt(parameters, self.SEED, context)
        self._speed = self._optional_int(parameters, self.SPEED, context)
        self._sampler = self.parameterAsEnumString(parameters, self.SAMPLER, context) or None
        self._steps = self._optional_int(parameters, self.STEPS, context)
        self._ensemble = self._optional_int(parameters, self.ENSEMBLE, context)
        self._temperature = self.parameterAsDouble(parameters, self.TEMPERATURE, context)  # its default when absent
        self._device = self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto"
        self._precision = self.parameterAsEnumString(parameters, "PRECISION", context) or "auto"
        self._satellite = self.parameterAsString(parameters, self.SATELLITE, context) or None
        self._year = self._optional_int(parameters, self.YEAR, context)
        self._reference_year = self._optional_int(parameters, self.REFERENCE_YEAR, context)
        self._threads = self._optional_int(parameters, self.THREADS, context)
        self._batch_size = self._optional_int(parameters, self.BATCH_SIZE, context) or 8
        self._mask = self._export_mask(parameters, context)
        # a plugin-wide setting (the dialog's "keep models loaded"), not a parameter: it changes speed, not results
        self._cache_models = QgsSettings().value("NightlightFusion/cache_models", True, type=bool)
        self._report = None
        if parameters.get(self.REPORT) not in (None, ""):
            self._report = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        self._uncertainty = None
        if parameters.get(self.UNCERTAINTY) not in (None, ""):
            self._uncertainty = self.parameterAsOutputLayer(parameters, self.UNCERTAINTY, context) or None
        return True

    def _export_mask(self, parameters, context) -> str | None:
        """The MASK polygons as a GeoJSON file in EPSG:4326 (core reads files, not QGIS layers)."""
        if parameters.get(self.MASK) in (None, ""):
            return None
        source = self.parameterAsSource(parameters, self.MASK, context)
        if source is None:
            raise QgsProcessingException(self.tr("The mask layer cannot be read; choose a polygon layer."))
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PolygonGeometry:
            raise QgsProcessingException(self.tr("The mask must be a polygon layer."))
        to_wgs84 = QgsCoordinateTransform(
            source.sourceCrs(), QgsCoordinateReferenceSystem("EPSG:4326"), context.transformContext()
        )
        features = []
        for feature in source.getFeatures():
            geometry = feature.geometry()
            if geometry.isNull() or geometry.isEmpty():
                continue
            geometry.transform(to_wgs84)
            features.append({"type": "Feature", "properties": {}, "geometry": json.loads(geometry.asJson(9))})
        if not features:
            raise QgsProcessingException(self.tr("The mask layer has no polygons (or none selected); nothing would be written."))
        path = QgsProcessingUtils.generateTempFilename("nightlightfusion_mask.geojson")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"type": "FeatureCollection", "features": features}, fh)
        return path

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        require_core()
        from ..core.pipeline.fuse import FuseRequest, fuse

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
            reference_year=self._reference_year,
            speed=self._speed,
            sampler=self._sampler,
            steps=self._steps,
            ensemble=None if (self._uncertainty and (self._ensemble or 1) < 2) else self._ensemble,  # core picks 2
            temperature=self._temperature,
            uncertainty=self._uncertainty,
            device=self._device,
            precision=self._precision,
            precision_cache=precision_cache_dir(),
            threads=self._threads,
            cache_models=self._cache_models,
            batch_size=self._batch_size,
            mask=self._mask,
            overwrite=True,  # Processing's destination widget already asked before overwriting
        )
        progress, cancelled = core_callbacks(feedback)
        result = run_core(lambda: fuse(request, progress, cancelled), feedback)
        for note in result.notes:
            feedback.pushInfo(note)
        for path in (result.output, result.uncertainty):
            if path and context.willLoadLayerOnCompletion(path):
                context.layerToLoadOnCompletionDetails(path).setPostProcessor(kept(NightLightsStyler()))
        qa = self._write_report(result, feedback) if self._report else None
        return {
            self.REPORT: self._report,
            "QA_PEARSON_R": qa["pearson_r"] if qa else None,
            "SECONDS": result.seconds,
            self.OUTPUT: result.output,
            self.UNCERTAINTY: result.uncertainty,
            "DEVICE": result.device,
            "PRECISION": result.tags.get("NLF_PRECISION", "fp32 (traditional method)"),
            "SAMPLER": result.sampler or "traditional (no sampling)",
        }

    def _write_report(self, result, feedback) -> dict | None:
        from ..core.report.run_report import dmsp_consistency, write_report

        feedback.setProgressText(self.tr("Writing the run report"))
        qa = None
        try:
            qa = dmsp_consistency(result.output, self._dmsp, self._satellite, self._year)
            feedback.pushInfo(f"QA: re-simulated DMSP vs input DMSP: Pearson r {qa['pearson_r']:.3f} over {qa['pixels']} px")
        except FusionError as exc:  # QA is informative; a failure must not lose the result
            feedback.reportError(f"QA skipped: {exc}", False)
        write_report(self._report, result, self._dmsp, self._viirs, qa)
        return qa
