"""The parts of `python -m training.export` (training/export.py: export() and the command line):

- wrappers.py: one torch wrapper per family with the engine's ONNX inputs/outputs, the export, parity with torch
- metadata.py: the nlf_* ONNX metadata the engine reads
- quantize.py: int8 (static QDQ, calibration, sensitivity pass) and fp16 variants
- zoo.py: manifest entries, model cards, the regression partner of staged sampling
"""
