"""Datasets of aligned (condition, target) tiles for every model family.

Every item is a dict of float32 tensors in model space (nightlight_fusion_plugin.core.engine.transforms):
  condition [3, H, W]: DMSP (intercalibrated DN, upsampled to the VIIRS grid), VIIRS reference, reference mask
  target    [1, H, W]: VIIRS radiance of the DMSP year
  valid     [1, H, W]: 1 where the target is known (real rasters have nodata), else 0
"""

from .datasets import SyntheticPairs, build_dataset, to_model_space

__all__ = ["SyntheticPairs", "build_dataset", "to_model_space"]
