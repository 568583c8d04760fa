#!/usr/bin/env bash
# Train the shipped configs on a lent GPU machine (one H100/H200, 16 cores), in one call:
#   1. fill the shared tile cache with every core (all configs share one [data] table),
#   2. train the NAMES runs side by side on the one GPU (resuming those with a checkpoint in runs/),
#      reading tiles from the cache (same tiles, same order as a plain run),
#   3. copy slim checkpoints (no optimizer state) and logs to $OUT.
# Needs: NLF_GIT_COMMIT, NLF_SHARED_DATA (holding real/greece), rasterio (wheels in .whl), DEADLINE_S.
# Session 2's attempt filled the cache far too slowly (runs/README.md): time the fill first.
set -u
NAMES=${NAMES:-unet diffusion flow_matching normalizing_flow}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=.:${PYTHONPATH:-}
start=$(date +%s)
deadline=${DEADLINE_S:-540}
runs=/tmp/runs cache=/tmp/tiles device=${DEVICE:-cuda} suffix=${SUFFIX:-}  # SUFFIX=_smoke DEVICE=cpu: a dry run
mkdir -p "$runs" "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, numpy, rasterio; print('torch', torch.__version__, 'numpy', numpy.__version__, 'rasterio', rasterio.__version__, 'cuda', torch.cuda.is_available())" || exit 3
python3 -m training.data.cache --config "training/configs/diffusion$suffix.toml" --out "$cache" --workers "$(nproc)" 2>&1 | tee "$runs/cache.log" || exit 4
echo "cache filled after $(( $(date +%s) - start )) s"
left=$(( deadline - ($(date +%s) - start) ))
pids=()
for name in $NAMES; do
  mkdir -p "$runs/$name"
  if [ -e "runs/$name/checkpoint.pt" ] && [ -z "$suffix" ]; then args=(--resume "runs/$name"); else args=(--config "training/configs/$name$suffix.toml"); fi
  timeout -s TERM "$left" python3 -m training.train "${args[@]}" --out "$runs/$name" --device "$device" \
    --data-cache "$cache" --num-workers 2 > "$runs/$name/stdout.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; echo "run $p exit $?"; done
echo "training ended after $(( $(date +%s) - start )) s"
for name in $NAMES; do
  tail -3 "$runs/$name/stdout.log"
  [ -e "$runs/$name/checkpoint.pt" ] && python3 scripts/pack_run.py "$runs/$name/checkpoint.pt" "$OUT/$name.pt"
done
tar -czf "$OUT/logs.tar.gz" -C "$runs" --exclude checkpoint.pt .
ls -la "$OUT"
