"""Sensor models: what DMSP-OLS and VIIRS DNB record of a true night-light radiance field.

Pure numpy, shared by the training simulator, the `simulate dmsp` command and (later) the plugin's
`nightlightfusion:simulate_dmsp`. Every parameter lives in the two dataclasses below; their defaults are
the literature values ("before calibration"), and `DmspParameters.calibrated()` returns the values fitted
on the real Athens DMSP against Greece VIIRS (`python -m training.simulate calibrate`).

References
- Elvidge, C.D. et al. (1997) Mapping city lights with nighttime data from the DMSP OLS. PE&RS 63:727–734.
  OLS "smooth" data average 5×5 fine pixels on board: a ~2.7 km footprint, 30″ stable-lights grid.
- Small, C., Pozzi, F., Elvidge, C.D. (2005) Spatial analysis of global urban extent from DMSP-OLS night
  lights. RSE 96:277–291. Overglow/blooming extends lit areas by several km beyond the built-up edge.
- Elvidge, C.D. et al. (2014) National trends in satellite observed lighting 1992–2012. Second-order
  intercalibration per satellite-year; 6-bit DN saturating at 63 in urban cores.
- Baugh, K. et al. (2010) Development of a 2009 stable lights product using DMSP-OLS data. Proc. APAN 30.
  Stable lights remove background noise and ephemeral lights (fires, boats): dim DN set to 0.
- Li, X. et al. (2020) A harmonized global nighttime light dataset 1992–2018. Sci. Data 7:168. DMSP DN is
  a saturating sigmoid of (smoothed) log VIIRS radiance.
- Elvidge, C.D. et al. (2017) VIIRS night-time lights. IJRS 38:5860–5879. Annual composites at 15″,
  background noise of a few tenths of nW/cm²/sr, slightly negative dark background after stray-light
  correction, gas flares and fires up to thousands of nW/cm²/sr.
- Miller, S.D. et al. (2013) Illuminating the capabilities of the Suomi NPP VIIRS Day/Night Band. Remote
  Sens. 5:6717–6766. DNB ~742 m ground footprint, near-constant across the swath.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .intercalibration import DN_SATURATED, Intercalibration, intercalibration_for

CALIBRATED_DMSP_JSON = Path(__file__).parent / "data" / "dmsp_sensor_calibrated.json"
KM_PER_DEGREE = 111.32


@dataclass(frozen=True)
class DmspParameters:
    """DMSP-OLS stable-lights sensor model (radiance on a 15″ grid -> 6-bit DN on the 30″ grid)."""

    psf_fwhm_km: float = 2.7  # on-board 5×5 smoothing footprint (Elvidge 1997)
    halo_fwhm_km: float = 10.0  # blooming/overglow halo (Small 2005: several km)
    halo_weight: float = 0.3  # share of light spread into the halo
    amplitude_dn: float = 75.0  # DN the saturating response tends to (clipped to 63: hard saturation)
    half_saturation: float = 25.0  # nW/cm²/sr (blurred) giving amplitude/2 (Li 2020 sigmoid midpoint)
    slope: float = 1.2  # steepness of the response in log radiance
    detection_dn: float = 3.0  # stable-lights background removal: DN below set to 0 (Baugh 2010)
    geolocation_sigma_km: float = 0.0  # random whole-scene shift (0: deterministic)
    satellite: str = "F12"  # the gain of this satellite-year (Elvidge 2014); F12 1999 is the reference
    year: int = 1999

    @classmethod
    def calibrated(cls) -> DmspParameters:
        """The parameters fitted on real Athens DMSP vs Greece VIIRS (see docs/training_data.md)."""
        payload = json.loads(CALIBRATED_DMSP_JSON.read_text())
        return cls(**payload["parameters"])

    def with_satellite(self, satellite: str | None, year: int | None) -> DmspParameters:
        return replace(self, satellite=satellite or self.satellite, year=year or self.year)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ViirsParameters:
    """VIIRS DNB annual composite model (true radiance -> composite radiance, both on the 15″ grid)."""

    psf_fwhm_km: float = 0.75  # DNB footprint ~742 m (Miller 2013) on a 463 m grid
    noise_floor: float = 0.1  # nW/cm²/sr, std of dark-sky noise in annual composites (Elvidge 2017)
    noise_relative: float = 0.05  # relative noise of lit pixels (temporal variability of lights)
    background_offset: float = -0.05  # slightly negative dark background after stray-light correction
    outlier_rate: float = 2e-5  # fires/flare bursts per pixel: rare but huge
    outlier_radiance: tuple[float, float] = (300.0, 3000.0)


def pixel_size_km(latitude: float, pixel_deg: float) -> tuple[float, float]:
    """(dx, dy) in km of a geographic pixel at a latitude."""
    return (pixel_deg * KM_PER_DEGREE * max(np.cos(np.radians(latitude)), 0.05), pixel_deg * KM_PER_DEGREE)


def gaussian_blur(image: np.ndarray, sigma_px: tuple[float, float]) -> np.ndarray:
    """Gaussian blur (sigma in pixels along x and y) by FFT with reflected borders.

    The kernel sums to one, so total light is conserved for anything not near the border.
    """
    sx, sy = sigma_px
    if sx <= 0 and sy <= 0:
        return np.asarray(image, dtype=np.float32).copy()
    pad_y, pad_x = int(np.ceil(4 * sy)) + 1, int(np.ceil(4 * sx)) + 1
    padded = np.pad(np.asarray(image, dtype=np.float64), ((pad_y, pad_y), (pad_x, pad_x)), mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None]
    fx = np.fft.rfftfreq(padded.shape[1])[None, :]
    transfer = np.exp(-2 * np.pi**2 * ((sy * fy) ** 2 + (sx * fx) ** 2))  # Fourier transform of a Gaussian
    blurred = np.fft.irfft2(np.fft.rfft2(padded) * transfer, s=padded.shape)
    return blurred[pad_y:-pad_y, pad_x:-pad_x].astype(np.float32)


def shift_image(image: np.ndarray, dy_px: float, dx_px: float) -> np.ndarray:
    """Sub-pixel shift by a linear phase ramp (used for DMSP geolocation error); conserves total light."""
    if dy_px == 0 and dx_px == 0:
        return image
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    ramp = np.exp(-2j * np.pi * (fy * dy_px + fx * dx_px))
    return np.fft.irfft2(np.fft.rfft2(image) * ramp, s=image.shape).astype(np.float32)


def fwhm_to_sigma(fwhm: float) -> float:
    return fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def dmsp_blur(radiance: np.ndarray, pixel_km: tuple[float, float], params: DmspParameters) -> np.ndarray:
    """Footprint + blooming halo, on the fine grid; conserves total light."""
    core = fwhm_to_sigma(params.psf_fwhm_km)
    halo = fwhm_to_sigma(params.halo_fwhm_km)
    rad = np.maximum(np.nan_to_num(radiance, nan=0.0), 0.0)  # the OLS sees no negative light
    sharp = gaussian_blur(rad, (core / pixel_km[0], core / pixel_km[1]))
    wide = gaussian_blur(rad, (halo / pixel_km[0], halo / pixel_km[1]))
    return ((1.0 - params.halo_weight) * sharp + params.halo_weight * wide).astype(np.float32)


def aggregate(image: np.ndarray, factor: int = 2) -> np.ndarray:
    """Mean over factor×factor blocks (15″ -> 30″); NaN where every fine pixel is NaN."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks -> NaN, as intended
        return np.nanmean(blocks, axis=(1, 3)).astype(np.float32)


def dmsp_response(blurred_radiance: np.ndarray, params: DmspParameters) -> np.ndarray:
    """Reference-scale DN (F12 1999) of blurred radiance: a saturating Hill curve, continuous, unclipped."""
    x = np.maximum(np.asarray(blurred_radiance, dtype=np.float64), 0.0) / params.half_saturation
    xs = np.power(x, params.slope)
    return (params.amplitude_dn * xs / (1.0 + xs)).astype(np.float32)


def dmsp_digitise(reference_dn: np.ndarray, params: DmspParameters) -> np.ndarray:
    """Satellite gain (inverse Elvidge intercalibration), 6-bit quantisation, saturation, background removal."""
    dn = np.clip(reference_dn, 0.0, DN_SATURATED)
    raw = intercalibration_for(params.satellite, params.year).invert(dn)
    raw = np.clip(np.rint(raw), 0, DN_SATURATED)
    raw[raw < params.detection_dn] = 0
    return raw.astype(np.uint8)


def simulate_dmsp(
    radiance: np.ndarray,
    pixel_km: tuple[float, float],
    params: DmspParameters,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """DMSP-OLS stable-lights DN (uint8, half the resolution) from radiance on a 15″ grid."""
    fine = np.asarray(radiance, dtype=np.float32)
    if params.geolocation_sigma_km > 0 and rng is not None:
        dy, dx = rng.normal(0.0, params.geolocation_sigma_km, 2)
        fine = shift_image(np.nan_to_num(fine), dy / pixel_km[1], dx / pixel_km[0])
    coarse = aggregate(dmsp_blur(fine, pixel_km, params))
    return dmsp_digitise(dmsp_response(coarse, params), params)


def simulate_viirs(
    radiance: np.ndarray, pixel_km: tuple[float, float], params: ViirsParameters, rng: np.random.Generator
) -> np.ndarray:
    """VIIRS annual-composite radiance from true radiance on the same 15″ grid."""
    sigma = fwhm_to_sigma(params.psf_fwhm_km)
    observed = gaussian_blur(radiance, (sigma / pixel_km[0], sigma / pixel_km[1]))
    std = np.sqrt(params.noise_floor**2 + (params.noise_relative * np.maximum(observed, 0.0)) ** 2)
    observed = observed + params.background_offset + rng.normal(0.0, 1.0, observed.shape) * std
    outliers = rng.random(observed.shape) < params.outlier_rate
    if outliers.any():
        observed[outliers] += rng.uniform(*params.outlier_radiance, int(outliers.sum()))
    return observed.astype(np.float32)


def digitise(reference_dn: np.ndarray, intercal: Intercalibration, params: DmspParameters) -> np.ndarray:
    """Reference-scale DN -> the raw DN the request's satellite-year records (its exact intercalibration,
    inverted), quantised, saturating at 63, with the stable-lights background removal. Like
    dmsp_digitise, but with the intercalibration the run resolved (including its fall-backs)."""
    raw = intercal.invert(np.clip(np.nan_to_num(reference_dn), 0.0, DN_SATURATED))
    raw = np.clip(np.rint(raw), 0, DN_SATURATED)
    raw[raw < params.detection_dn] = 0
    return raw.astype(np.float32)
