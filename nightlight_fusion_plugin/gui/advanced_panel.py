"""Advanced options: sampler overrides, ensemble, seed, temperature, uncertainty, device, threads, satellite/year,
reference year."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessing, QgsSettings
from qgis.gui import QgsCollapsibleGroupBox, QgsDoubleSpinBox, QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLineEdit, QSpinBox, QWidget

from ..core.engine.models import ModelEntry
from .common import SETTINGS, onnx_devices

SERIES_PARAMETERS = ("SEED", "DEVICE", "THREADS", "BATCH_SIZE", "SAMPLER", "STEPS", "TEMPERATURE")  # what a series takes
DEFAULT_TEMPERATURE = 0.8  # nightlightfusion:fuse's default: the dialog passes TEMPERATURE only when it differs
SAMPLING_FAMILIES = ("diffusion", "flow_matching")


class AdvancedPanel(QgsCollapsibleGroupBox):
    """Collapsed by default; what applies to the chosen model (`set_model`) is enabled, the rest greyed out."""

    changed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTitle(self.tr("Advanced"))
        tr = self.tr
        self.setCollapsed(True)
        self.setSettingGroup("NightlightFusionAdvanced")
        self.sampler_combo = QComboBox(self)
        self.sampler_combo.setToolTip(tr("Explicit sampler; overrides the speed level"))
        self.steps_spin = self._spin(0, 1000, tr("Sampler steps; overrides the speed level"), tr("from the speed level"))
        self.ensemble_spin = self._spin(1, 64, tr("Ensemble size K: the result is the mean of K samples (K× the time)"))
        self.seed_spin = self._spin(0, 2**31 - 1, tr("Random seed (the same seed gives the same result)"))
        self.temperature_spin = QgsDoubleSpinBox(self)
        self.temperature_spin.setRange(0.0, 2.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setClearValue(DEFAULT_TEMPERATURE)
        self.temperature_spin.setValue(DEFAULT_TEMPERATURE)
        self.temperature_spin.setToolTip(
            tr("Normalizing flows only: the scale of the random latent (0 = no sampling noise, deterministic; 0.8 usual)")
        )
        self.uncertainty_check = QCheckBox(tr("Write the uncertainty (ensemble standard deviation)"), self)
        self.uncertainty_check.setToolTip(tr("Needs a generative model and K ≥ 2 (K = 2 is used if 1 is set)"))
        self.uncertainty_widget = QgsFileWidget(self)
        self.uncertainty_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.uncertainty_widget.setFilter(tr("GeoTIFF (*.tif *.tiff)"))
        self.uncertainty_widget.lineEdit().setPlaceholderText(tr("[Save to temporary file]"))
        self.uncertainty_widget.setToolTip(tr("Uncertainty GeoTIFF; empty: a temporary file"))
        self.device_combo = QComboBox(self)
        self.device_combo.addItem(tr("Auto"), "auto")
        for device in onnx_devices():
            self.device_combo.addItem(device.upper() if device in ("cpu", "cuda") else device, device)
        self.device_combo.setToolTip(tr("Where the model runs (onnxruntime providers available here); Auto prefers a GPU"))
        self.threads_spin = self._spin(0, 256, tr("CPU threads for the model (remembered)"), tr("all cores"))
        self.batch_spin = self._spin(1, 256, tr("Tiles per model call: larger is faster on a GPU, uses more memory (remembered)"))
        self.satellite_edit = QLineEdit(self)
        self.satellite_edit.setPlaceholderText(tr("from the file name (e.g. F18)"))
        self.satellite_edit.setToolTip(
            tr("DMSP satellite for the Elvidge et al. (2014) intercalibration; pre-filled from NOAA file names (F182013…)")
        )
        year_tip = tr("DMSP year for the intercalibration; pre-filled from NOAA file names, editable")
        self.year_spin = self._spin(1991, 2013, year_tip, tr("from the file name"))
        reference_tip = tr(
            "Year of the VIIRS reference; pre-filled from its file name (viirs_2015…, VNL_v21_npp_2016…), editable. "
            "With the DMSP year it sets how much of a scene-wide DMSP/reference difference is read as the sensor"
        )
        self.reference_year_spin = self._spin(2011, 2049, reference_tip, tr("from the file name"))
        self.report_check = QCheckBox(tr("Write an HTML run report next to the output"), self)
        self.report_check.setToolTip(tr("Thumbnails of DMSP, reference and result and the QA numbers"))
        self.cache_check = QCheckBox(tr("Keep models loaded between runs (faster repeated runs, uses memory)"), self)
        self.cache_check.setToolTip(tr("Cache the onnxruntime sessions of the models used in this QGIS session"))
        satellite_row = QHBoxLayout()
        satellite_row.addWidget(self.satellite_edit)
        satellite_row.addWidget(self.year_spin)
        form = QFormLayout(self)
        form.addRow(tr("Sampler"), self.sampler_combo)
        form.addRow(tr("Steps"), self.steps_spin)
        form.addRow(tr("Ensemble K"), self.ensemble_spin)
        form.addRow(tr("Seed"), self.seed_spin)
        form.addRow(tr("Temperature"), self.temperature_spin)
        form.addRow(self.uncertainty_check)
        form.addRow(tr("Uncertainty output"), self.uncertainty_widget)
        form.addRow(tr("Device"), self.device_combo)
        form.addRow(tr("Threads"), self.threads_spin)
        form.addRow(tr("Tile batch"), self.batch_spin)
        form.addRow(tr("Satellite / year"), satellite_row)
        form.addRow(tr("Reference year"), self.reference_year_spin)
        form.addRow(self.report_check)
        form.addRow(self.cache_check)

        self.series = False
        self.set_model(None)
        self.load_settings()
        for signal in (
            self.sampler_combo.currentIndexChanged,
            self.steps_spin.valueChanged,
            self.ensemble_spin.valueChanged,
            self.uncertainty_check.toggled,
            self.device_combo.currentIndexChanged,
            self.threads_spin.valueChanged,
        ):
            signal.connect(self.changed)
        self.uncertainty_check.toggled.connect(self.uncertainty_widget.setEnabled)

    def _spin(self, low: int, high: int, tooltip: str, special: str = "") -> QSpinBox:
        spin = QSpinBox(self)
        spin.setRange(low, high)
        spin.setToolTip(tooltip)
        if special:  # the minimum stands for "not set": the parameter is left out
            spin.setSpecialValueText(special)
        return spin

    def set_model(self, entry: ModelEntry | None) -> None:
        """Offer the chosen model's samplers; grey out what does not apply to its family."""
        zoo = entry.zoo if entry else None
        family = zoo.family if zoo is not None else None
        self.sampler_combo.blockSignals(True)
        self.sampler_combo.clear()
        self.sampler_combo.addItem(self.tr("from the speed level"), None)
        if family in SAMPLING_FAMILIES:
            from ..core.engine.samplers import samplers_for

            for name in samplers_for(family):
                self.sampler_combo.addItem(name, name)
        self.sampler_combo.blockSignals(False)
        self.sampler_combo.setEnabled(family in SAMPLING_FAMILIES)
        self.steps_spin.setEnabled(family in SAMPLING_FAMILIES)
        self.family = family
        self.flow = family == "normalizing_flow"  # not isEnabled(): that is False too while the whole group is
        self.temperature_spin.setEnabled(self.flow)
        self._enable_ensemble()

    def _enable_ensemble(self) -> None:
        # a series runs one sample per year, without uncertainty: ensembles are single-year options
        sampling = self.family is not None and self.family != "unet"
        generative = sampling and not self.series
        self.ensemble_spin.setEnabled(generative)
        self.uncertainty_check.setEnabled(generative)
        if not sampling:
            self.uncertainty_check.setChecked(False)  # kept through a Series detour, so going back restores it
        self.uncertainty_widget.setEnabled(generative and self.uncertainty_check.isChecked())

    def set_series_mode(self, series: bool) -> None:
        """Series mode greys out what a series does not take: ensemble, uncertainty, satellite/year and reference
        year (per file in the series table), the HTML report (a series writes its JSON report)."""
        self.series = series
        for widget in (self.satellite_edit, self.year_spin, self.reference_year_spin, self.report_check):
            widget.setEnabled(not series)
        self._enable_ensemble()

    def series_parameters(self) -> dict:
        return {k: v for k, v in self.parameters("").items() if k in SERIES_PARAMETERS}

    def set_satellite_year(self, satellite: str, year: int) -> None:
        self.satellite_edit.setText(satellite)
        self.year_spin.setValue(year or self.year_spin.minimum())

    def set_reference_year(self, year: int | None) -> None:
        self.reference_year_spin.setValue(year or self.reference_year_spin.minimum())

    def device(self) -> str:
        return self.device_combo.currentData() or "auto"

    def threads(self) -> int | None:
        return self.threads_spin.value() or None

    def sampler(self) -> str | None:
        return self.sampler_combo.currentData()

    def ensemble(self) -> int:
        """The K the run will use: an uncertainty needs at least two samples."""
        return max(self.ensemble_spin.value(), 2 if self.uncertainty_check.isChecked() else 1)

    def load_settings(self) -> None:
        s = QgsSettings()
        self.device_combo.setCurrentIndex(max(self.device_combo.findData(s.value(SETTINGS + "device", "auto")), 0))
        self.threads_spin.setValue(int(s.value(SETTINGS + "threads", 0)))
        self.batch_spin.setValue(int(s.value(SETTINGS + "batch_size", 8)))
        self.report_check.setChecked(s.value(SETTINGS + "report", True, type=bool))
        self.cache_check.setChecked(s.value(SETTINGS + "cache_models", True, type=bool))

    def save_settings(self) -> None:
        # cache_models is read by the algorithm itself: it is a QGIS-session setting, not a parameter
        s = QgsSettings()
        s.setValue(SETTINGS + "device", self.device())
        s.setValue(SETTINGS + "threads", self.threads_spin.value())
        s.setValue(SETTINGS + "batch_size", self.batch_spin.value())
        s.setValue(SETTINGS + "report", self.report_check.isChecked())
        s.setValue(SETTINGS + "cache_models", self.cache_check.isChecked())

    def parameters(self, output: str) -> dict:
        """The advanced parameters; `output` (the result's path, '' for a temporary file) places the report."""
        params = {
            "SEED": self.seed_spin.value(),
            "DEVICE": self.device(),
            "ENSEMBLE": self.ensemble_spin.value(),
            "BATCH_SIZE": self.batch_spin.value(),
        }
        if self.threads():
            params["THREADS"] = self.threads()
        if self.satellite_edit.text().strip():
            params["SATELLITE"] = self.satellite_edit.text().strip()
        if self.year_spin.value() != self.year_spin.minimum():
            params["YEAR"] = self.year_spin.value()
        if self.reference_year_spin.value() != self.reference_year_spin.minimum():
            params["REFERENCE_YEAR"] = self.reference_year_spin.value()
        if self.sampler():
            params["SAMPLER"] = self.sampler()
        if self.steps_spin.value():
            params["STEPS"] = self.steps_spin.value()
        if self.flow and self.temperature_spin.value() != DEFAULT_TEMPERATURE:
            params["TEMPERATURE"] = self.temperature_spin.value()
        if self.uncertainty_check.isChecked():
            params["UNCERTAINTY"] = self.uncertainty_widget.filePath() or QgsProcessing.TEMPORARY_OUTPUT
        if self.report_check.isChecked():
            params["REPORT"] = str(Path(output).with_suffix(".report.html")) if output else QgsProcessing.TEMPORARY_OUTPUT
        return params
