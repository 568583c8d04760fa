"""The fusion methods, one module each, behind one small interface (`predict` on aligned arrays, or `run` over
a grid): the traditional intercalibrate-and-calibrate method (`baseline`), the reference-change ratio method
(`reference_change`) and the learned zoo models (`generative`: regression, diffusion, flow matching,
normalizing flow). They use `engine` and `sensor`; the pipeline above decides which one runs.
"""
