"""CI smoke of the lidc-hu pipeline (train_hu.py, evaluate_hu.py, export) on synthetic data.

  OMP_NUM_THREADS=2 /usr/bin/python3 training/smoke_hu.py --out /tmp/smoke-hu

No LIDC data: a folder laid out like ../shared/data/lidc-hu (labels.csv, images/*.npz,
masks/*.npz) is drawn here, with HU slices (lung, chest wall, a nodule whose size and brightness
follow its malignancy) in both sources' shapes: 3D VOIs (ctslicing) and 71x71 slices (gdro).
Then two tiny epochs of train_hu.py, the quick validation and an ONNX export. It checks that the
code runs end to end and writes what it should, not what it learns.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lidc_hu_split import is_validation_patient  # noqa: E402

COLUMNS = ["id", "source", "patient_id", "malignancy", "malignancy_readers", "malignancy_binary", "subtlety",
           "calcification", "sphericity", "margin", "lobulation", "spiculation", "texture", "diameter_mm",
           "pixel_spacing_mm", "z_spacing_mm", "image_path", "mask_path"]


def draw(shape, spacing, diameter_mm, brightness, rng):
    z, h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    cy, cx = h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2)
    img = np.empty(shape, np.int16)
    mask = np.zeros(shape, np.uint8)
    for k in range(z):
        r_mm = diameter_mm / 2 * np.sqrt(max(0.0, 1 - ((k - z // 2) / (z / 2 + 0.5)) ** 2))
        r = np.hypot((x - cx) * spacing, (y - cy) * spacing)
        sl = -850 + 30 * rng.standard_normal((h, w))
        sl[x < w * 0.1] = 40
        sl = np.where(r < r_mm, brightness + 20 * rng.standard_normal((h, w)), sl)
        img[k] = np.round(sl)
        mask[k] = r < r_mm
    return img, mask


def make_dataset(folder: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
    # patient ids on both sides of the split
    pats, n = {"train": [], "val": []}, 0
    while len(pats["train"]) < 10 or len(pats["val"]) < 4:
        pid = f"SYNTH-{n:04d}"
        side = "val" if is_validation_patient(pid) else "train"
        if len(pats[side]) < (4 if side == "val" else 10):
            pats[side].append(pid)
        n += 1
    rows = []
    for i, pid in enumerate(pats["train"] + pats["val"]):
        for source in ("ctslicing", "gdro"):
            mal = int(rng.integers(1, 6))
            diameter = 4 + 3 * mal + rng.uniform(-2, 2)
            spacing = float(rng.uniform(0.6, 0.9))
            shape = (5, 48, 48) if source == "ctslicing" else (1, 71, 71)
            img, mask = draw(shape, spacing, diameter, -400 + 100 * mal, rng)
            if source == "gdro":
                img, mask = img[0], mask[0]
            key = f"{source}_{pid}_{i}"
            np.savez_compressed(os.path.join(folder, "images", key + ".npz"), image=img)
            np.savez_compressed(os.path.join(folder, "masks", key + ".npz"), mask=mask)
            readers = ";".join(str(int(np.clip(mal + rng.integers(-1, 2), 1, 5))) for _ in range(3)) if source == "gdro" else ""
            rows.append({"id": key, "source": source, "patient_id": pid, "malignancy": mal, "malignancy_readers": readers,
                         "malignancy_binary": "benign" if mal < 3 else "malignant" if mal > 3 else "indeterminate",
                         "subtlety": 4, "calcification": 6, "sphericity": int(rng.integers(2, 6)), "margin": 4,
                         "lobulation": int(rng.integers(1, 4)), "spiculation": int(rng.integers(1, 4)), "texture": 5,
                         "diameter_mm": f"{diameter:.2f}", "pixel_spacing_mm": f"{spacing:.4f};{spacing:.4f}",
                         "z_spacing_mm": "1.25" if source == "ctslicing" else "",
                         "image_path": f"images/{key}.npz", "mask_path": f"masks/{key}.npz"})
    with open(os.path.join(folder, "labels.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    t0 = time.time()
    data = os.path.join(args.out, "synthetic-lidc-hu")
    n = make_dataset(data)
    print(f"synthetic lidc-hu: {n} nodules in {data}", flush=True)
    import train_hu
    run = os.path.join(args.out, "run")
    train_hu.main(["--data", data, "--out", run, "--epochs", "2", "--steps-per-epoch", "2", "--batch", "8",
                   "--device", "cpu"])
    ckpt = os.path.join(run, "fcdn.pt")
    assert os.path.exists(ckpt), "no checkpoint written"
    import evaluate_hu
    evaluate_hu.main(["--data", data, "--model", ckpt, "--quick"])
    import export
    onnx_path = os.path.join(args.out, "fcdn-smoke-hu.onnx")
    export.main(["--checkpoint", ckpt, "--out", onnx_path, "--name", "fcdn-smoke-hu"])
    assert os.path.getsize(onnx_path) > 10_000
    print(f"smoke (lidc-hu pipeline) done in {time.time() - t0:.1f}s")
    print(os.path.abspath(onnx_path))


if __name__ == "__main__":
    main()
