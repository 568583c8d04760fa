"""What the Nightlight Fusion algorithms share: layer -> file path, feedback <-> core callbacks, errors."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.errors import FusionError, require


def raster_file(layer: QgsRasterLayer | None, role: str) -> str | None:
    """The file behind a raster layer; core reads files with rasterio, not QGIS layers."""
    if layer is None:
        return None
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"The {role} layer '{layer.name()}' is served by the '{layer.providerType()}' provider, not a file. "
            "Save it as a GeoTIFF first (right-click › Export › Save As…)."
        )
    path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source()
    return path


@contextmanager
def inputs_untouched():
    """No GDAL PAM (.aux.xml) for the layers QGIS opens here: loading a raster layer from a file path computes
    statistics for its default renderer, which GDAL would save next to the user's input. Thread-local, so
    layers QGIS renders meanwhile in other threads keep their PAM."""
    try:
        from osgeo import gdal
    except ImportError:  # QGIS always ships GDAL's bindings; nothing to do without them
        yield
        return
    previous = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", previous)


class InputsUntouched:
    """Mixin (first base) for algorithms: input layers that Processing loads from file paths (qgis_process,
    batch mode, the modeler) leave no .aux.xml next to the inputs."""

    def checkParameterValues(self, parameters, context):  # noqa: N802
        with inputs_untouched():
            return super().checkParameterValues(parameters, context)

    def parameterAsRasterLayer(self, parameters, name, context):  # noqa: N802
        with inputs_untouched():
            return super().parameterAsRasterLayer(parameters, name, context)


def extent_parameter(algorithm, parameters: dict, name: str, context) -> tuple[tuple | None, str | None]:
    """An optional extent parameter as ((xmin, ymin, xmax, ymax), CRS WKT), or (None, None) when left empty."""
    if parameters.get(name) in (None, ""):
        return None, None
    rect = algorithm.parameterAsExtent(parameters, name, context)
    if rect.isNull():
        return None, None
    crs = algorithm.parameterAsExtentCrs(parameters, name, context)
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), (crs.toWkt() if crs.isValid() else None)


def keep_inputs_in_qgis_process(arguments: list[str]) -> bool:
    """qgis_process opens the file inputs as layers (computing statistics, saved as .aux.xml next to them)
    before any algorithm code runs, so the hooks above come too late. When the process was started to run one
    of this provider's algorithms, PAM is switched off for the whole (short-lived, single-algorithm) process."""
    if not any(a.startswith("nightlightfusion:") for a in arguments):
        return False
    try:
        from osgeo import gdal
    except ImportError:
        return False
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    return True


PLUGIN_DIR = Path(__file__).resolve().parent.parent


def precision_cache_dir() -> str | None:
    """Where QGIS keeps the measured precision choice: the user profile's folder (it moves with the profile; a
    profile copied to another machine is measured again, the choice is keyed by the machine). None outside QGIS."""
    from qgis.core import QgsApplication

    folder = QgsApplication.qgisSettingsDirPath()
    return str(Path(folder) / "nightlight_fusion") if folder else None


def help_path() -> Path:
    """The help page: `help/` in the installed plugin (pb_tool copies docs/help there), docs/help in a checkout."""
    for candidate in (PLUGIN_DIR / "help" / "index.html", PLUGIN_DIR.parent / "docs" / "help" / "index.html"):
        if candidate.is_file():
            return candidate
    return PLUGIN_DIR / "help" / "index.html"


def help_url(anchor: str = "") -> str:
    return help_path().as_uri() + (f"#{anchor}" if anchor else "")


def require_core() -> None:
    """Fail with install instructions (not a traceback) when rasterio is missing."""
    try:
        require("rasterio", "reading and writing rasters")
    except FusionError as exc:
        raise QgsProcessingException(str(exc)) from exc


def core_callbacks(feedback: QgsProcessingFeedback):
    """(progress, is_cancelled) callbacks for core, reporting through Processing's feedback."""
    last = [""]

    def progress(fraction: float, message: str) -> None:
        if hasattr(feedback, "detail"):  # the dialog's feedback shows "Tile 3/40" in its progress label
            feedback.detail = message
        feedback.setProgress(100.0 * fraction)
        if message != last[0] and not message.startswith(("Block", "Tile")):
            last[0] = message
            feedback.setProgressText(message)

    return progress, feedback.isCanceled


def run_core(call, feedback: QgsProcessingFeedback):
    """Run a core call, turning its user-facing errors into QgsProcessingException."""
    try:
        return call()
    except FusionError as exc:
        raise QgsProcessingException(str(exc)) from exc


class NightLightsStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies the night-lights colour ramp to a result layer when Processing loads it."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            from .style import apply_night_lights_style

            apply_night_lights_style(layer)


_POST_PROCESSORS: list[QgsProcessingLayerPostProcessorInterface] = []


def kept(processor: QgsProcessingLayerPostProcessorInterface) -> QgsProcessingLayerPostProcessorInterface:
    """A new post-processor for one LayerDetails.setPostProcessor call. The context takes the C++ object and
    deletes it with itself (so none is shared between runs), but the Python half, whose postProcessLayer does the
    work, dies with its last Python reference: the algorithm copy that set it, which the batch panel, a model's
    runner and runAndLoadResults delete before they load the results; the layers then came out unstyled. Kept
    here until the context has deleted it."""
    from qgis.PyQt import sip

    _POST_PROCESSORS[:] = [p for p in _POST_PROCESSORS if not sip.isdeleted(p)]
    _POST_PROCESSORS.append(processor)
    return processor


class SatelliteYearRasterAlgorithm(InputsUntouched, QgsProcessingAlgorithm):
    """One raster in, one raster out, with optional DMSP satellite/year: the shape of `intercalibrate` and
    `simulate_dmsp`. Subclasses name the input and call their core function in `run`."""

    INPUT_ROLE = ""  # "DMSP" or "VIIRS": also the input parameter's name
    INPUT_LABEL = ""
    MISSING_INPUT = ""
    OUTPUT_LABEL = ""
    SATELLITE, YEAR, OUTPUT = "SATELLITE", "YEAR", "OUTPUT"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self):  # noqa: N802
        return type(self)()

    def helpUrl(self) -> str:  # noqa: N802
        return help_url(self.name())

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT_ROLE, self.tr(self.INPUT_LABEL)))
        self.addParameter(QgsProcessingParameterString(self.SATELLITE, self.tr("DMSP satellite (e.g. F18)"), optional=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.YEAR, self.tr("DMSP year"), QgsProcessingParameterNumber.Integer, optional=True, minValue=1992, maxValue=2013
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr(self.OUTPUT_LABEL)))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.parameterAsRasterLayer(parameters, self.INPUT_ROLE, context)
        if layer is None:
            raise QgsProcessingException(self.tr(self.MISSING_INPUT))
        self._input = raster_file(layer, self.INPUT_ROLE)
        self._satellite = self.parameterAsString(parameters, self.SATELLITE, context) or None
        self._year = self.parameterAsInt(parameters, self.YEAR, context) if parameters.get(self.YEAR) not in (None, "") else None
        self._output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        return True

    def produce(self, progress, cancelled):
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        require_core()
        progress, cancelled = core_callbacks(feedback)
        result = run_core(lambda: self.produce(progress, cancelled), feedback)
        for note in result.notes:
            feedback.pushInfo(note)
        return {self.OUTPUT: result.output}
