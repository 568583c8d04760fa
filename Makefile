# Nightlight Fusion: the two README commands are `make demo` and `make test`.
PY := .venv/bin/python
PLUGIN := nightlight_fusion_plugin
SHARED ?= ../shared/data

.PHONY: setup setup-training demo test lint zip sample default-curve bench report clean

setup:
	bash scripts/setup.sh

setup-training:
	bash scripts/setup.sh training

## Fuse the bundled synthetic sample (DMSP 2005 + VIIRS 2015 reference) and compare it with the truth.
demo: setup
	$(PY) -m $(PLUGIN) fuse --dmsp $(PLUGIN)/sample_data/dmsp_F15_2005_sample.tif \
	    --viirs $(PLUGIN)/sample_data/viirs_2015_reference_sample.tif \
	    --output demo_output/fused_2005.tif --overwrite
	@echo "fused 2005 vs the 2005 truth:"
	@$(PY) -m $(PLUGIN) compare demo_output/fused_2005.tif $(PLUGIN)/sample_data/viirs_2005_truth_sample.tif \
	    --reference $(PLUGIN)/sample_data/viirs_2015_reference_sample.tif

test: setup-training
	$(PY) -m ruff check .
	.venv/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not xvfb" tests
	xvfb-run -a -s "-screen 0 1280x1024x24" env QT_QPA_PLATFORM=xcb $(PY) -m pytest -q -m xvfb -o qgis_qui_enabled=true tests

lint: setup-training
	$(PY) -m ruff check .
	.venv/bin/lint-imports

## Plugin zip for plugins.qgis.org, built with pb_tool into dist/.
zip: setup
	rm -rf build/deploy dist/$(PLUGIN).zip && mkdir -p dist
	cd $(PLUGIN) && ../.venv/bin/pb_tool zip --config_file ../pb_tool.cfg --quick --no-docs
	mv $(PLUGIN)/$(PLUGIN).zip dist/
	@ls -l dist/$(PLUGIN).zip

## Regenerate the bundled synthetic sample (deterministic).
sample: setup
	$(PY) -m $(PLUGIN) sample --out $(PLUGIN)/sample_data --overwrite

## Refit the fixed DN->radiance curve used when no VIIRS reference is given (needs ../shared).
default-curve: setup
	$(PY) -m $(PLUGIN) calibrate --dmsp $(SHARED)/real/athens/dmsp_F18_2013_stable_lights.tif \
	    --viirs $(SHARED)/real/greece/viirs_dnb_monthly_2017_*.tif \
	    --output $(PLUGIN)/core/sensor/data/default_radiance_curve.json --overwrite

## Speed and memory targets (never timed tests): writes benchmarks/results.json and benchmarks/results.md.
## bench_dask --strips: worker memory for a 1024- and an 8192-wide strip; --continental: the 0.1 Gpx dry run (long).
bench: setup-training
	PYTHONPATH=. $(PY) -m benchmarks.bench_simulator
	PYTHONPATH=. $(PY) -m benchmarks.bench_engine
	PYTHONPATH=. $(PY) -m benchmarks.bench_engine --model diffusion-fp32 --section "engine, diffusion-fp32"
	PYTHONPATH=. $(PY) -m benchmarks.bench_engine --model unet_v3-fp32 --section "engine, unet_v3-fp32"
	PYTHONPATH=. $(PY) -m benchmarks.bench_session --model unet_v3-int8
	PYTHONPATH=. $(PY) -m benchmarks.bench_dask && PYTHONPATH=. $(PY) -m benchmarks.bench_series
	PYTHONPATH=. $(PY) -m benchmarks.bench_dask --strips
	PYTHONPATH=. $(PY) -m benchmarks.bench_dask --continental
	PYTHONPATH=. $(PY) -m benchmarks.bench_trainer

## The design-space report (docs/design_space.md) and measured speed levels written into model_zoo/manifest.json.
report: setup-training
	PYTHONPATH=. $(PY) -m training.report --runs runs/diffusion_eps_linear runs/normalizing_flow

## Refresh constraints.txt (the lock): newest allowed requirements*.txt in a throw-away venv, rewritten only if the suite passes.
.PHONY: pins
pins:
	bash scripts/refresh_pins.sh

clean:
	rm -rf build dist demo_output .pytest_cache
