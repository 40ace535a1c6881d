"""Reference points for the retrieval protocol that need no network (validation only).

  OMP_NUM_THREADS=1 /usr/bin/python3 training/references.py --data ../shared/data/lidc

Random ranking; ranking by the true diameter (an oracle: the query's label, not its
image); by the nodule's largest area (image only); and a 5-feature logistic regression
fitted on training patients (sqrt of the largest and of the centre area, mean and
std intensity inside the mask, subset), ranked by |p difference|, by P(same class),
and as simulated Hamming codes: class bits [logit + sigma * noise > 0] plus
thermometer size bits. Shows what limits MAP and the diameter gap on this split.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lidc  # noqa: E402
import retrieval as R  # noqa: E402


def feats(n, central_only=False):
    """central_only: the largest area over the case's 3 central slices (what a query has)
    instead of over all the nodule's slices."""
    m = n.masks[n.centre]
    c = n.slices[n.centre]
    areas = [n.masks[i].sum() for i in (n.case_slices(1) if central_only else range(len(n.masks)))]
    inside = c[m > 0] if m.sum() else np.zeros(1)
    return [np.sqrt(max(areas)), np.sqrt(m.sum()), inside.mean(), inside.std(), float(n.subset == "daco134")]


def logistic_logits(Xt, yt, X, steps: int = 3000, lr: float = 0.1):
    """Logistic regression on standardised features (plain gradient descent), fitted on the
    training rows Xt/yt; returns the logits of the rows X."""
    mu, sd = Xt.mean(0), Xt.std(0) + 1e-6
    Z = (Xt - mu) / sd
    w = np.zeros(Z.shape[1] + 1)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(Z @ w[:-1] + w[-1])))
        g = p - yt
        w[:-1] -= lr * Z.T @ g / len(g)
        w[-1] -= lr * g.mean()
    return ((X - mu) / sd) @ w[:-1] + w[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.25)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--checkpoint", help="also rank by P(same class) from this FCDN's class logits")
    args = ap.parse_args(argv)
    nod = lidc.load_nodules(args.data)
    tr, va = lidc.split_patients(nod, args.val_fraction, args.split_seed)
    V = [n for n in va if n.label >= 0]
    T = [n for n in tr if n.label >= 0]
    lab = np.array([n.label for n in V])
    pat = [n.patient for n in V]
    d = np.array([n.diameter_mm for n in V])

    def run(D, name):
        r = R.evaluate_ranking(R.rank_gallery(D, pat, 0), lab, d)
        print(f"{name:55s} MAP {r['map']:.4f}  P@10 {r['p@10']:.4f}  gap {r['diameter_gap_mm']:.2f} mm")

    print(f"validation cases {len(V)} (benign {(lab == 0).sum()}, malignant {(lab == 1).sum()})")
    run(np.zeros((len(V),) * 2), "random")
    dd = np.nan_to_num(d, nan=0)
    run(np.abs(dd[:, None] - dd[None]), "oracle: true diameter_mm (daco134 has none)")
    X = np.array([feats(n) for n in V])
    Xt = np.array([feats(n) for n in T])
    yt = np.array([n.label for n in T])
    run(np.abs(X[:, :1] - X[:, :1].T), "largest nodule area (image only)")
    logit = logistic_logits(Xt, yt, X)
    pv = 1 / (1 + np.exp(-logit))
    auc = (pv[lab == 1][:, None] > pv[lab == 0][None]).mean()
    print(f"logistic regression on 5 features: validation AUC {auc:.3f}, accuracy {((pv > 0.5) == lab).mean():.3f}")
    run(np.abs(pv[:, None] - pv[None]), "logistic: |p_q - p_g| (real-valued)")
    run(-(pv[:, None] * pv[None] + (1 - pv[:, None]) * (1 - pv[None])), "logistic: P(same class) (real-valued)")
    rng = np.random.default_rng(0)
    for nc, ns in ((64, 0), (48, 16), (32, 32)):
        for sigma in (0.0, 1.0):
            cb = (logit[:, None] + sigma * rng.standard_normal((len(V), nc))) > 0
            th = np.quantile(Xt[:, 0], (np.arange(ns) + 0.5) / ns) if ns else np.zeros(0)
            B = np.concatenate([cb, X[:, :1] > th[None]], 1)
            run(R.slice_hamming(B, B).astype(float),
                f"logistic as 64-bit code: {nc} class bits (sigma {sigma}) + {ns} size bits")
    # the same logistic regression seeing only the 3 central slices of each case
    X3 = np.array([feats(n, True) for n in V])
    Xt3 = np.array([feats(n, True) for n in T])
    pv = 1 / (1 + np.exp(-logistic_logits(Xt3, yt, X3)))
    auc = (pv[lab == 1][:, None] > pv[lab == 0][None]).mean()
    print(f"logistic regression, 3 central slices only: validation AUC {auc:.3f}")
    run(np.abs(X3[:, :1] - X3[:, :1].T), "largest area of the 3 central slices")
    run(-(pv[:, None] * pv[None] + (1 - pv[:, None]) * (1 - pv[None])),
        "logistic, 3 central slices: P(same class)")
    if args.checkpoint:
        from evaluate import encode_cases
        from checkpoint import load_checkpoint
        model, _ = load_checkpoint(args.checkpoint)
        enc = encode_cases(model, V)
        for tap in ("shallow", "middle", "deep"):
            sc = enc["class_logits"][tap][enc["centre_rows"]]
            p = 1 / (1 + np.exp(-sc))
            auc = (sc[lab == 1][:, None] > sc[lab == 0][None]).mean()
            run(-(p[:, None] * p[None] + (1 - p[:, None]) * (1 - p[None])),
                f"FCDN {tap} class logit (AUC {auc:.3f}): P(same class)")


if __name__ == "__main__":
    main()
