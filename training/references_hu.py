"""Reference rankings on lidc-hu validation: what limits the targets (docs/evaluation.md).

  OMP_NUM_THREADS=2 /usr/bin/python3 training/references_hu.py --data ../shared/data/lidc-hu --model models/fcdn-v3.pt

Same cases and protocol as training/evaluate_hu.py (per source, gallery = other patients'
nodules of the source, relevant = same benign/malignant class, MAP over all ranks). Rows:
random; the true diameter (an oracle); a logistic regression on the FCDN's pooled tap features
(fitted on training patients), ranked by the real-valued P(same class) and by |p_q - p_g| (what a
symmetric code can at best express); and, for gdro, how often one reader's benign/malignant call
agrees with the consensus label the relevance uses (the labels' own noise).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lidc_hu  # noqa: E402
from evaluate_hu import TAPS, case_tensors, encode, ranking_figures  # noqa: E402


def centre_features(model, ns):
    x, owner, centre_rows = case_tensors(ns)
    _, feats = encode(model, x)
    return np.concatenate([feats[t] for t in TAPS], 1)[centre_rows]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args(argv)
    from checkpoint import load_checkpoint
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    model, _ = load_checkpoint(args.model)
    train, val = lidc_hu.split(lidc_hu.load_hu_nodules(args.data))
    print("| source | ranking | MAP | P@10 | gap (mm) |\n|---|---|---|---|---|")
    for source in ("ctslicing", "gdro"):
        tr = [n for n in train if n.source == source and n.label >= 0]
        ns = [n for n in val if n.source == source and n.label >= 0]
        labels = np.array([n.label for n in ns])
        diam = np.array([n.diameter_mm for n in ns])
        patients = np.array([n.patient for n in ns])
        clf = LogisticRegression(C=0.1, max_iter=2000).fit(centre_features(model, tr), [n.label for n in tr])
        p = clf.predict_proba(centre_features(model, ns))[:, 1]
        auc = roc_auc_score(labels, p)
        rows = {
            "random": np.random.default_rng(0).random((len(ns), len(ns))),
            "oracle: true diameter, |d_q - d_g|": np.abs(diam[:, None] - diam[None, :]),
            f"logistic on FCDN features (AUC {auc:.3f}): P(same class), real-valued":
                -(p[:, None] * p[None, :] + (1 - p[:, None]) * (1 - p[None, :])),
            f"same logistic: |p_q - p_g|": np.abs(p[:, None] - p[None, :]),
        }
        for name, d in rows.items():
            f = ranking_figures(d, labels, diam, patients)
            print(f"| {source} | {name} | {np.nanmean(f['ap']):.3f} | {np.nanmean(f['p10']):.3f} | {np.nanmean(f['gap']):.2f} |")
    # the labels' noise: gdro readers against the consensus class
    agree, total = 0, 0
    for n in val + train:
        if n.source != "gdro" or n.label < 0 or len(n.malignancy_readers) < 2:
            continue
        for r in n.malignancy_readers:
            if r == 3:
                continue
            total += 1
            agree += int((r > 3) == (n.label == 1))
    print(f"\ngdro: a single reader's benign/malignant call (ratings other than 3) agrees with the consensus "
          f"class in {agree} of {total} ratings ({100 * agree / max(total, 1):.1f}%)")


if __name__ == "__main__":
    main()
