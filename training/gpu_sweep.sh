#!/usr/bin/env bash
# Width / mask-statistics sweep on a GPU machine (docs/evaluation.md, "Sweep 4"): every
# configuration x seed trains in parallel (train.py --device cuda, one CPU thread each),
# then each checkpoint's compositions are tried (compose.py --grid). Results are packed
# into at most a few files under OUT (cards, grids, logs; checkpoints split in 15 MB parts).
#   training/gpu_sweep.sh DATA OUT DEVICE "SEEDS" "name|flags" ...
# Environment: TRAIN_TIMEOUT (s, default 300), COMPOSE_TIMEOUT (default 150), EXTRA (flags for
# every run, e.g. "--epochs 1 --samples-per-epoch 64" for a local test), PYTHON (default python3).
set -u
data=$1; out=$2; device=$3; seeds=$4; shift 4
here=$(dirname "$0")
runs=$out/runs
mkdir -p "$runs"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
jobs=()
for spec in "$@"; do
  for seed in $seeds; do jobs+=("${spec%%|*}-s$seed|--seed $seed ${spec#*|}"); done
done
t0=$(date +%s)
for job in "${jobs[@]}"; do
  name=${job%%|*}; flags=${job#*|}
  # shellcheck disable=SC2086
  timeout "${TRAIN_TIMEOUT:-300}" "${PYTHON:-python3}" "$here/train.py" --data "$data" --out "$runs/$name" \
    --device "$device" $flags ${EXTRA:-} > "$runs/$name.log" 2>&1 &
done
wait
echo "trained ${#jobs[@]} runs in $(( $(date +%s) - t0 ))s"
t0=$(date +%s)
for job in "${jobs[@]}"; do
  name=${job%%|*}
  [ -f "$runs/$name/fcdn.pt" ] || continue
  timeout "${COMPOSE_TIMEOUT:-150}" "${PYTHON:-python3}" "$here/compose.py" --data "$data" \
    --checkpoint "$runs/$name/fcdn.pt" --device "$device" --grid > "$runs/$name/grid.jsonl" 2>&1 &
done
wait
echo "composed in $(( $(date +%s) - t0 ))s"
(cd "$out" && tar czf results.tgz --exclude='*.pt' runs && \
  tar cf - runs/*/fcdn.pt | gzip -1 | split -b 15m - checkpoints.tgz.)
