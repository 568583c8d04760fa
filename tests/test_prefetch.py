"""GenerativeFusion.run prepares band k+1 (reads, warps, condition v2/v3 channels) in a background thread while the
network runs on band k (issue #20): the prefetch is used, keeps at most one band ahead, changes no byte of the
output, raises a preparation error in run() and leaves no thread behind when a run fails or is cancelled.

A stand-in network (a fixed function of the condition stack, in place of the onnxruntime session) keeps these
tests fast; the real models' outputs with the prefetch are covered by the engine, construct and distributed tests."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import numpy as np
import pytest
from conftest import write_raster

from nightlight_fusion_plugin.core.engine.runtime import ModelMetadata
from nightlight_fusion_plugin.core.engine.tiling import tile_rows
from nightlight_fusion_plugin.core.engine.zoo import ZooModel
from nightlight_fusion_plugin.core.errors import CancelledError
from nightlight_fusion_plugin.core.methods import generative
from nightlight_fusion_plugin.core.methods.generative import GenerativeFusion, SamplingPlan, prepare_lattice, tile_readers
from nightlight_fusion_plugin.core.raster.grids import AlignedReader, inspect_raster, output_grid
from nightlight_fusion_plugin.core.sensor.intercalibration import intercalibration_for

TILE = 16


class FakeNetwork:
    """What GenerativeFusion needs of an OnnxModel: a condition v3 UNet on 16-pixel tiles."""

    metadata = ModelMetadata(family="unet", tile_size=TILE, multiple_of=8, extra={"nlf_condition_version": "3"})
    warnings: list = []
    device = "cpu"

    def run(self, condition: np.ndarray) -> np.ndarray:
        return np.tanh(condition.mean(axis=1, keepdims=True) + 0.1 * condition[:, 3:4]).astype(np.float32)


class FakeConstruct:
    """The traditional estimate's interface (methods/construct.SceneConstruct.estimate): reads both rasters."""

    def estimate(self, dn, reference, pixel_km, crop):
        return (0.5 * dn + np.nan_to_num(reference))[crop].astype(np.float32)


@pytest.fixture
def scene(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    dn = rng.integers(0, 64, (40, 44)).astype(np.float32)
    dn[5:8, 30:33] = -1  # a nodata hole: masked at flush, on the main thread, while the prefetch reads
    viirs = rng.gamma(0.6, 8.0, (80, 88)).astype(np.float32)
    dmsp = inspect_raster(write_raster(tmp_path / "dmsp.tif", dn, nodata=-1), "DMSP")
    reference = inspect_raster(write_raster(tmp_path / "viirs.tif", viirs, res=1 / 240), "VIIRS")
    monkeypatch.setattr(generative, "load_model", lambda *args, **kwargs: FakeNetwork())
    return dmsp, reference


def engine(prefetch: bool) -> GenerativeFusion:
    method = GenerativeFusion(
        ZooModel("fake", "unet", "fake.onnx", "", "fp32"), SamplingPlan(None, 1, 1.0, 1), batch_size=2, prefetch=prefetch
    )
    method.construct, method.gap_years = FakeConstruct(), 3.0
    return method


def fuse_with(method: GenerativeFusion, scene, region=None, check_cancel=lambda: None) -> np.ndarray:
    dmsp, reference = scene
    grid = output_grid(dmsp, reference)
    lattice, extended, offset = prepare_lattice(grid, method.tile, method.overlap)
    row0, row1, col0, col1 = region or (0, grid.height, 0, grid.width)
    out = np.full((1, row1 - row0, col1 - col0), -7.0, np.float32)

    def write(row, values):
        out[:, row - row0 : row - row0 + values.shape[1]] = values

    with ExitStack() as stack:
        dmsp_reader, viirs_reader = tile_readers(stack, dmsp, reference, extended)
        method.run(
            dmsp_reader,
            viirs_reader,
            intercalibration_for("F15", 2005),
            grid,
            extended,
            offset,
            lattice,
            write,
            seed=1,
            progress=lambda f: None,
            check_cancel=check_cancel,
            region=region,
        )
    return out


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nlf-prefetch")]


@pytest.mark.parametrize("region", [None, (7, 61, 30, 80)])
def test_prefetch_changes_no_byte_of_the_output(scene, region):
    with_prefetch = fuse_with(engine(True), scene, region)
    without = fuse_with(engine(False), scene, region)
    assert (with_prefetch != -7).all()  # every pixel written
    assert np.isfinite(with_prefetch).any() and np.isnan(with_prefetch).any()  # light, and the nodata hole
    assert with_prefetch.tobytes() == without.tobytes()


def test_the_next_band_is_prepared_while_the_network_runs(scene, monkeypatch):
    """Band k+1's preparation starts, on the prefetch thread, before the network has finished band k, and never
    more than one band ahead (memory stays flat)."""
    method = engine(True)
    dmsp, reference = scene
    grid = output_grid(dmsp, reference)
    bands = len(list(tile_rows(grid, prepare_lattice(grid, TILE)[0])))
    events, changed, band_of = [], threading.Condition(), {}
    prepare, predict = method._prepare_band, method.predict

    def recorded_prepare(dmsp, viirs, intercal, extended, offset, y, x0, x1):
        with changed:
            band_of[y] = len(band_of)
            events.append(("prepare", band_of[y], threading.current_thread().name))
            changed.notify_all()
        return prepare(dmsp, viirs, intercal, extended, offset, y, x0, x1)

    def recorded_predict(condition, jobs, seed, member):
        band = band_of[jobs[0].y]
        events.append(("net start", band, threading.current_thread().name))
        with changed:  # the network of band k waits (at most 5 s) for band k+1's preparation to begin
            changed.wait_for(lambda: band + 1 == bands or ("prepare", band + 1) in [e[:2] for e in events], timeout=5)
        out = predict(condition, jobs, seed, member)
        events.append(("net end", band, threading.current_thread().name))
        return out

    monkeypatch.setattr(method, "_prepare_band", recorded_prepare)
    monkeypatch.setattr(method, "predict", recorded_predict)
    fuse_with(method, scene)
    assert bands >= 4 and len(band_of) == bands and not prefetch_threads()

    def at(kind, band, last=False):
        found = [i for i, e in enumerate(events) if e[:2] == (kind, band)]
        return found[-1] if last else found[0]

    for k in range(1, bands):
        assert events[at("prepare", k)][2].startswith("nlf-prefetch")
        assert at("prepare", k) < at("net end", k - 1, last=True)  # overlapped with the network on band k-1
        if k >= 2:
            assert at("prepare", k) > at("net end", k - 2, last=True)  # at most one band ahead
    assert all(e[2] == "MainThread" for e in events if e[0] != "prepare")


def test_a_failing_preparation_is_raised_by_run_and_leaves_no_thread(scene, monkeypatch):
    method = engine(True)
    prepare, calls = method._prepare_band, []

    def failing(*args):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise OSError("the disk went away while reading band 3")
        return prepare(*args)

    monkeypatch.setattr(method, "_prepare_band", failing)
    with pytest.raises(OSError, match="disk went away"):
        fuse_with(method, scene)
    assert calls[2].startswith("nlf-prefetch")  # raised in the background thread, surfaced in run()
    assert not prefetch_threads()


def test_cancel_stops_the_prefetch_thread(scene, monkeypatch):
    method = engine(True)
    prepare, checks = method._prepare_band, []

    def slow(*args):
        time.sleep(0.2)  # still preparing the next band when the run is cancelled
        return prepare(*args)

    def check_cancel():
        checks.append(1)
        if len(checks) > 3:
            raise CancelledError("cancelled")

    monkeypatch.setattr(method, "_prepare_band", slow)
    with pytest.raises(CancelledError):
        fuse_with(method, scene, check_cancel=check_cancel)
    assert not prefetch_threads()


def test_concurrent_reads_of_one_reader_give_the_serial_values(scene):
    """AlignedReader serialises reads (a GDAL dataset is not safe to read from two threads at once)."""
    from rasterio.windows import Window

    dmsp, reference = scene
    grid = output_grid(dmsp, reference)
    windows = [Window(c, r, 30, 20) for r in range(0, 60, 7) for c in range(0, 58, 9)]
    with AlignedReader(dmsp, grid) as reader:
        serial = [reader.read(w) for w in windows]
        results: dict[int, np.ndarray] = {}

        def worker(offset):
            for i in range(offset, len(windows), 4):
                results[i] = reader.read(windows[i])

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(results[i].tobytes() == serial[i].tobytes() for i in range(len(windows)))
