#!/usr/bin/env bash
# Validation sweep of training options, several runs side by side (used once on a GPU
# machine to choose the shipped configuration faster; the shipped model itself is
# trained on CPU with the command in docs/evaluation.md).
#   training/sweep.sh DATA OUTDIR DEVICE "name|--flag value ..." ...
set -u
data=$1; out=$2; device=$3; shift 3
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%|*}; flags=${spec#*|}
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 python3 "$(dirname "$0")/train.py" --data "$data" --out "$out/$name" \
    --device "$device" $flags > "$out/$name.log" 2>&1 &
done
wait
for spec in "$@"; do
  name=${spec%%|*}
  echo "== $name: ${spec#*|}"
  python3 - "$out/$name/card.json" <<'PY' || tail -5 "$out/$name.log"
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
r = m["rows"]
print("  joint64 map %.4f p@10 %.4f gap %.2f | map24-64 joint %s L4 %s L17 %s L25 %s | distinct %s" % (
    r["joint"]["64"]["map"] if "64" in r["joint"] else r["joint"][64]["map"],
    *(lambda j: (j["p@10"], j["diameter_gap_mm"]))(r["joint"].get("64") or r["joint"][64]),
    *[[round(v["map"], 3) for v in r[n].values()] for n in ("joint", "shallow", "middle", "deep")],
    m["distinct_codes_64"]["centre_slices_of_cases"]), "auc", m.get("class_logit_auc"))
PY
done
