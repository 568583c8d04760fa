"""Beside the layers: scores (`metrics`, `compare`), the per-run QA report (`run_report`) and the bundled
synthetic sample (`sample`). May import any layer; no layer imports it.
"""
