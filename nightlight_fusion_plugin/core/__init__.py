"""Pure-Python core of Nightlight Fusion (numpy, rasterio; never qgis or PyQt).

Data flows one way: files -> align (grids) -> calibrate / sample -> write (output).
The CLI, the Processing algorithms and the dialog are doors into :func:`fuse.fuse`.
"""
