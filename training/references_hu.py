"""Reference rankings on lidc-hu validation: what limits the targets (docs/evaluation.md).

  OMP_NUM_THREADS=2 /usr/bin/python3 training/references_hu.py --data ../shared/data/lidc-hu --model models/fcdn-v3.pt

Same cases and protocol as training/evaluate_hu.py (per source, gallery = other patients'
nodules of the source, relevant = same benign/malignant class, MAP over all ranks). Rows:
random; the true diameter (an oracle); size from images alone: the ground-truth mask's equivalent
diameter on the centre slice, and the model's own predicted mask (its log area, the mask statistic
every hash head sees), which bounds the top-10 diameter gap a code of this network can reach, and the
Joint with part of each code spent on a thermometer of that size; a logistic regression on the FCDN's pooled tap features
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
from retrieval import joint_distances  # noqa: E402
from fcdn import MASK_STAT_NAMES  # noqa: E402


def centre_features(model, ns):
    x, owner, centre_rows = case_tensors(ns)
    _, feats = encode(model, x)
    return np.concatenate([feats[t] for t in TAPS], 1)[centre_rows]


def predicted_log_area(model, ns):
    """The predicted mask's log area on each centre slice (normalised as the deep head sees it)."""
    x, _, centre_rows = case_tensors(ns)
    _, feats = encode(model, x)
    return feats["deep"][centre_rows, MASK_STAT_NAMES.index("log_area") - len(MASK_STAT_NAMES)]


def thermometer_joint(model, train_ns, ns, T):
    """Joint distance when T of each tap's 64 bits are a thermometer code of the predicted mask's
    log area (T thresholds evenly spaced between the 2nd and 98th percentile of training centre
    slices) and the other 64 - T bits are the model's learned (64 - T)-bit code: can bits spent on
    the model's own size estimate narrow the diameter gap without costing MAP?"""
    at = MASK_STAT_NAMES.index("log_area") - len(MASK_STAT_NAMES)
    xt, _, ct = case_tensors(train_ns)
    _, ft = encode(model, xt[ct])
    x, owner, centre_rows = case_tensors(ns)
    codes, feats = encode(model, x)
    mixed = {}
    for t in TAPS:
        lo, hi = np.percentile(ft[t][:, at], [2, 98])
        thresholds = np.linspace(lo, hi, T + 2)[1:-1]
        learned = codes[t][64 - T] if (64 - T) in codes[t] else codes[t][64][:, :64 - T]
        mixed[t] = np.concatenate([learned, feats[t][:, at, None] > thresholds[None, :]], axis=1)
    d = joint_distances(mixed, owner, centre_rows, len(ns))
    return d["joint"], d["middle"]


def mask_diameter(n):
    """Equivalent diameter (mm) of the ground-truth mask on the centre slice."""
    return 2.0 * np.sqrt(n.masks[n.centre].sum() * n.spacing[0] * n.spacing[1] / np.pi)


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
        mask_d = np.array([mask_diameter(n) for n in ns])
        rows = {
            "random": np.random.default_rng(0).random((len(ns), len(ns))),
            "oracle: true diameter, |d_q - d_g|": np.abs(diam[:, None] - diam[None, :]),
            "ground-truth mask's equivalent diameter, centre slice": np.abs(np.log(mask_d)[:, None] - np.log(mask_d)[None, :]),
            f"logistic on FCDN features (AUC {auc:.3f}): P(same class), real-valued":
                -(p[:, None] * p[None, :] + (1 - p[:, None]) * (1 - p[None, :])),
            f"same logistic: |p_q - p_g|": np.abs(p[:, None] - p[None, :]),
        }
        secondary = {}
        if model.mask_stats:
            a = predicted_log_area(model, ns)
            rows["the model's predicted mask, log area (centre slice)"] = np.abs(a[:, None] - a[None, :])
            for T in (16, 32):
                name = f"Joint, {T} of each tap's 64 bits a thermometer of that log area"
                rows[name], secondary[name] = thermometer_joint(model, [n for n in train if n.source == source], ns, T)
        for name, d in rows.items():
            f = ranking_figures(d, labels, diam, patients, secondary.get(name))
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
