"""core/scene_gain.py: a DMSP sensor darker or brighter than core's model, scene-wide, is not read as change in full
(reference-change and the reference-aware models), by a prior measured on training regions only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from nightlight_fusion_plugin.core.errors import InputError
from nightlight_fusion_plugin.core.pipeline.dmsp_like import simulate_dmsp_raster
from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse
from nightlight_fusion_plugin.core.sensor.intercalibration import parse_reference_year
from nightlight_fusion_plugin.core.sensor.scene_gain import (
    MIN_PIXELS,
    PRIOR_JSON,
    Agreement,
    ChangePrior,
    dmsp_gain_correction,
    measure_log_gain,
    reference_gap,
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
    base, _, _ = _fused(same, reference, tmp_path / "same.tif", model, reference_gap_years=1)
    corrected, tags, result = _fused(dim, reference, tmp_path / "dim.tif", model, reference_gap_years=1)
    assert float(tags["NLF_DMSP_SCENE_GAIN"].split()[0]) > 1.05
    assert any("taken as the DMSP's sensor" in note for note in result.notes)
    monkeypatch.setattr(ChangePrior, "load", classmethod(lambda cls, path=PRIOR_JSON: ChangePrior(0.0, 1.0, "off")))
    uncorrected, tags_off, _ = _fused(dim, reference, tmp_path / "dim_off.tif", model, reference_gap_years=1)
    assert float(tags_off["NLF_DMSP_SCENE_GAIN"].split()[0]) == 1.0
    total = np.nansum(base)
    loss_with, loss_without = 1 - np.nansum(corrected) / total, 1 - np.nansum(uncorrected) / total
    assert loss_without > 0.1 and loss_with < loss_without - 0.05


@pytest.mark.parametrize(
    "name, year",
    [
        ("viirs_2015_reference_sample.tif", 2015),
        ("VNL_v21_npp_2016_global_vcmslcfg_c202205302300.average_masked.dat.tif", 2016),
        ("VNP46A3.A2023032.h20v06.001.2023062142423.tif", 2023),
        ("SVDNB_npp_20150101-20150131_75N060W_vcmcfg_v10_c201505111709.avg_rade9h.tif", 2015),
        ("real_000_viirs_reference.tif", None),
        ("viirs_2013_vs_2014.tif", None),  # two years: not guessed
    ],
)
def test_reference_year_from_the_file_name(name, year):
    assert parse_reference_year(f"/data/{name}") == year


def test_the_split_follows_the_years_between_dmsp_and_reference():
    prior = ChangePrior.load()
    payload = json.loads(PRIOR_JSON.read_text())
    assert prior.gap_years == payload["assumed_gap_years"] and prior.at_gap(None) is prior
    shares = [prior.at_gap(gap).calibration_share for gap in (1, 3, 10, 20)]
    assert shares == sorted(shares, reverse=True) and shares[0] > prior.calibration_share > shares[2]
    one = prior.at_gap(1)
    assert one.sigma_change == pytest.approx(payload["sigma_change_one_year"])
    assert prior.at_gap(4).sigma_change == pytest.approx(2 * one.sigma_change)
    assert prior.at_gap(0).gap_years == 1.0  # the shortest gap the prior was measured on
    assert prior.at_gap(20).change_weight >= one.change_weight  # more real change: trust the local ratio more
    assert reference_gap(2005, 2015) == (10.0, "DMSP 2005, reference 2015")
    assert reference_gap(2005, 2015, 1.0) == (1.0, "given")
    gap, why = reference_gap(None, 2015)
    assert gap is None and "DMSP year" in why
    assert reference_gap(2005, 2015, -1.0) == (1.0, "given")  # signed (reference a year before): the prior's magnitude
    with pytest.raises(InputError, match="must be a number"):
        reference_gap(2005, 2015, float("nan"))


def test_a_dimmer_sensor_a_year_from_its_reference_is_corrected_more(sample, dim_sensor, tmp_path):
    _, dim = dim_sensor
    reference = sample["reference"]
    far, far_tags, _ = _fused(dim, reference, tmp_path / "far.tif", "reference-change")
    assert far_tags["NLF_REFERENCE_GAP_YEARS"] == "10 (DMSP 2005, reference 2015)"  # from the request and the name
    near, near_tags, result = _fused(dim, reference, tmp_path / "near.tif", "reference-change", reference_gap_years=1)
    assert near_tags["NLF_REFERENCE_GAP_YEARS"] == "1 (given)"
    assert float(near_tags["NLF_DMSP_SCENE_GAIN"].split()[0]) > float(far_tags["NLF_DMSP_SCENE_GAIN"].split()[0]) > 1.0
    assert any("1 years apart" in note for note in result.notes)
    assert np.nansum(near) > np.nansum(far)  # less of the dim sensor read as lights going out
