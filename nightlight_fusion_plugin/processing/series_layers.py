"""A series' per-year layers for the Temporal Controller: one place for the dialog and `nightlightfusion:series`.

QGIS 3.22 has no per-band time for one raster, so every year becomes its own layer with its year as a fixed
temporal range: from the per-year GeoTIFFs when they were written, else one layer per band of the multi-band
series (the same file, each layer rendering its band). All years share one colour stretch (styled alike), so a
brighter year looks brighter.
"""

from __future__ import annotations

import math

from qgis.core import (
    QgsDateTimeRange,
    QgsInterval,
    QgsLayerTreeGroup,
    QgsProject,
    QgsRasterLayer,
    QgsRasterLayerTemporalProperties,
    QgsTemporalNavigationObject,
    QgsUnitTypes,
)
from qgis.PyQt.QtCore import QDate, QDateTime, QTime

from .style import apply_night_lights_style

CUT = 0.995  # the single-year style's upper percentile: flares would wash the ramp out


def label_year(label: str) -> int:
    """The year of a series band label ('2005', or '2013 VIIRS' when a real VIIRS year repeats a DMSP year)."""
    return int(label.split()[0])


def year_range(year: int) -> QgsDateTimeRange:
    """1 Jan 00:00:01 – 31 Dec 23:59:59. Not from midnight: QGIS 3.22's range overlap test ignores an excluded
    end, so the Temporal Controller's frame for the year before, [1 Jan y-1, 1 Jan y), would show year y too."""
    return QgsDateTimeRange(QDateTime(QDate(year, 1, 1), QTime(0, 0, 1)), QDateTime(QDate(year, 12, 31), QTime(23, 59, 59)))


def set_year(layer: QgsRasterLayer, year: int) -> None:
    """The layer's year as a fixed temporal range, active: the Temporal Controller shows it in that year only."""
    props = layer.temporalProperties()
    props.setMode(QgsRasterLayerTemporalProperties.ModeFixedTemporalRange)
    props.setFixedTemporalRange(year_range(year))
    props.setIsActive(True)


def shared_maximum(layers: list[tuple[QgsRasterLayer, int]]) -> float:
    """One stretch for all years: the largest of their 99.5th percentiles (layer, band)."""
    maxima = []
    for layer, band in layers:
        _, high = layer.dataProvider().cumulativeCut(band, 0.0, CUT, layer.extent(), 250_000)
        if math.isfinite(high):
            maxima.append(high)
    best = max(maxima, default=0.0)
    return best if best > 0 else 1.0


def style_year(layer: QgsRasterLayer, year: int, maximum: float | None, band: int = 1) -> None:
    apply_night_lights_style(layer, 0.0, maximum, band=band)
    set_year(layer, year)


def year_layers(
    output: str | None, per_year: list[str], labels: list[str], name: str = "Night lights {}"
) -> list[QgsRasterLayer]:
    """Styled, time-stamped layers, one per label: the per-year files if any, else the bands of `output`."""
    if per_year:
        sources = [(QgsRasterLayer(path, name.format(label)), 1) for path, label in zip(per_year, labels)]
    elif output:
        sources = [(QgsRasterLayer(output, name.format(label)), band) for band, label in enumerate(labels, start=1)]
    else:
        return []
    valid = [(layer, band) for layer, band in sources if layer.isValid()]
    maximum = shared_maximum(valid)
    for (layer, band), label in zip(sources, labels):
        if layer.isValid():
            style_year(layer, label_year(label), maximum, band)
    return [layer for layer, _ in valid]


def add_year_layers(layers: list[QgsRasterLayer], group_name: str, project: QgsProject | None = None) -> QgsLayerTreeGroup:
    """The years in one layer-tree group at the top, the latest year uppermost (what shows without time)."""
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, group_name)
    for layer in layers:
        project.addMapLayer(layer, False)
        group.insertLayer(0, layer)
    return group


def series_span(labels: list[str]) -> QgsDateTimeRange:
    """1 Jan of the first year, midnight (so frames start on New Year), to the end of the last year."""
    years = [label_year(label) for label in labels]
    return QgsDateTimeRange(QDateTime(QDate(min(years), 1, 1), QTime(0, 0)), year_range(max(years)).end())


def set_up_playback(labels: list[str], canvas=None, project: QgsProject | None = None) -> QgsDateTimeRange:
    """Project time and the canvas' Temporal Controller on the series' years, one frame per year, at the first
    year: pressing play steps through the years. The project's range is widened, never narrowed."""
    span = series_span(labels)
    settings = (project or QgsProject.instance()).timeSettings()
    current = settings.temporalRange()
    if current.begin().isValid() and current.end().isValid():
        span = QgsDateTimeRange(min(current.begin(), span.begin()), max(current.end(), span.end()))
    settings.setTemporalRange(span)
    settings.setTimeStepUnit(QgsUnitTypes.TemporalYears)
    settings.setTimeStep(1)
    controller = canvas.temporalController() if canvas is not None else None
    if isinstance(controller, QgsTemporalNavigationObject):
        controller.setTemporalExtents(span)
        controller.setFrameDuration(QgsInterval(1, QgsUnitTypes.TemporalYears))
        if controller.navigationMode() != QgsTemporalNavigationObject.Animated:
            controller.setNavigationMode(QgsTemporalNavigationObject.Animated)
        controller.setCurrentFrameNumber(controller.findBestFrameNumberForFrameStart(series_span(labels).begin()))
    return span
