"""Write the validation cases as the service ingests them, for `npm run eval`.

  /usr/bin/python3 training/export_eval_set.py --data ../shared/data/lidc --out /tmp/fcdn-evalset
  /usr/bin/python3 training/export_eval_set.py --lidc-hu --data ../shared/data/lidc-hu --out /tmp/fcdn-evalset-hu

The output folder (outside the repository: it holds LIDC-derived images) gets one PNG per
case slice and manifest.json. Same cases as training/evaluate.py: validation patients of the
patient split (--split-seed, --val-fraction as in training), nodules with a benign/malignant
label, the centre slice and up to one neighbour each side.
  md882 slices:   8-bit PNG, value = round(patch * 255) (exactly the source pixels);
  daco134 slices: 16-bit PNG in the service's convention HU + 32768, with the windowed
                  intensity v in [0,1] mapped back to HU = v * 1800 - 1200 (window [-1200, 600]).

--lidc-hu (the DICOM mode of `npm run eval`, see lidc_hu_dicom below): validation patients of
training/lidc_hu_split.py, nodules labelled benign or malignant that have a mask; per slice a raw
little-endian int16 HU file, and manifest.json with "format": "lidc-hu-dicom".
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lidc_hu_split import is_validation_patient  # noqa: E402

MIN_SIDE = 160  # each slice is reflect-padded to at least this many pixels per side
RATINGS = ("subtlety", "internal_structure", "calcification", "sphericity", "margin", "lobulation", "spiculation", "texture")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _int_or_none(text: str):
    return int(float(text)) if text.strip() else None


def pad_to(image: np.ndarray, min_side: int = MIN_SIDE):
    """Reflect-pad a 2D slice to at least min_side x min_side: equal on both sides, the odd pixel after.
    Returns the padded slice and the (rows, columns) added before."""
    widths = []
    for n in image.shape:
        total = max(0, min_side - n)
        widths.append((total // 2, total - total // 2))
    return np.pad(image, widths, mode="reflect"), (widths[0][0], widths[1][0])


def lidc_hu_dicom(data: str, out: str) -> None:
    """The lidc-hu validation nodules wrapped as the held-out check of issue 11 wraps them.

    Centre slice = the slice of largest mask area (first on ties); ctslicing VOIs (z, y, x) add one
    neighbour each side where the VOI has it (offsets -1, 0, +1), gdro is one 2D slice. Each slice
    is reflect-padded to at least 160x160 and written as raw little-endian int16 HU. The manifest
    gives per case the pixel spacing (row, col), each slice's z position (ctslicing: VOI origin z +
    index * z_spacing_mm; gdro: z_position_mm) and the nodule centre = the mask centroid on the centre
    slice, (column, row) in the padded image's pixel coordinates (pixel centres at integers).
    """
    with open(os.path.join(data, "labels.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    os.makedirs(out, exist_ok=True)
    manifest, skipped = [], {"training patient": 0, "indeterminate": 0, "no mask": 0, "empty mask": 0}
    for r in rows:
        if not is_validation_patient(r["patient_id"]):
            skipped["training patient"] += 1
            continue
        if r["malignancy_binary"] not in ("benign", "malignant"):
            skipped["indeterminate"] += 1
            continue
        if not r["mask_path"]:
            skipped["no mask"] += 1
            continue
        image = np.load(os.path.join(data, r["image_path"]))["image"]
        mask = np.load(os.path.join(data, r["mask_path"]))["mask"]
        if image.ndim == 2:
            image, mask = image[None], mask[None]
        areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
        if areas.max() == 0:
            skipped["empty mask"] += 1
            continue
        centre = int(np.argmax(areas))
        spacing = [float(v) for v in r["pixel_spacing_mm"].split(";")]
        if r["source"] == "gdro" or image.shape[0] == 1:
            z_of = lambda i: float(r["z_position_mm"])  # noqa: E731
            offsets = [0]
        else:
            z0 = float(r["origin_lps_mm"].split(";")[2])
            dz = float(r["z_spacing_mm"])
            z_of = lambda i: z0 + i * dz  # noqa: E731
            offsets = [o for o in (-1, 0, 1) if 0 <= centre + o < image.shape[0]]
        slices = []
        for o in offsets:
            padded, (pad_r, pad_c) = pad_to(image[centre + o])
            name = f"{r['id']}__{o:+d}.i16"
            padded.astype("<i2").tofile(os.path.join(out, name))
            slices.append({"file": name, "offset": o, "zMm": round(z_of(centre + o), 4)})
        ys, xs = np.nonzero(mask[centre])
        readers = [int(v) for v in r["malignancy_readers"].split(";") if v.strip()]
        manifest.append({
            "key": r["id"], "source": r["source"], "patient": r["patient_id"],
            "label": r["malignancy_binary"], "malignancy": _int_or_none(r["malignancy"]),
            "malignancyReaders": readers or None,
            "diameterMm": float(r["diameter_mm"]) if r["diameter_mm"].strip() else None,
            "ratings": {_camel(k): _int_or_none(r[k]) for k in RATINGS},
            "rows": int(padded.shape[0]), "columns": int(padded.shape[1]),
            "pixelSpacingMm": spacing, "slices": slices,
            "centre": {"x": round(float(xs.mean()) + pad_c, 4), "y": round(float(ys.mean()) + pad_r, 4)},
            "maskPixelsCentre": int(areas[centre]),
        })
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({
            "format": "lidc-hu-dicom", "data": os.path.abspath(data),
            "split": "validation iff int(sha256(patient_id)[:8], 16) % 1000 < 250 (training/lidc_hu_split.py)",
            "minSide": MIN_SIDE, "neighbours": 1, "cases": manifest,
        }, f, indent=1)
    by_source = {}
    for c in manifest:
        by_source.setdefault(c["source"], []).append(c)
    for s, cs in sorted(by_source.items()):
        print(f"{s}: {len(cs)} cases ({sum(c['label'] == 'benign' for c in cs)} benign) of "
              f"{len({c['patient'] for c in cs})} patients, {sum(len(c['slices']) for c in cs)} slices")
    print(f"wrote {len(manifest)} cases to {out}; left out: {skipped}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.25)
    ap.add_argument("--lidc-hu", action="store_true", help="--data is lidc-hu: write the DICOM-mode set (see above)")
    args = ap.parse_args()
    if args.lidc_hu:
        lidc_hu_dicom(args.data, args.out)
        return
    from lidc import load_nodules, split_patients

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
