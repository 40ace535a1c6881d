"""Loading lidc-hu (../shared/data/lidc-hu): LIDC-IDRI nodules in Hounsfield units with context.

Each nodule becomes what the product sees when a PACS sends it as CT DICOM (PRODUCT.md, Input;
src/imaging/dicom.ts `dicomPatchHu`): HU slices with their pixel spacing and the nodule's
centre point, resampled at 0.75 mm per pixel onto a 64x64 grid centred on that point (the
triangle filter of src/imaging/resample.ts `resampleGrid`), rounded to whole HU (the stored
16-bit PNG), windowed to [-1200, 600] and scaled to [0, 1].

The slices are wrapped as `npm run eval`'s DICOM mode wraps them (training/export_eval_set.py
--lidc-hu), so validation here predicts the number through the service:
  - centre slice = the slice of largest mask area; ctslicing (3D VOIs) adds one neighbour on
    each side where it exists, gdro (2D) has one slice;
  - every slice reflect-padded to at least 160x160 px;
  - centre point = the mask centroid on the centre slice.
Nothing derived from LIDC is written anywhere: everything stays in memory.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field

import numpy as np

from lidc_hu_split import is_validation_patient

SIZE = 64
MM_PER_PIXEL = 0.75          # src/imaging/dicom.ts PATCH_MM_PER_PIXEL
WINDOW = (-1200.0, 600.0)    # src/imaging/intensity.ts
PAD_HU = -1200.0             # air, where a sampling window leaves the image
MIN_PADDED = 160             # the DICOM wrapping pads every slice to at least this
CLASSES = {"benign": 0, "malignant": 1}  # indeterminate -> -1
RATING_NAMES = ("subtlety", "calcification", "sphericity", "margin", "lobulation",
                "spiculation", "texture")


@dataclass
class HuNodule:
    key: str
    source: str
    patient: str
    label: int                 # 0 benign, 1 malignant, -1 indeterminate
    malignancy: float          # 1..5; gdro: the mean of the available readers
    malignancy_readers: list   # gdro: each reader's rating; ctslicing: [max-voted]
    diameter_mm: float
    ratings: dict
    spacing: tuple             # (row, col) mm
    z_step_mm: float           # ctslicing slice spacing; nan for gdro
    slices: np.ndarray         # [S, H, W] float32 HU, reflect-padded to >= 160
    masks: np.ndarray          # [S, H, W] uint8 (same padding)
    centre: int                # index of the centre slice (largest mask area)
    centre_xy: tuple           # (x, y) = (column, row) mask centroid on the centre slice
    extra: dict = field(default_factory=dict)

    def window(self, radius: int = 1):
        lo, hi = max(0, self.centre - radius), min(len(self.slices), self.centre + radius + 1)
        return list(range(lo, hi))


def reflect_pad(a: np.ndarray, minimum: int = MIN_PADDED):
    """Pad the last two axes by reflection to at least `minimum`, equal on both sides (the
    extra pixel after). Returns the array and the (rows, cols) added before."""
    h, w = a.shape[-2:]
    ph, pw = max(0, minimum - h), max(0, minimum - w)
    before = (ph // 2, pw // 2)
    pads = [(0, 0)] * (a.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    return np.pad(a, pads, mode="reflect"), before


def _grid_taps(size: int, first: float, step: float, n: int):
    """resampleGrid's taps of one axis as a dense matrix [size, n] over the source samples,
    plus each output's weight on samples outside [0, n) (which read PAD_HU)."""
    fs = max(step, 1.0)
    W = np.zeros((size, n), dtype=np.float64)
    outside = np.zeros(size, dtype=np.float64)
    for o in range(size):
        c = first + o * step
        lo = math.floor(c - fs) + 1
        hi = math.ceil(c + fs) - 1
        idx = np.arange(lo, max(hi, lo) + 1)
        w = np.maximum(0.0, 1.0 - np.abs((idx - c) / fs))
        w = w / w.sum()
        inside = (idx >= 0) & (idx < n)
        W[o, idx[inside]] = w[inside]
        outside[o] = w[~inside].sum()
    return W, outside


def product_patch(hu: np.ndarray, spacing, centre_xy, size: int = SIZE,
                  mm_per_pixel: float = MM_PER_PIXEL, quantize: bool = True) -> np.ndarray:
    """The service's 64x64 HU patch of one slice (dicomPatchHu): a grid at mm_per_pixel centred
    on centre_xy = (x, y), rows first then columns, PAD_HU outside the image."""
    step_x, step_y = mm_per_pixel / spacing[1], mm_per_pixel / spacing[0]
    half = (size - 1) / 2
    wx, ox = _grid_taps(size, centre_xy[0] - half * step_x, step_x, hu.shape[1])
    wy, oy = _grid_taps(size, centre_xy[1] - half * step_y, step_y, hu.shape[0])
    rows = hu.astype(np.float64) @ wx.T + PAD_HU * ox[None, :]       # [H, size]
    out = wy @ rows + PAD_HU * oy[:, None]                            # [size, size]
    return np.round(out) if quantize else out


def window01(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW
    return np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _float(s, default=float("nan")):
    try:
        return float(s)
    except (TypeError, ValueError):
        return default


def load_hu_nodules(data_dir: str, sources=("ctslicing", "gdro"), with_indeterminate=True):
    """Every nodule with a mask, as the DICOM wrapping gives it (see the module doc)."""
    rows = list(csv.DictReader(open(os.path.join(data_dir, "labels.csv"))))
    out = []
    for r in rows:
        if r["source"] not in sources or not r["mask_path"]:
            continue
        label = CLASSES.get(r["malignancy_binary"], -1)
        if label < 0 and not with_indeterminate:
            continue
        img = np.load(os.path.join(data_dir, r["image_path"]))["image"].astype(np.float32)
        msk = np.load(os.path.join(data_dir, r["mask_path"]))["mask"].astype(np.uint8)
        if img.ndim == 2:
            img, msk = img[None], msk[None]
        areas = msk.reshape(len(msk), -1).sum(1)
        if areas.max() == 0:
            continue
        centre = int(np.argmax(areas))
        lo, hi = max(0, centre - 2), min(len(img), centre + 3)   # the window +- 1, and one more for augmentation
        img, msk, centre = img[lo:hi], msk[lo:hi], centre - lo
        img, before = reflect_pad(img)
        msk, _ = reflect_pad(msk)
        m0 = np.load(os.path.join(data_dir, r["mask_path"]))["mask"]
        m0 = m0[None] if m0.ndim == 2 else m0
        ys, xs = np.nonzero(m0[lo + centre])
        cxy = (float(xs.mean()) + before[1], float(ys.mean()) + before[0])
        # Keep the padded mask inside the original area only: reflected copies are not the nodule.
        keep = np.zeros_like(msk)
        keep[:, before[0]:before[0] + m0.shape[1], before[1]:before[1] + m0.shape[2]] = 1
        msk = msk * keep
        sp = tuple(float(v) for v in r["pixel_spacing_mm"].split(";"))
        readers = [float(v) for v in r["malignancy_readers"].split(";") if v] if r["malignancy_readers"] else []
        mal = float(np.mean(readers)) if readers else _float(r["malignancy"])
        out.append(HuNodule(
            key=r["id"], source=r["source"], patient=r["patient_id"], label=label,
            malignancy=mal, malignancy_readers=readers or [_float(r["malignancy"])],
            diameter_mm=_float(r["diameter_mm"]),
            ratings={k: _float(r[k], 0.0) for k in RATING_NAMES},
            spacing=sp, z_step_mm=_float(r["z_spacing_mm"]),
            slices=img, masks=msk, centre=centre, centre_xy=cxy))
    return out


def split(nodules):
    train = [n for n in nodules if not is_validation_patient(n.patient)]
    valid = [n for n in nodules if is_validation_patient(n.patient)]
    return train, valid


def case_patches(n: HuNodule, radius: int = 1):
    """The case's window slices as the service computes them: ([S,64,64] in [0,1], offsets)."""
    idx = n.window(radius)
    pats = np.stack([window01(product_patch(n.slices[i], n.spacing, n.centre_xy)) for i in idx])
    return pats, [i - n.centre for i in idx]
