#!/usr/bin/env bash
# Train the shipped configs one after another on this machine, resuming any run already started:
#   bash scripts/train_queue.sh [unet diffusion flow_matching normalizing_flow diffusion_eps_linear]
# Each run checkpoints every few hundred steps into runs/NAME/ (see training/configs/NAME.toml);
# stopping it (Ctrl-C, end of session) loses at most that much work.
set -u
cd "$(dirname "$0")/.."
for name in "${@:-unet diffusion flow_matching normalizing_flow diffusion_eps_linear}"; do
  for n in $name; do
    if [ -e "runs/$n/checkpoint.pt" ]; then
      PYTHONPATH=. .venv/bin/python -m training.train --resume "runs/$n" || exit $?
    else
      PYTHONPATH=. .venv/bin/python -m training.train --config "training/configs/$n.toml" --out "runs/$n" || exit $?
    fi
  done
done
