#!/usr/bin/env bash
# CI smoke test of the training pipeline (no LIDC data needed):
#   training/smoke.sh [OUTDIR]
# A few training steps on generated phantoms, export to OUTDIR (default: a new temp
# dir), a parity fixture beside it; the last line printed is the .onnx path. Then:
#   node training/check_parity.mjs OUTDIR/fcdn-smoke.onnx OUTDIR/fcdn-smoke.parity.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(mktemp -d -t fcdn-smoke.XXXXXX)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=${PYTHON:-/usr/bin/python3}
"$PY" "$here/smoke.py" --out "$out" 2> >(grep -v -i "warn\|_C._jit\|^ *$" >&2)
