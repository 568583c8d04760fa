"""The trainer behind `python -m training.train` (training/train.py: the command line), by concept:

- loop.py: one run, from a checked config to checkpoints and metrics (train)
- batches.py: the data order, the DataLoader and its workers
- optim.py: EMA, LR schedule
- precision.py: autocast
- state.py: seeds, RNG states, git commit, init_from weights
- validation.py: validation metrics in model space
- distributed.py: torchrun ranks

The config tables live in training/config.py.
"""
