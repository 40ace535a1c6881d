"""Validation on lidc-hu in Python: the protocol of `npm run eval`'s DICOM mode, per source.

  OMP_NUM_THREADS=2 /usr/bin/python3 training/evaluate_hu.py --data ../shared/data/lidc-hu \
      --model models/fcdn-v3.pt [--json out.json] [--markdown docs/evaluation-hu.md]

Cases: validation patients' nodules with a benign/malignant label, the centre slice (largest
mask area) and one neighbour each side where the source has them (training/lidc_hu.py), patches
exactly as the service computes them. Gallery of a query: other patients' nodules of the same
source; relevant = same class. Joint = DL + DM + DD over the slice window (N = 1), ties by DM
then a seeded random order. Also: single layers, LSH / SH / ITQ on raw pixels and on the FCDN's
pooled tap features at 24/32/48/64 bits (fitted on training patients' slices), distinct centre
codes, the number of cases tied with the 10th hit, and top hits at Joint 0 of the other class.
Intervals: bootstrap over query patients (1000 rounds, seed 0), 95%.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lidc_hu  # noqa: E402
from retrieval import ITQ, LSH, SH, joint_distances, rank_gallery, slice_hamming  # noqa: E402

TAPS = ("shallow", "middle", "deep")


def case_tensors(nodules, radius=1):
    pats, owner, centre_rows = [], [], []
    for i, n in enumerate(nodules):
        p, offs = lidc_hu.case_patches(n, radius)
        for j, o in enumerate(offs):
            if o == 0:
                centre_rows.append(len(pats))
            pats.append(p[j])
            owner.append(i)
    return np.stack(pats)[:, None], np.asarray(owner), np.asarray(centre_rows)


@torch.no_grad()
def encode(model, x, device="cpu", batch=256):
    model.eval()
    codes = {t: {} for t in TAPS}
    feats = {t: [] for t in TAPS}
    for s in range(0, len(x), batch):
        out = model(torch.from_numpy(x[s:s + batch]).to(device))
        for t in TAPS:
            for k, u in out["codes"][t].items():
                codes[t].setdefault(k, []).append((u > 0).cpu().numpy())
            feats[t].append(out["features"][t].cpu().numpy())
    return ({t: {k: np.concatenate(v) for k, v in codes[t].items()} for t in TAPS},
            {t: np.concatenate(v) for t, v in feats.items()})


def ranking_figures(dist, labels, diam, patients, secondary=None, seed=0, top=10):
    """Per query: AP, P@10, top-10 diameter gap; plus ties at the 10th hit and top-1 Joint-0 misses."""
    order = rank_gallery(dist, patients, seed=seed, secondary=secondary)
    ap, p10, gap, ties, zero_wrong = [], [], [], [], []
    for q, g in enumerate(order):
        rel = labels[g] == labels[q]
        if rel.sum() == 0:
            ap.append(np.nan); p10.append(np.nan); gap.append(np.nan); ties.append(np.nan); zero_wrong.append(np.nan)
            continue
        hits = np.cumsum(rel)
        ranks = np.arange(1, len(g) + 1)
        ap.append(float((hits[rel] / ranks[rel]).mean()))
        p10.append(float(rel[:top].mean()))
        gap.append(float(np.abs(diam[g[:top]] - diam[q]).mean()))
        d = dist[q, g]
        ties.append(float((d == d[min(top, len(d)) - 1]).sum()))  # the 10th hit included: 1 = no tie
        zero_wrong.append(float(d[0] == 0 and not rel[0]))
    return {"ap": np.array(ap), "p10": np.array(p10), "gap": np.array(gap), "ties": np.array(ties),
            "zero_wrong": np.array(zero_wrong), "order": order}


def bootstrap(values, patients, rounds=1000, seed=0):
    """Mean and 95% interval, resampling query patients with replacement."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    values, patients = values[ok], np.asarray(patients)[ok]
    ups = sorted(set(patients))
    by = {p: values[patients == p] for p in ups}
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(rounds):
        pick = rng.integers(0, len(ups), len(ups))
        v = np.concatenate([by[ups[i]] for i in pick])
        means.append(v.mean())
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def source_metrics(codes, feats, owner, centre_rows, nodules, bits=64, seed=0):
    labels = np.array([n.label for n in nodules])
    diam = np.array([n.diameter_mm for n in nodules])
    patients = np.array([n.patient for n in nodules])
    C = len(nodules)
    d = joint_distances({t: codes[t][bits] for t in TAPS}, owner, centre_rows, C)
    out = {}
    for name, secondary in (("joint", d["middle"]), ("shallow", None), ("middle", None), ("deep", None)):
        f = ranking_figures(d[name], labels, diam, patients, secondary, seed)
        out[name] = {k: bootstrap(f[k], patients) for k in ("ap", "p10", "gap")}
        out[name]["ties_at_10"] = float(np.nanmean(f["ties"]))
        out[name]["top1_joint0_other_class"] = float(np.nanmean(f["zero_wrong"]))
    out["distinct_centre_codes"] = {t: int(len({c.tobytes() for c in codes[t][bits][centre_rows]})) for t in TAPS}
    out["cases"] = C
    out["patients"] = int(len(set(patients)))
    return out


def quick_metrics(model, val_nodules, device="cpu"):
    """Joint 64-bit figures per source (no baselines): for training logs and the card."""
    res = {}
    for source in ("ctslicing", "gdro"):
        ns = [n for n in val_nodules if n.source == source and n.label >= 0]
        x, owner, centre_rows = case_tensors(ns)
        codes, feats = encode(model, x, device)
        m = source_metrics(codes, feats, owner, centre_rows, ns)
        res[source] = {"map": round(m["joint"]["ap"][0], 4), "p10": round(m["joint"]["p10"][0], 4),
                       "gap": round(m["joint"]["gap"][0], 3), "ties": round(m["joint"]["ties_at_10"], 2),
                       "zero_wrong": round(m["joint"]["top1_joint0_other_class"], 4),
                       "distinct": m["distinct_centre_codes"], "cases": m["cases"]}
    return res


LUNG_WINDOW = (-1350.0, 150.0)  # display: width 1500, level -600
ATTRIBUTION = "Images: LIDC-IDRI, TCIA, CC BY 3.0"
BASELINE_BITS = (24, 32, 48, 64)


def _fmt(ci, digits=3):
    m, lo, hi = ci
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def baseline_rows(train_x, train_f, x, feats, owner, centre_rows, ns, seed=0):
    """MAP of LSH / SH / ITQ (raw pixels, and FCDN pooled tap features concatenated) at each
    length, with min over the window's slice pairs, as the Joint's single layers use."""
    from retrieval import case_min_distance
    labels = np.array([n.label for n in ns])
    diam = np.array([n.diameter_mm for n in ns])
    patients = np.array([n.patient for n in ns])
    rows = {}
    for space, (tx, vx) in {"raw pixels": (train_x, x.reshape(len(x), -1)),
                            "FCDN pooled features": (train_f, feats)}.items():
        for name, cls in (("LSH", LSH), ("SH", SH), ("ITQ", ITQ)):
            row = {}
            for bits in BASELINE_BITS:
                h = cls(bits, seed=seed).fit(tx)
                d = case_min_distance(h.encode(vx), owner, len(ns))
                f = ranking_figures(d, labels, diam, patients, None, seed)
                row[bits] = {"ap": float(np.nanmean(f["ap"])), "p10": float(np.nanmean(f["p10"])),
                             "gap": float(np.nanmean(f["gap"]))}
            rows[f"{name} ({space})"] = row
    return rows


def reference_rows(ns, seed=0):
    labels = np.array([n.label for n in ns])
    diam = np.array([n.diameter_mm for n in ns])
    patients = np.array([n.patient for n in ns])
    rng = np.random.default_rng(seed)
    out = {}
    for name, dist in (("random ranking", rng.random((len(ns), len(ns)))),
                       ("true diameter alone, |d_q - d_g| (oracle)", np.abs(diam[:, None] - diam[None, :]))):
        f = ranking_figures(dist, labels, diam, patients, None, seed)
        out[name] = {"ap": float(np.nanmean(f["ap"])), "p10": float(np.nanmean(f["p10"])),
                     "gap": float(np.nanmean(f["gap"]))}
    return out


def full_report(model, data, bits_eval=BASELINE_BITS, figures=None, name="model"):
    nodules = lidc_hu.load_hu_nodules(data)
    train, val = lidc_hu.split(nodules)
    report = {}
    for source in ("ctslicing", "gdro"):
        ns = [n for n in val if n.source == source and n.label >= 0]
        x, owner, centre_rows = case_tensors(ns)
        codes, feats = encode(model, x)
        tr = [n for n in train if n.source == source and n.label >= 0]
        tx, _, _ = case_tensors(tr)
        _, tf = encode(model, tx)
        feat_all = np.concatenate([feats[t] for t in TAPS], 1)
        tfeat_all = np.concatenate([tf[t] for t in TAPS], 1)
        per_bits = {b: source_metrics(codes, feats, owner, centre_rows, ns, bits=b) for b in bits_eval}
        report[source] = {
            "cases": len(ns), "patients": len({n.patient for n in ns}),
            "benign": int(sum(n.label == 0 for n in ns)), "malignant": int(sum(n.label == 1 for n in ns)),
            "fcdn": {b: m for b, m in per_bits.items()},
            "baselines": baseline_rows(tx.reshape(len(tx), -1), tfeat_all, x, feat_all, owner, centre_rows, ns),
            "references": reference_rows(ns),
        }
        if figures:
            _figures(codes, x, owner, centre_rows, ns, figures, f"{name}-{source}")
    return report


def _figures(codes, x, owner, centre_rows, ns, folder, stem):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from retrieval import evaluate_ranking
    os.makedirs(folder, exist_ok=True)
    labels = np.array([n.label for n in ns])
    diam = np.array([n.diameter_mm for n in ns])
    patients = np.array([n.patient for n in ns])
    D = joint_distances({t: codes[t][64] for t in TAPS}, owner, centre_rows, len(ns))
    fig, ax = plt.subplots(figsize=(6.5, 5), dpi=110)
    for key, title in (("joint", "Joint"), ("shallow", "layer 4"), ("middle", "layer 17"), ("deep", "layer 25")):
        order = rank_gallery(D[key], patients, 0, D["middle"] if key == "joint" else None)
        r = evaluate_ranking(order, labels, diam)
        ax.plot(r["pr_recall"], r["pr_precision"], lw=2.5 if key == "joint" else 1.2,
                label=f"{title} (MAP {r['map']:.3f})")
    ax.set_xlabel("recall"); ax.set_ylabel("precision (interpolated, mean over queries)")
    ax.set_title(f"Precision-recall at 64 bits, {stem}, validation patients", fontsize=9)
    ax.set_xlim(0, 1); ax.set_ylim(0, 1.02); ax.grid(alpha=0.3); ax.legend(fontsize=8, loc="lower left")
    fig.text(0.99, 0.005, ATTRIBUTION, ha="right", fontsize=7)
    fig.tight_layout(); fig.savefig(os.path.join(folder, f"{stem}-pr-64.png")); plt.close(fig)

    # one malignant query of middling size and its top 5 by Joint and by each layer, lung window
    cand = [i for i, n in enumerate(ns) if n.label == 1 and 8 <= n.diameter_mm <= 20]
    q = cand[len(cand) // 2] if cand else 0
    hu = x[:, 0] * (lidc_hu.WINDOW[1] - lidc_hu.WINDOW[0]) + lidc_hu.WINDOW[0]
    rows = (("Joint", "joint"), ("layer 4", "shallow"), ("layer 17", "middle"), ("layer 25", "deep"))
    fig, axes = plt.subplots(len(rows), 6, figsize=(9, 6.8), dpi=110)
    lab = ["benign", "malignant"]

    def show(ax, ci, title, colour="black"):
        ax.imshow(hu[centre_rows[ci]], cmap="gray", vmin=LUNG_WINDOW[0], vmax=LUNG_WINDOW[1])
        ax.set_xticks([]); ax.set_yticks([]); ax.set_title(title, fontsize=7, color=colour)

    for r, (title, key) in enumerate(rows):
        order = rank_gallery(D[key], patients, 0, D["middle"] if key == "joint" else None)[q]
        show(axes[r, 0], q, f"query\n{lab[ns[q].label]} {ns[q].diameter_mm:.1f} mm")
        axes[r, 0].set_ylabel(title, fontsize=9)
        for j, ci in enumerate(order[:5]):
            c = ns[ci]
            show(axes[r, j + 1], ci, f"#{j + 1} {lab[c.label]} {c.diameter_mm:.1f} mm\n"
                 f"dist {D[key][q, ci]:.0f}" + (f" (DL {D['shallow'][q, ci]:.0f} DM {D['middle'][q, ci]:.0f} "
                                                 f"DD {D['deep'][q, ci]:.0f})" if key == "joint" else ""),
                 "green" if c.label == ns[q].label else "red")
    fig.suptitle(f"{stem}: a validation query and its top 5 at 64 bits (lung window W1500 L-600)", fontsize=9)
    fig.text(0.99, 0.005, ATTRIBUTION, ha="right", fontsize=7)
    fig.tight_layout(); fig.savefig(os.path.join(folder, f"{stem}-query-top5.png")); plt.close(fig)


def markdown(report, name, command):
    out = [f"Model `{name}`; command:", "", f"    {command}", ""]
    for source, r in report.items():
        out += [f"### {source}: {r['cases']} validation nodules ({r['benign']} benign, {r['malignant']} malignant) "
                f"of {r['patients']} patients", "",
                "Table 1, MAP (%) over all ranks (gallery: other patients of the same source):", "",
                "| method | 24 bit | 32 bit | 48 bit | 64 bit |", "|---|---|---|---|---|"]
        for key, title in (("joint", "FCDN Joint (DL+DM+DD)"), ("shallow", "FCDN layer 4"),
                           ("middle", "FCDN layer 17"), ("deep", "FCDN layer 25")):
            out.append(f"| {title} | " + " | ".join(f"{100 * r['fcdn'][b][key]['ap'][0]:.1f}" for b in BASELINE_BITS) + " |")
        for bname, row in r["baselines"].items():
            out.append(f"| {bname} | " + " | ".join(f"{100 * row[b]['ap']:.1f}" for b in BASELINE_BITS) + " |")
        out += ["", "At 64 bits, with bootstrap 95% intervals (query patients resampled):", "",
                "| ranking | MAP | P@10 | top-10 diameter gap (mm) | cases at the 10th hit's distance (1 = no tie) | top hit at distance 0 and of the other class |",
                "|---|---|---|---|---|---|"]
        m64 = r["fcdn"][64]
        for key, title in (("joint", "FCDN Joint"), ("shallow", "layer 4"), ("middle", "layer 17"), ("deep", "layer 25")):
            m = m64[key]
            out.append(f"| {title} | {_fmt(m['ap'])} | {_fmt(m['p10'])} | {_fmt(m['gap'], 2)} | "
                       f"{m['ties_at_10']:.2f} | {100 * m['top1_joint0_other_class']:.1f}% |")
        for rname, m in r["references"].items():
            out.append(f"| {rname} | {m['ap']:.3f} | {m['p10']:.3f} | {m['gap']:.2f} | | |")
        d = m64["distinct_centre_codes"]
        out += ["", f"Distinct 64-bit centre codes: layer 4 {d['shallow']}, layer 17 {d['middle']}, "
                f"layer 25 {d['deep']} of {r['cases']} ({100 * min(d.values()) / r['cases']:.0f}% at the lowest).", ""]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True, help="a torch checkpoint (.pt) of train_hu.py / export.py")
    ap.add_argument("--quick", action="store_true", help="Joint at 64 bits only, no baselines")
    ap.add_argument("--json")
    ap.add_argument("--markdown", help="write the tables here")
    ap.add_argument("--figures", help="folder for the PR curve and the query figure")
    args = ap.parse_args(argv)
    from checkpoint import load_checkpoint
    model, ckpt = load_checkpoint(args.model)
    if args.quick:
        _, val = lidc_hu.split(lidc_hu.load_hu_nodules(args.data))
        print(json.dumps(quick_metrics(model, val), indent=1))
        return
    name = (ckpt.get("card") or {}).get("name", os.path.basename(args.model))
    report = full_report(model, args.data, figures=args.figures, name=name)
    command = "OMP_NUM_THREADS=2 /usr/bin/python3 training/evaluate_hu.py " + " ".join(argv or sys.argv[1:])
    md = markdown(report, name, command)
    print(md)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(md + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=float)


if __name__ == "__main__":
    main()
