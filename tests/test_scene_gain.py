"""core/scene_gain.py: a DMSP sensor darker or brighter than core's model, scene-wide, is not read as change in full
(reference-change and the reference-aware models), by a prior measured on training regions only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from nightlight_fusion_plugin.core.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.scene_gain import (
    MIN_PIXELS,
    PRIOR_JSON,
    Agreement,
    ChangePrior,
    dmsp_gain_correction,
    measure_log_gain,
)


def test_log_gain_is_the_median_log_ratio_of_lit_unsaturated_pixels():
    rng = np.random.default_rng(0)
    sim = rng.uniform(5, 40, size=(40, 40)).astype(np.float32)
    dnc = (sim + 0.5) * np.exp(-0.4) - 0.5
    raw = sim.copy()
    raw[:5] = 63.0  # saturated rows carry no level evidence, even when their ratio is wild
    dnc[:5] = 1000.0
    gain, pixels = measure_log_gain(dnc, sim, raw, sim, lit_dn=3.0, saturated_dn=62.5)
    assert gain == pytest.approx(-0.4, abs=1e-4) and pixels == 35 * 40
    dark = np.zeros((10, 10), np.float32)
    assert measure_log_gain(dark, dark, dark, dark, 3.0, 62.5) == (None, 0)
    few = np.full((1, MIN_PIXELS - 1), 10.0, np.float32)
    assert measure_log_gain(few, few, few, few, 3.0, 62.5)[0] is None


def test_prior_is_measured_by_the_command_and_splits_the_gain():
    payload = json.loads(PRIOR_JSON.read_text())
    assert payload["command"] == "python -m training.simulate change-prior"
    assert payload["calibration_samples"] >= 50 and payload["change_samples"] >= 10
    prior = ChangePrior.load()
    k = prior.calibration_share
    assert 0.0 < k < 1.0
    assert dmsp_gain_correction(Agreement(0.9, -0.5, 100), prior) == pytest.approx(np.exp(0.5 * k))
    assert dmsp_gain_correction(Agreement(0.9, None, 3), prior) == 1.0 and dmsp_gain_correction(None, prior) == 1.0
    assert dmsp_gain_correction(Agreement(0.9, 0.3, 100), ChangePrior(0.0, 0.2, "t")) == 1.0  # a perfect sensor
    # the local Wiener weight: measured close to 1 (Sudan's real local changes dwarf the drawn sensors' noise)
    assert 0.5 < prior.change_weight <= 1.0
    assert ChangePrior(0.2, 0.2, "t", sigma_local_noise=0.3, sigma_local_change=0.3).change_weight == pytest.approx(0.5)


@pytest.fixture(scope="module")
def dim_sensor(sample, tmp_path_factory):
    """The 2015 reference seen by a DMSP with core's model (no change) and by one 40 % less sensitive."""
    folder = tmp_path_factory.mktemp("dim")
    same, dim = folder / "dmsp_same.tif", folder / "dmsp_dim.tif"
    simulate_dmsp_raster(str(sample["reference"]), str(same), "F15", 2005)
    with rasterio.open(same) as src:
        data, profile = src.read(1).astype(np.float32), src.profile
    with rasterio.open(dim, "w", **profile) as dst:
        dst.write(np.rint(np.clip(data * 0.6, 0, 63)).astype(profile["dtype"]), 1)
    return same, dim


def _fused(dmsp, reference, out, model, **kwargs):
    result = fuse(
        FuseRequest(dmsp=str(dmsp), viirs=str(reference), output=str(out), model=model, satellite="F15", year=2005, **kwargs)
    )
    with rasterio.open(out) as src:
        return src.read(1), src.tags(), result


@pytest.mark.parametrize("model", ["reference-change", "unet_refaware-fp32"])
def test_a_dimmer_sensor_darkens_the_map_less_than_without_the_prior(sample, dim_sensor, tmp_path, model, monkeypatch):
    same, dim = dim_sensor
    reference = sample["reference"]
    base, _, _ = _fused(same, reference, tmp_path / "same.tif", model)
    corrected, tags, result = _fused(dim, reference, tmp_path / "dim.tif", model)
    assert float(tags["NLF_DMSP_SCENE_GAIN"].split()[0]) > 1.05
    assert any("taken as the DMSP's sensor" in note for note in result.notes)
    monkeypatch.setattr(ChangePrior, "load", classmethod(lambda cls, path=PRIOR_JSON: ChangePrior(0.0, 1.0, "off")))
    uncorrected, tags_off, _ = _fused(dim, reference, tmp_path / "dim_off.tif", model)
    assert float(tags_off["NLF_DMSP_SCENE_GAIN"].split()[0]) == 1.0
    total = np.nansum(base)
    loss_with, loss_without = 1 - np.nansum(corrected) / total, 1 - np.nansum(uncorrected) / total
    assert loss_without > 0.1 and loss_with < loss_without - 0.05
