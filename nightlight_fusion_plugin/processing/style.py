"""Night-lights rendering: a dark-to-white colour ramp with log-spaced stops (a log stretch). Used by
Processing's post-processing and by the dialog (it lives here, below gui/, so Processing never imports the GUI)."""

from __future__ import annotations

import math

from qgis.core import (
    QgsColorRampShader,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

# Black sky -> deep blue -> orange sodium light -> yellow -> white saturated cores.
NIGHT_LIGHTS_COLOURS = ["#000000", "#101b4a", "#7a2d7a", "#e8612c", "#ffc93c", "#fff7c2", "#ffffff"]
STOPS = 24


def log_stretch_stops(minimum: float, maximum: float, count: int = STOPS) -> list[float]:
    """Values whose log1p are evenly spaced between minimum and maximum."""
    span = max(maximum - minimum, 1e-6)
    return [minimum + math.expm1(math.log1p(span) * i / (count - 1)) for i in range(count)]


def _colour_at(t: float) -> QColor:
    position = t * (len(NIGHT_LIGHTS_COLOURS) - 1)
    i = min(int(position), len(NIGHT_LIGHTS_COLOURS) - 2)
    a, b, f = QColor(NIGHT_LIGHTS_COLOURS[i]), QColor(NIGHT_LIGHTS_COLOURS[i + 1]), position - i
    return QColor.fromRgbF(*(ca + (cb - ca) * f for ca, cb in zip(a.getRgbF()[:3], b.getRgbF()[:3])))


def apply_night_lights_style(
    layer: QgsRasterLayer, minimum: float = 0.0, maximum: float | None = None, band: int = 1
) -> None:
    """Pseudocolour with log-spaced stops from 0 to the 99.5th percentile radiance (flares would wash it out).
    `band`: which band renders (a series' years are bands of one file)."""
    provider = layer.dataProvider()
    if maximum is None:
        _, maximum = provider.cumulativeCut(band, 0.0, 0.995, layer.extent(), 250_000)
        if not math.isfinite(maximum) or maximum <= minimum:
            maximum = minimum + 1.0
    values = log_stretch_stops(minimum, maximum)
    items = [
        QgsColorRampShader.ColorRampItem(
            v, _colour_at(i / (len(values) - 1)), f"{v:.3g}" if i % 6 == 0 or i == len(values) - 1 else ""
        )
        for i, v in enumerate(values)
    ]
    ramp = QgsColorRampShader(minimum, maximum)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    ramp.setClip(False)
    ramp.setColorRampItemList(items)
    shader = QgsRasterShader(minimum, maximum)
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(provider, band, shader)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


UNCERTAINTY_RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]  # viridis: distinct from the radiance ramp


def apply_uncertainty_style(layer: QgsRasterLayer, maximum: float | None = None) -> None:
    """Viridis pseudocolour from 0 to the 98th percentile of the ensemble standard deviation."""
    provider = layer.dataProvider()
    if maximum is None:
        _, maximum = provider.cumulativeCut(1, 0.0, 0.98, layer.extent(), 250_000)
        if not math.isfinite(maximum) or maximum <= 0:
            maximum = 1.0
    count = len(UNCERTAINTY_RAMP)
    items = [
        QgsColorRampShader.ColorRampItem(maximum * i / (count - 1), QColor(colour), f"{maximum * i / (count - 1):.3g}")
        for i, colour in enumerate(UNCERTAINTY_RAMP)
    ]
    ramp = QgsColorRampShader(0.0, maximum)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    ramp.setColorRampItemList(items)
    shader = QgsRasterShader(0.0, maximum)
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(maximum)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
