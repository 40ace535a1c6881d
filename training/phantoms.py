"""Synthetic nodule patches for tests, CI smoke training and parity fixtures.

No LIDC data is involved: everything is drawn from a seeded generator, so the
same seed gives the same patches on every machine.
"""
from __future__ import annotations

import numpy as np

SIZE = 64


def phantom_batch(n: int, seed: int = 0, size: int = SIZE):
    """n patches in [0,1] with lung-like background, an elliptic nodule and a vessel.

    Returns (patches [n,1,size,size] float32, masks [n,1,size,size] float32,
    labels dict of diameter_px [n], malignant [n] (0/1)).
    Larger, more irregular nodules are labelled malignant, so that a hash trained
    on phantoms has something consistent to learn.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    patches = np.empty((n, 1, size, size), np.float32)
    masks = np.empty((n, 1, size, size), np.float32)
    diam = np.empty(n, np.float32)
    malignant = np.empty(n, np.int64)
    for i in range(n):
        bg = 0.12 + 0.03 * rng.standard_normal((size, size)).astype(np.float32)
        r = rng.uniform(3, 14)
        ecc = rng.uniform(0.7, 1.0)
        theta = rng.uniform(0, np.pi)
        cx, cy = size / 2 + rng.uniform(-2, 2, 2)
        dx, dy = xx - cx, yy - cy
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        ang = np.arctan2(v, u)
        spikes = rng.uniform(0, 0.35) * (r > 8)
        radius = r * (1 + spikes * np.sin(rng.integers(3, 8) * ang))
        inside = (u / ecc) ** 2 + v ** 2 <= radius ** 2
        img = bg.copy()
        img[inside] = rng.uniform(0.55, 0.85) + 0.03 * rng.standard_normal(inside.sum())
        # a vessel crossing the patch: context the mask must ignore
        a, b = rng.uniform(-1, 1, 2)
        vessel = np.abs(a * (xx - size / 2) + b * (yy - size / 2) + rng.uniform(-20, 20))
        vessel /= np.hypot(a, b) + 1e-6
        img[(vessel < 1.2) & ~inside] = 0.5
        patches[i, 0] = np.clip(img, 0, 1)
        masks[i, 0] = inside
        diam[i] = 2 * r * np.sqrt(ecc)
        malignant[i] = int(r + 10 * spikes + rng.normal(0, 1.5) > 9.5)
    return patches, masks, {"diameter_px": diam, "malignant": malignant}
