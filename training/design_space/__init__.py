"""The parts of the design-space report (`python -m training.report`, training/report.py: the command line):

- sets.py: the evaluation sets and the zoo measured (shipped models plus design-space runs)
- measure.py: the grid of models × samplers × NFE × ensembles and baselines, measured through the harness
- rows_cache.py: measured rows kept between reports, keyed by what was measured and the engine
- choose.py: margins, speed levels and the default model
- tables.py, markdown.py, figures.py: docs/design_space.md, its tables and figures
- manifest.py: what is written back into model_zoo/manifest.json
"""
