"""torch Datasets: synthetic streaming tiles, real pairs and semi-real Greece (with its hold-out)."""

import glob

import numpy as np
import pytest
import torch

from nightlight_fusion_plugin.core.engine.transforms import radiance_from_model, radiance_to_model
from training.data import SyntheticPairs, build_dataset


def test_synthetic_items_have_the_documented_layout():
    ds = SyntheticPairs(8, tile=32, seed=1, reference_dropout=0.0)
    item = ds[0]
    assert item["condition"].shape == (3, 32, 32) and item["target"].shape == (1, 32, 32)
    assert item["condition"].dtype == torch.float32
    assert (item["condition"][2] == 1).all()  # reference present
    assert torch.equal(ds[0]["target"], ds[0]["target"])  # item i is always the same tile
    dropped = SyntheticPairs(8, tile=32, seed=1, reference_dropout=1.0)[0]
    assert (dropped["condition"][1:] == 0).all()


def test_transforms_round_trip_and_clip_outliers():
    r = np.array([-0.3, 0.0, 1.0, 50.0, 999.0], np.float32)
    assert np.allclose(radiance_from_model(radiance_to_model(r)), r, rtol=1e-4, atol=1e-4)
    assert radiance_to_model(np.array([5000.0]))[0] == pytest.approx(1.0)


def test_build_dataset_rejects_unknown_keys():
    with pytest.raises(ValueError, match="tiel"):
        build_dataset({"tiel": 64}, "train")


@pytest.mark.real_data
def test_real_pairs_from_the_sao_tome_files(real_data):
    from training.data.real import RealPairs

    ds = RealPairs(
        str(real_data / "sao_tome" / "dmsp_1992_stable_lights.tif"),
        [str(real_data / "sao_tome" / "viirs_dnb_monthly_2014_01.tif")],
        tile=32,
        length=4,
    )
    item = ds[0]
    assert item["condition"].shape == (3, 32, 32)
    assert 0.5 <= item["valid"].mean() < 1.0 or item["valid"].mean() == 1.0
    assert ds.year == 1992


@pytest.mark.real_data
def test_real_pairs_athens_dmsp_with_greece_monthly_mean(real_data):
    from training.data.real import RealPairs

    months = sorted(glob.glob(str(real_data / "greece" / "viirs_dnb_monthly_2017_*.tif")))
    ds = RealPairs(str(real_data / "athens" / "dmsp_F18_2013_stable_lights.tif"), months, tile=64, length=3)
    assert ds.satellite == "F18" and ds.grid.pixel_size == pytest.approx((1 / 240, 1 / 240))
    assert ds[2]["target"].shape == (1, 64, 64)


@pytest.mark.real_data
def test_semi_real_greece_keeps_the_holdout_out_of_training(real_data):
    from training.data.real import GREECE_HOLDOUT, SemiRealGreece

    train = SemiRealGreece("train", tile=32, length=20, real_dir=real_data)
    holdout = SemiRealGreece("holdout", tile=32, length=5, real_dir=real_data)
    t = train.grid.transform
    for ds, inside in ((train, False), (holdout, True)):
        for i in range(len(ds)):
            row, col = ds._position(np.random.default_rng([ds.seed, i, 13, ds.split == "holdout"]))
            r0, c0 = row + 32, col + 32  # MARGIN_PX
            west, north = t.c + c0 * t.a, t.f + r0 * t.e
            overlaps = (
                west < GREECE_HOLDOUT[2]
                and west + 32 * t.a > GREECE_HOLDOUT[0]
                and north > GREECE_HOLDOUT[1]
                and north + 32 * t.e < GREECE_HOLDOUT[3]
            )
            assert overlaps == inside
    assert holdout[0]["valid"].mean() >= 0.8


def test_reference_gaps_draw_both_directions_within_the_ranges(monkeypatch):
    import training.data.datasets as datasets

    seen = []
    real_make_pair = datasets.make_pair

    def spy(seed, size, year=None, reference_year=None, **kw):
        seen.append((year, reference_year))
        return real_make_pair(seed, size, year=year, reference_year=reference_year, **kw)

    monkeypatch.setattr(datasets, "make_pair", spy)
    ds = build_dataset({"tile": 16, "length": 40, "reference_gaps": [[0, 1], [10, 20]], "reference_before": 0.5}, "train")
    for i in range(len(ds)):
        ds[i]
    gaps = [r - y for y, r in seen]
    assert all(abs(g) <= 1 or 10 <= abs(g) <= 20 for g in gaps)
    assert any(g < 0 for g in gaps) and any(g > 0 for g in gaps)  # both directions
    assert any(abs(g) <= 1 for g in gaps) and any(abs(g) >= 10 for g in gaps)
    seen.clear()
    later = build_dataset({"tile": 16, "length": 20, "reference_gaps": [[3, 5]], "reference_before": 0.0}, "train")
    later[0], later[1]
    assert all(3 <= r - y <= 5 for y, r in seen)
    with pytest.raises(ValueError, match="reference_gaps"):
        SyntheticPairs(4, reference_gaps=[(5, 3)])
