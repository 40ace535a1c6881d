"""Retrieval protocol (issue 3, Table 1) and the LSH / SH / ITQ baselines.

A case is a nodule with up to 3 central slices. For a query, the gallery is every
other patient's case with a benign/malignant label; relevant = same class.
Distances between cases from per-slice codes:
  single shallow/deep layer: min over slice pairs of Hamming(code)
  single middle layer:       Hamming of the centre slices
  Joint (PRODUCT.md eq. 22): DL + DM + DD with those three, ties by DM
Remaining ties are broken by a seeded random order of the gallery (the service breaks
them by case id, which is arbitrary with respect to the labels).
"""
from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------- distances
def slice_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [P,k], b [Q,k] boolean -> [P,Q] Hamming distances."""
    a = a.astype(np.int32)
    b = b.astype(np.int32)
    return a.shape[1] - (a @ b.T + (1 - a) @ (1 - b).T)


def case_min_distance(codes: np.ndarray, owner: np.ndarray, n_cases: int) -> np.ndarray:
    """codes [P,k] per slice, owner [P] case index -> [C,C] min over slice pairs."""
    d = slice_hamming(codes, codes).astype(np.float64)
    # reduce rows then columns by case
    big = np.full((n_cases, d.shape[1]), np.inf)
    np.minimum.at(big, owner, d)
    out = np.full((n_cases, n_cases), np.inf)
    np.minimum.at(out.T, owner, big.T)
    return out


def case_centre_distance(codes: np.ndarray, centre_rows: np.ndarray) -> np.ndarray:
    c = codes[centre_rows]
    return slice_hamming(c, c).astype(np.float64)


def joint_distances(bits: dict, owner, centre_rows, n_cases):
    """bits: {'shallow','middle','deep'} -> [P,k] bool. Returns dict of [C,C] matrices."""
    DL = case_min_distance(bits["shallow"], owner, n_cases)
    DM = case_centre_distance(bits["middle"], centre_rows)
    DD = case_min_distance(bits["deep"], owner, n_cases)
    return {"joint": DL + DM + DD, "shallow": DL, "middle": DM, "deep": DD}


# ---------------------------------------------------------------- metrics
def rank_gallery(dist: np.ndarray, patients, seed: int = 0, secondary: np.ndarray | None = None):
    """For each query row, gallery indices (other patients) ordered by (dist, secondary,
    seeded random)."""
    C = dist.shape[0]
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(C)
    patients = np.asarray(patients)
    order = []
    for q in range(C):
        g = np.nonzero(patients != patients[q])[0]
        keys = [tiebreak[g]]
        if secondary is not None:
            keys.append(secondary[q, g])
        keys.append(dist[q, g])
        order.append(g[np.lexsort(keys)])
    return order


def evaluate_ranking(order, labels, diameters=None, top=10):
    """MAP over all ranks, P@top, mean |diameter gap| of the top (mm), and the mean
    precision / recall at each cut-off (for PR curves)."""
    labels = np.asarray(labels)
    aps, pks, gaps, prec_curves, rec_curves = [], [], [], [], []
    for q, g in enumerate(order):
        rel = labels[g] == labels[q]
        nrel = rel.sum()
        if nrel == 0:
            continue
        hits = np.cumsum(rel)
        ranks = np.arange(1, len(g) + 1)
        aps.append(float((hits[rel] / ranks[rel]).mean()))
        pks.append(float(rel[:top].mean()))
        prec_curves.append(hits / ranks)
        rec_curves.append(hits / nrel)
        if diameters is not None and np.isfinite(diameters[q]):
            dg = np.asarray(diameters)[g[:top]]
            dg = dg[np.isfinite(dg)]
            if len(dg):
                gaps.append(float(np.abs(dg - diameters[q]).mean()))
    # PR: precision averaged over queries at 21 recall levels (interpolated max precision)
    levels = np.linspace(0, 1, 21)
    pr = []
    for p, r in zip(prec_curves, rec_curves):
        pr.append([p[r >= lv].max() if (r >= lv).any() else 0.0 for lv in levels])
    return {
        "map": float(np.mean(aps)),
        "p@%d" % top: float(np.mean(pks)),
        "diameter_gap_mm": float(np.mean(gaps)) if gaps else None,
        "queries": len(aps),
        "pr_recall": levels.tolist(),
        "pr_precision": np.mean(pr, axis=0).tolist(),
    }


# ---------------------------------------------------------------- baselines
class LSH:
    """Random hyperplanes through the training mean."""

    def __init__(self, bits, seed=0):
        self.bits, self.seed = bits, seed

    def fit(self, X):
        self.mean = X.mean(0)
        self.W = np.random.default_rng(self.seed).standard_normal((X.shape[1], self.bits))
        return self

    def encode(self, X):
        return (X - self.mean) @ self.W > 0


def _pca(X, k):
    mean = X.mean(0)
    Xc = X - mean
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    return mean, vt[:k].T


class ITQ:
    """Iterative quantisation (Gong & Lazebnik 2011): PCA then a learned rotation."""

    def __init__(self, bits, seed=0, iters=50):
        self.bits, self.seed, self.iters = bits, seed, iters

    def fit(self, X):
        self.mean, self.P = _pca(X, self.bits)
        V = (X - self.mean) @ self.P
        k = V.shape[1]
        R, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((k, k)))
        for _ in range(self.iters):
            B = np.sign(V @ R)
            U, _, Wt = np.linalg.svd(B.T @ V)
            R = (U @ Wt).T
        self.R = R
        return self

    def encode(self, X):
        return ((X - self.mean) @ self.P) @ self.R > 0


class SH:
    """Spectral hashing (Weiss et al. 2008): PCA, uniform-range eigenfunctions."""

    def __init__(self, bits, seed=0):
        self.bits = bits

    def fit(self, X):
        npca = min(self.bits, X.shape[1])
        self.mean, self.P = _pca(X, npca)
        V = (X - self.mean) @ self.P
        self.mn, self.mx = V.min(0) - 1e-6, V.max(0) + 1e-6
        rng_ = self.mx - self.mn
        max_mode = int(np.ceil((self.bits + 1) * rng_ / rng_.max()).max())
        modes = []
        for i in range(npca):
            for m in range(1, max_mode + 1):
                modes.append(((m / rng_[i]) ** 2, i, m))
        modes.sort()
        self.modes = [(i, m) for _, i, m in modes[: self.bits]]
        return self

    def encode(self, X):
        V = (X - self.mean) @ self.P
        out = np.empty((X.shape[0], self.bits), bool)
        for j, (i, m) in enumerate(self.modes):
            omega = m * np.pi / (self.mx[i] - self.mn[i])
            out[:, j] = np.sin(np.pi / 2 + omega * (V[:, i] - self.mn[i])) > 0
        return out


BASELINES = {"LSH": LSH, "SH": SH, "ITQ": ITQ}
