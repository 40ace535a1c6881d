"""Write the validation cases as the service ingests them, for `npm run eval`.

  /usr/bin/python3 training/export_eval_set.py --data ../shared/data/lidc --out /tmp/fcdn-evalset

The output folder (outside the repository: it holds LIDC-derived images) gets one PNG per
case slice and manifest.json. Same cases as training/evaluate.py: validation patients of the
patient split (--split-seed, --val-fraction as in training), nodules with a benign/malignant
label, the centre slice and up to one neighbour each side.
  md882 slices:   8-bit PNG, value = round(patch * 255) (exactly the source pixels);
  daco134 slices: 16-bit PNG in the service's convention HU + 32768, with the windowed
                  intensity v in [0,1] mapped back to HU = v * 1800 - 1200 (window [-1200, 600]).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lidc import load_nodules, split_patients  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.25)
    args = ap.parse_args()

    _, valid = split_patients(load_nodules(args.data), args.val_fraction, args.split_seed)
    cases = [n for n in valid if n.label >= 0]
    os.makedirs(args.out, exist_ok=True)
    manifest = []
    for n in cases:
        slices = []
        for i in n.case_slices(1):
            name = f"{n.key.replace(':', '_').replace('/', '_')}__{i - n.centre:+d}.png"
            v = np.clip(n.slices[i], 0, 1)
            if n.subset == "md882":
                Image.fromarray(np.round(v * 255).astype(np.uint8), mode="L").save(os.path.join(args.out, name))
            else:
                hu = np.round(v * 1800.0 - 1200.0) + 32768
                Image.fromarray(hu.astype(np.uint16), mode="I;16").save(os.path.join(args.out, name))
            slices.append({"file": name, "offset": i - n.centre})
        manifest.append({
            "key": n.key, "subset": n.subset, "patient": n.patient,
            "label": ["benign", "malignant"][n.label], "malignancy": n.malignancy,
            "diameterMm": None if np.isnan(n.diameter_mm) else n.diameter_mm, "slices": slices,
        })
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"splitSeed": args.split_seed, "valFraction": args.val_fraction, "cases": manifest}, f, indent=1)
    print(f"wrote {len(manifest)} cases ({sum(len(c['slices']) for c in manifest)} slices) to {args.out}")


if __name__ == "__main__":
    main()
