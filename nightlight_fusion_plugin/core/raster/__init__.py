"""Rasters in and out: open and inspect inputs, the output grid, aligned (warped) window reads with mirrored
edges, masks, and GeoTIFF writing (tiled, overviews, atomic rename).

The bottom layer: it imports nothing from core but `errors`. Everything above reads and writes through it.
"""
