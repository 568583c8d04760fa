"""What runs a learned model: the zoo and its manifest (`zoo`, `models`), onnxruntime sessions (`runtime`),
the tile lattice and its blending (`tiling`), the normalisation transforms every model records in its
metadata (`transforms`, imported by training), and the numpy noise schedulers (one per module, as in
diffusers) and samplers. Imports `sensor`, `raster` and `errors`; never a method or a pipeline.
"""
