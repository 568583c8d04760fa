"""The regression UNet's local light-sum term (issue #19: pooled sum of lights within ±10 %): an L1 in log space
predicts the median, which under-sums skewed radiance; block_sum_error ties 2-km block sums to the truth's."""

import numpy as np
import pytest
import torch

from nightlight_fusion_plugin.core.engine.transforms import radiance_to_model
from training import checkpoint as ckpt
from training.models import build_model
from training.models.regression import block_sum_error

TINY = {"family": "unet", "base_channels": 8, "channel_mult": [1, 2], "norm": "none", "activation": "relu"}


def _model_space(radiance: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(radiance_to_model(radiance.astype(np.float32)))[None, None]


def test_the_torch_radiance_is_core_transforms_radiance():
    from nightlight_fusion_plugin.core.engine.transforms import radiance_from_model as core_radiance
    from training.models.regression import radiance_from_model

    y = np.linspace(-1.2, 1.2, 97, dtype=np.float32)  # beyond both ends: the clamps agree too
    assert np.allclose(radiance_from_model(torch.from_numpy(y)).numpy(), core_radiance(y), rtol=1e-5, atol=1e-6)


def test_block_sums_see_what_a_median_misses():
    rng = np.random.default_rng(0)
    truth = np.exp(rng.normal(1.0, 1.5, (32, 32)))  # skewed radiance: the mean is well above the median
    median = np.full_like(truth, np.median(truth))
    valid = torch.ones(1, 1, 32, 32)
    assert float(block_sum_error(_model_space(truth), _model_space(truth), valid)) == pytest.approx(0.0, abs=1e-5)
    # same pixel-wise median error either way, but the median under-sums every block
    dark = float(block_sum_error(_model_space(median), _model_space(truth), valid))
    assert dark > 0.3
    valid[..., :8, :] = 0  # invalid pixels count in neither sum
    hole = _model_space(np.where(np.arange(32)[:, None] < 8, 500.0, truth))
    assert float(block_sum_error(hole, _model_space(truth), valid)) == pytest.approx(0.0, abs=1e-5)


def test_the_sum_term_adds_to_the_loss_and_a_run_may_switch_it_on():
    model = build_model({**TINY, "sum_weight": 0.5})
    batch = {
        "condition": torch.rand(2, 3, 16, 16) * 2 - 1,
        "target": torch.rand(2, 1, 16, 16) * 2 - 1,
        "valid": torch.ones(2, 1, 16, 16),
    }
    loss, logs = model.loss(batch)
    assert logs["loss"] == pytest.approx(logs["pixel_loss"] + 0.5 * logs["sum_loss"], rel=1e-5)
    loss.backward()
    state = {"meta": {"family": "unet", "model_table": {k: v for k, v in TINY.items() if k != "family"}}}
    ckpt.check_compatible(state, {**TINY, "sum_weight": 0.5})  # the loss only: the weights still fit
    with pytest.raises(ckpt.CheckpointError, match="base_channels"):
        ckpt.check_compatible(state, {**TINY, "base_channels": 16})
    with pytest.raises(ValueError, match="sum_weight"):
        build_model({**TINY, "sum_weight": -1.0})
