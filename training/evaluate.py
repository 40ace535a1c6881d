"""Table 1 of the paper on our validation patients (issue 3 protocol).

  OMP_NUM_THREADS=2 /usr/bin/python3 training/evaluate.py --data ../shared/data/lidc \
      --model models/fcdn-v1.onnx [--checkpoint training/runs/v1/fcdn.pt] \
      [--figures docs/figures] [--markdown docs/evaluation.md] [--dump-codes codes.json]

The model is the exported .onnx with its card; the weights are read from the torch
checkpoint named in the card (or --checkpoint), because every code length (24-64) and
the pooled features for the LSH/SH/ITQ-on-features rows need the torch graph. The
64-bit codes are checked against onnxruntime in training/parity_fixture.py, not here.

Protocol: cases = validation nodules with a benign/malignant label, up to 3 central
slices each; gallery = other patients' cases; relevant = same class; ties broken at
random with a fixed seed (Joint: by DM first, as the service does).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcdn import BIT_LENGTHS  # noqa: E402
import retrieval as R  # noqa: E402

TAP_NAMES = {"shallow": "layer 4", "middle": "layer 17", "deep": "layer 25"}


def eval_cases(nodules):
    return [n for n in nodules if n.label >= 0]


def encode_cases(model, cases, device="cpu", batch=128):
    """Per-slice pre-sign values and pooled features for each case's central slices."""
    imgs, owner, centre_rows = [], [], []
    for ci, n in enumerate(cases):
        for s in n.case_slices(1):
            if s == n.centre:
                centre_rows.append(len(owner))
            imgs.append(n.slices[s])
            owner.append(ci)
    X = torch.from_numpy(np.stack(imgs)[:, None].astype(np.float32))
    codes = {t: {k: [] for k in BIT_LENGTHS} for t in TAP_NAMES}
    feats = {t: [] for t in TAP_NAMES}
    logits = {t: [] for t in TAP_NAMES}
    model.eval()
    with torch.no_grad():
        for i in range(0, len(X), batch):
            out = model(X[i:i + batch].to(device))
            for t in TAP_NAMES:
                feats[t].append(out["features"][t].cpu().numpy())
                logits[t].append(out["class_logits"][t].cpu().numpy())
                for k in BIT_LENGTHS:
                    codes[t][k].append(out["codes"][t][k].cpu().numpy())
    codes = {t: {k: np.concatenate(v) for k, v in d.items()} for t, d in codes.items()}
    feats = {t: np.concatenate(v) for t, v in feats.items()}
    logits = {t: np.concatenate(v) for t, v in logits.items()}
    return {"codes": codes, "features": feats, "class_logits": logits, "owner": np.array(owner),
            "centre_rows": np.array(centre_rows), "images": X[:, 0].numpy()}


def _summ(res):
    return {k: res[k] for k in ("map", "p@10", "diameter_gap_mm")}


def fcdn_metrics(model, val_nodules, device="cpu", seed=0, with_pr=False):
    """FCDN rows (Joint and single layers) at every code length, plus distinct codes."""
    cases = eval_cases(val_nodules)
    enc = encode_cases(model, cases, device)
    labels = [c.label for c in cases]
    patients = [c.patient for c in cases]
    diam = np.array([c.diameter_mm for c in cases])
    rows, pr = {}, {}
    for k in BIT_LENGTHS:
        bits = {t: enc["codes"][t][k] > 0 for t in TAP_NAMES}
        D = R.joint_distances(bits, enc["owner"], enc["centre_rows"], len(cases))
        for name in ("joint", "shallow", "middle", "deep"):
            secondary = D["middle"] if name == "joint" else None
            order = R.rank_gallery(D[name], patients, seed, secondary)
            res = R.evaluate_ranking(order, labels, diam)
            rows.setdefault(name, {})[k] = _summ(res)
            if k == 64:
                pr[name] = res
    distinct = {t: int(len({r.tobytes() for r in (enc["codes"][t][64][enc["centre_rows"]] > 0)}))
                for t in TAP_NAMES}
    distinct_slices = {t: int(len({r.tobytes() for r in (enc["codes"][t][64] > 0)})) for t in TAP_NAMES}
    # how well each tap's class direction separates the classes (centre slices)
    auc = {}
    for t in TAP_NAMES:
        sc = enc["class_logits"][t][enc["centre_rows"]]
        lab = np.array(labels)
        pos, neg = sc[lab == 1], sc[lab == 0]
        auc[t] = round(float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()), 4)
    out = {
        "class_logit_auc": auc,
        "protocol": "validation patients only; cases = nodules with benign/malignant label, up to 3 "
                    "central slices; gallery = other patients' cases; relevance = same class; "
                    "MAP over all ranks; ties by DM (Joint) then seeded random",
        "cases": len(cases), "benign": int(sum(1 for c in cases if c.label == 0)),
        "malignant": int(sum(1 for c in cases if c.label == 1)),
        "rows": rows,
        "distinct_codes_64": {"centre_slices_of_cases": distinct, "all_case_slices": distinct_slices,
                              "cases": len(cases), "slices": int(len(enc["owner"]))},
        "summary": {"joint_64": rows["joint"][64],
                    "map_by_bits": {n: {k: round(rows[n][k]["map"], 4) for k in BIT_LENGTHS}
                                    for n in rows},
                    "distinct_codes_64": distinct, "class_logit_auc": auc},
    }
    if with_pr:
        out["_pr"] = pr
        out["_enc"] = enc
        out["_cases"] = cases
    return out


def baseline_rows(train_feats, val_feats, enc, cases, seed=0):
    """LSH/SH/ITQ fitted on training slices, applied to validation slices; a case's
    distance is the min over slice pairs, like the FCDN's single layers."""
    labels = [c.label for c in cases]
    patients = [c.patient for c in cases]
    diam = np.array([c.diameter_mm for c in cases])
    rows, pr = {}, {}
    for fname in train_feats:
        for bname, cls in R.BASELINES.items():
            name = f"{bname} ({fname})"
            for k in BIT_LENGTHS:
                h = cls(k, seed=seed).fit(train_feats[fname])
                b = h.encode(val_feats[fname])
                D = R.case_min_distance(b, enc["owner"], len(cases))
                res = R.evaluate_ranking(R.rank_gallery(D, patients, seed), labels, diam)
                rows.setdefault(name, {})[k] = _summ(res)
                if k == 64:
                    pr[name] = res
    return rows, pr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True, help=".onnx with its card beside it")
    ap.add_argument("--checkpoint", help="torch weights (default: training.checkpoint in the card)")
    ap.add_argument("--figures", help="folder for pr-64.png and query-top5.png")
    ap.add_argument("--markdown", help="write the tables to this markdown file")
    ap.add_argument("--json", help="write all numbers to this JSON file")
    ap.add_argument("--dump-codes", help="write validation cases' 64-bit codes + labels here")
    ap.add_argument("--update-card", action="store_true",
                    help="also record the baseline rows in the card's metrics (sha256 unchanged)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import lidc
    from checkpoint import load_checkpoint
    card = json.load(open(os.path.splitext(args.model)[0] + ".json"))
    ckpt_path = args.checkpoint or card.get("training", {}).get("checkpoint")
    model, ckpt = load_checkpoint(ckpt_path)
    targs = ckpt["card"]["training"]["args"]
    t0 = time.time()
    nodules = lidc.load_nodules(args.data)
    train_n, val_n = lidc.split_patients(nodules, targs["val_fraction"], targs["split_seed"])
    m = fcdn_metrics(model, val_n, seed=args.seed, with_pr=True)
    enc, cases, pr = m.pop("_enc"), m.pop("_cases"), m.pop("_pr")

    # baselines: raw pixels and the FCDN's pooled tap features (the hash heads' input)
    tr_cases = eval_cases(train_n)
    tr_enc = encode_cases(model, tr_cases)
    train_feats = {"raw pixels": tr_enc["images"].reshape(len(tr_enc["images"]), -1),
                   "FCDN pooled features": np.concatenate([tr_enc["features"][t] for t in TAP_NAMES], 1)}
    val_feats = {"raw pixels": enc["images"].reshape(len(enc["images"]), -1),
                 "FCDN pooled features": np.concatenate([enc["features"][t] for t in TAP_NAMES], 1)}
    brows, bpr = baseline_rows(train_feats, val_feats, enc, cases, args.seed)
    pr.update(bpr)
    m["baselines"] = brows
    m["seconds"] = round(time.time() - t0, 1)

    # reference: random ranking
    rnd = R.evaluate_ranking(R.rank_gallery(np.zeros((len(cases),) * 2), [c.patient for c in cases],
                                            args.seed), [c.label for c in cases],
                             np.array([c.diameter_mm for c in cases]))
    m["random"] = _summ(rnd)
    print(json.dumps({"fcdn": m["summary"], "random": m["random"],
                      "baselines_map64": {k: round(v[64]["map"], 4) for k, v in brows.items()}},
                     indent=1))
    if args.update_card:
        card_path = os.path.splitext(args.model)[0] + ".json"
        if not card.get("metrics"):
            card["metrics"] = {}
        card["metrics"]["baselines"] = brows
        card["metrics"]["random"] = m["random"]
        with open(card_path, "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(m, f, indent=1)
    if args.dump_codes:
        dump = []
        for ci, c in enumerate(cases):
            rows_ = np.nonzero(enc["owner"] == ci)[0]
            sl = c.case_slices(1)
            dump.append({
                "case": c.key, "patient": c.patient, "label": ["benign", "malignant"][c.label],
                "diameter_mm": None if not np.isfinite(c.diameter_mm) else c.diameter_mm,
                "slices": [{"offset": int(s - c.centre),
                            **{tap: "".join("1" if v > 0 else "0" for v in enc["codes"][tap][64][r])
                               for tap in TAP_NAMES}} for s, r in zip(sl, rows_)]})
        with open(args.dump_codes, "w") as f:
            json.dump({"model": os.path.basename(args.model), "sha256": card.get("sha256"),
                       "cases": dump}, f)
    if args.figures:
        import figures
        figures.pr_curves(pr, os.path.join(args.figures, "pr-64.png"))
        figures.query_top5(enc, cases, os.path.join(args.figures, "query-top5.png"), args.seed)
    if args.markdown:
        import report
        report.write(args.markdown, m, card, argv or sys.argv[1:])


if __name__ == "__main__":
    main()
