"""Loading the LIDC-IDRI development patches (../shared/data/lidc) and the patient split.

Everything is read from the data folder given on the command line and kept in memory;
nothing derived from LIDC is written to the repository.

Conventions:
- md882: 64x64 8-bit PNG, already windowed and segmented (0 outside one reader's
  outline): patch = value / 255, mask = value > 0.
- daco134: 51x51x51 uint16 cube (value / 65535 is the windowed intensity, axis 2 =
  slices) with a 0/1 mask cube; slices are resized bilinearly to 64x64.
- A case is a nodule: its centre slice and its neighbours (offsets -1, 0, +1 where
  they exist). md882's centre is the middle of its slice list; daco134's is slice_index.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 64
CLASSES = {"benign": 0, "malignant": 1}  # indeterminate -> -1 (no class)
DACO_CONTEXT = 3  # daco134 training slices: centre +- this many


@dataclass
class Nodule:
    key: str
    subset: str
    patient: str
    label: int                 # 0 benign, 1 malignant, -1 indeterminate
    malignancy: int            # 1..5
    diameter_mm: float         # nan where unknown (daco134)
    texture: int               # 1..5 or 0 where unknown
    slices: np.ndarray         # [S,64,64] float32 in [0,1], in slice order
    masks: np.ndarray          # [S,64,64] float32 0/1
    centre: int                # index into slices of the centre slice
    ratings: dict = field(default_factory=dict)

    def case_slices(self, radius: int = 1):
        """Indices of the case's slices: centre and up to `radius` neighbours each side."""
        lo, hi = max(0, self.centre - radius), min(len(self.slices), self.centre + radius + 1)
        return list(range(lo, hi))


def _resize(a: np.ndarray) -> np.ndarray:
    """[S,h,w] -> [S,64,64] bilinear (torch, align_corners=False, like the service)."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0].numpy()


def _int(s: str, default: int = 0) -> int:
    try:
        return int(float(s))
    except (TypeError, ValueError):
        return default


def load_nodules(data_dir: str, subsets=("md882", "daco134")) -> list[Nodule]:
    from PIL import Image  # here, so that the CI smoke (no LIDC data) needs no Pillow
    rows = list(csv.DictReader(open(os.path.join(data_dir, "labels.csv"))))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["subset"] in subsets:
            groups.setdefault(r["nodule_key"], []).append(r)
    nodules = []
    for key in sorted(groups):
        g = sorted(groups[key], key=lambda r: int(r["slice_index"]))
        r0 = g[0]
        label = CLASSES.get(r0["malignancy_binary"], -1)
        ratings = {k: _int(r0[k]) for k in ("subtlety", "sphericity", "margin", "lobulation",
                                           "spiculation", "texture") if r0.get(k)}
        if r0["subset"] == "md882":
            imgs = np.stack([np.asarray(Image.open(os.path.join(data_dir, r["image_path"])),
                                        dtype=np.float32) / 255.0 for r in g])
            masks = (imgs > 0).astype(np.float32)
            centre = len(g) // 2
        else:
            cube = np.load(os.path.join(data_dir, r0["volume_path"])).astype(np.float32) / 65535.0
            mcube = np.load(os.path.join(data_dir, r0["volume_mask_path"])).astype(np.float32)
            si = int(r0["slice_index"])
            lo, hi = max(0, si - DACO_CONTEXT), min(cube.shape[2], si + DACO_CONTEXT + 1)
            imgs = _resize(np.moveaxis(cube[:, :, lo:hi], 2, 0))
            masks = (_resize(np.moveaxis(mcube[:, :, lo:hi], 2, 0)) > 0.5).astype(np.float32)
            centre = si - lo
        d = r0.get("diameter_mm") or ""
        nodules.append(Nodule(
            key=key, subset=r0["subset"], patient=r0["patient_id"], label=label,
            malignancy=_int(r0["malignancy"]), diameter_mm=float(d) if d else float("nan"),
            texture=_int(r0.get("texture")), slices=np.clip(imgs, 0, 1), masks=masks,
            centre=centre, ratings=ratings))
    return nodules


def split_patients(nodules: list[Nodule], val_fraction: float = 0.25, seed: int = 0):
    """Patient-level split: the sorted patient ids are shuffled with `seed`, and the
    first val_fraction of each subset's patients go to validation."""
    rng = np.random.default_rng(seed)
    val = set()
    for subset in sorted({n.subset for n in nodules}):
        pats = sorted({n.patient for n in nodules if n.subset == subset})
        rng.shuffle(pats)
        val.update(pats[: int(round(val_fraction * len(pats)))])
    train = [n for n in nodules if n.patient not in val]
    valid = [n for n in nodules if n.patient in val]
    return train, valid
