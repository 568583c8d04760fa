"""Runs from files to files: `fuse` (one DMSP year; picks the method, computes the scene-wide values once,
writes the GeoTIFF), `series` and its temporal fit, `dmsp_like` (VIIRS simulated to a DMSP product) and
`distributed` (the same run as blocks on Dask, resumable). The top layer: nothing in core imports it except
`report`, which sits beside the layers.
"""
