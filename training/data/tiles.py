"""What every dataset does to a tile: physical arrays on the VIIRS grid into model space (the engine's own
steps, from core), and the random flips/rotations of training. Below the datasets: real.py, real_structure.py
and datasets.py all use it, none of them is imported here."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from nightlight_fusion_plugin.core.engine.transforms import condition_stack_v, radiance_to_model, reference_dmsp
from nightlight_fusion_plugin.core.methods.construct import scene_construct_of_arrays
from nightlight_fusion_plugin.core.raster.grids import upsample2_bilinear
from nightlight_fusion_plugin.core.sensor.intercalibration import intercalibration_for
from nightlight_fusion_plugin.core.sensor.scene_gain import ChangePrior

CONDITION_CHANNELS = ("dmsp", "reference", "reference_mask")


def to_model_space(
    dmsp_dn_fine: np.ndarray,
    satellite: str | None,
    year: int | None,
    reference: np.ndarray | None,
    target: np.ndarray | None,
    condition_version: int = 1,
    reference_dnc: np.ndarray | None = None,
    pixel_km: tuple[float, float] = (0.46, 0.46),
    traditional: np.ndarray | None = None,
    gap_years: float | None = None,
) -> dict[str, np.ndarray]:
    """Stack physical arrays on the VIIRS grid into model inputs (the same steps the inference engine takes:
    DMSP raw DN already resampled to the VIIRS grid -> intercalibration -> scaling).

    condition_version 2: reference_dnc is the reference simulated to intercalibrated DMSP (core's
    transforms.reference_dmsp, best computed on a context with a halo and cropped); when it is not given it is
    simulated from `reference` on the tile itself (the tile edge counts as dark beyond).

    condition_version 3: `traditional` is the traditional estimate (traditional_input, best on a context and
    cropped; computed on the tile itself when not given) and `gap_years` the signed years from the DMSP to the
    reference as the model is told them (None: unknown)."""
    intercal = intercalibration_for(satellite, year)
    dnc = intercal.apply(dmsp_dn_fine)
    if condition_version >= 2 and reference is not None and reference_dnc is None:
        reference_dnc = reference_dmsp(reference, pixel_km, intercal)
    if condition_version == 3 and traditional is None:
        coarse = dmsp_dn_fine[::2, ::2]  # the bilinear 2x upsampling keeps the coarse values at even pixels
        traditional = traditional_input(coarse, reference, satellite, year, pixel_km, gap_years, fine=dmsp_dn_fine)
    out = {"condition": condition_stack_v(dnc, reference, reference_dnc, condition_version, traditional, gap_years)}
    if target is not None:
        valid = np.isfinite(target) & np.isfinite(dmsp_dn_fine)
        out["target"] = np.where(valid, radiance_to_model(np.nan_to_num(target, nan=0.0)), 0.0)[None].astype(np.float32)
        out["valid"] = valid[None].astype(np.float32)
    return out


def augment(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random flip and rot90, the same for every array (night lights have no preferred orientation)."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = {}
    for key, a in arrays.items():
        a = np.rot90(a, k, axes=(-2, -1))
        out[key] = np.ascontiguousarray(a[..., ::-1] if flip else a)
    return out


@lru_cache(maxsize=1)
def _prior() -> ChangePrior:
    return ChangePrior.load()


def traditional_input(
    dmsp_dn_coarse: np.ndarray,
    reference: np.ndarray | None,
    satellite: str | None,
    year: int | None,
    pixel_km: tuple[float, float],
    gap_years: float | None,
    crop: tuple[slice, slice] | None = None,
    fine: np.ndarray | None = None,
) -> np.ndarray:
    """Condition v3's traditional estimate (radiance on the VIIRS grid) for raw DMSP DN at 30″ and the reference at
    15″ (None: no reference), both best given with a context margin and `crop` selecting the tile: the engine's own
    functions (core methods/construct.py), with the scene-wide values measured on the context, as a run measures
    them on its area. `fine`: the DMSP already upsampled to the VIIRS grid (with its nodata), else upsampled here."""
    intercal = intercalibration_for(satellite, year)
    coarse = np.asarray(dmsp_dn_coarse, np.float32)
    fine = upsample2_bilinear(coarse) if fine is None else fine
    construct = scene_construct_of_arrays(coarse, fine, reference, intercal, pixel_km, gap_years, _prior())
    return construct.estimate(fine, reference, pixel_km, crop)
