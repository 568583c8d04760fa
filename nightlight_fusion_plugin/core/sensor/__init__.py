"""The DMSP-OLS sensor as a model: its footprint, blur, saturating response and 6-bit digitising (`sensors`),
the published intercalibration per satellite-year, DN->radiance curves (`calibration`) and the scene-wide
prior that splits a DMSP/reference level difference between sensor and real change (`scene_gain`).

Pure numpy on arrays; its calibrated parameters ship in `data/`. Imports only `raster` and `errors`.
"""
