"""Fixture pinning training's HU preprocessing (training/lidc_hu.py) to the service's DICOM path.

  /usr/bin/python3 training/preprocessing_fixture.py --out test/fixtures/hu-preprocessing.json

Synthetic CT slices (no patient data): lung with noise, a chest wall, vessels and a nodule, at
pixel spacings below and above 0.75 mm (the patch is shrunk or enlarged) and with a centre point
near the image edge (the grid leaves the image and reads air). For each, the 64x64 model input
computed by `lidc_hu.product_patch` + `window01`. test/inference/hu-preprocessing.test.ts wraps
the same HU as CT DICOM and checks that the service's patch is the same.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lidc_hu  # noqa: E402


def synthetic_slice(rows: int, cols: int, nodule_xy, radius_px: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    hu = -850.0 + 30.0 * rng.standard_normal((rows, cols))
    hu[x < cols * 0.12] = 40.0 + 15.0 * rng.standard_normal(int((x < cols * 0.12).sum()))  # chest wall
    for k in range(3):  # vessels
        d = np.abs((x - cols * (0.3 + 0.2 * k)) * np.cos(0.4 * k + 0.3) + (y - rows * 0.5) * np.sin(0.4 * k + 0.3))
        hu = np.where(d < 1.5 + k, -50.0, hu)
    r = np.hypot(x - nodule_xy[0], y - nodule_xy[1])
    hu = np.where(r < radius_px, 30.0 + 20.0 * rng.standard_normal((rows, cols)), hu)
    return np.clip(np.round(hu), -1100, 3000).astype(np.int16)


CASES = [
    {"name": "fine spacing (the patch is shrunk)", "rows": 110, "columns": 120, "spacing": [0.66, 0.71],
     "nodule": [63.4, 51.8], "radius": 11.0, "seed": 1},
    {"name": "coarse spacing (the patch is enlarged)", "rows": 90, "columns": 80, "spacing": [1.1, 0.93],
     "nodule": [41.0, 44.5], "radius": 6.0, "seed": 2},
    {"name": "centre near the edge (air outside the image)", "rows": 90, "columns": 80, "spacing": [0.78, 0.78],
     "nodule": [7.5, 80.25], "radius": 5.0, "seed": 3},
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = []
    for c in CASES:
        hu = synthetic_slice(c["rows"], c["columns"], c["nodule"], c["radius"], c["seed"])
        patch = lidc_hu.window01(lidc_hu.product_patch(hu.astype(np.float32), tuple(c["spacing"]), tuple(c["nodule"])))
        out.append({**c, "hu": hu.ravel().tolist(), "patch": [round(float(v), 7) for v in patch.ravel()]})
    with open(args.out, "w") as f:
        json.dump({"size": lidc_hu.SIZE, "mmPerPixel": lidc_hu.MM_PER_PIXEL, "cases": out}, f)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
