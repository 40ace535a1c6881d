"""Compose each hash head's bits from its class direction and its size rows.

Called by train.py after training; also a command for trying other compositions of
one trained checkpoint on the validation patients without retraining:

  OMP_NUM_THREADS=2 /usr/bin/python3 training/compose.py --data ../shared/data/lidc \
      --checkpoint training/runs/v1/fcdn.pt --class-frac 0.25,1,0.25 --tau 0.5 [--save out.pt]

For a head with k bits and class share f: round(f*k) bits become class bits, row =
cls + r_j with r_j a seeded Gaussian direction scaled so that r_j . x has standard
deviation tau * std(cls . x) over the training slices; the other bits keep the learned
thermometer rows at evenly spread thresholds. With tau -> 0 every class bit equals
sign(class logit) (two codes per class: the collapse seen with a naive CSQ hash); a
moderate tau makes a bit "malignant" with a probability that grows with the logit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcdn import BIT_LENGTHS  # noqa: E402

TAPS = ("shallow", "middle", "deep")


def add_arguments(ap):
    ap.add_argument("--class-frac", default="0.75,1,0.75",
                    help="share of class bits at layers 4,17,25 (rest: size bits)")
    ap.add_argument("--tau", type=float, default=0.25,
                    help="class-bit noise, in units of the class logit's training std")


def fractions(args):
    f = [float(x) for x in str(args.class_frac).split(",")]
    return dict(zip(TAPS, f))


def training_features(model, nodules, device="cpu", batch=128):
    """Pooled features per tap for the centre slice (and +-1) of every training nodule."""
    imgs = [n.slices[s] for n in nodules for s in n.case_slices(1)]
    X = torch.from_numpy(np.stack(imgs)[:, None].astype(np.float32))
    feats = {t: [] for t in TAPS}
    model.eval()
    with torch.no_grad():
        for i in range(0, len(X), batch):
            out = model(X[i:i + batch].to(device))
            for t in TAPS:
                feats[t].append(out["features"][t].cpu())
    return {t: torch.cat(v) for t, v in feats.items()}


@torch.no_grad()
def compose_codes(model, train_nodules, class_fraction: dict, tau: float, seed: int,
                  device="cpu", feats=None):
    feats = feats if feats is not None else training_features(model, train_nodules, device)
    gen = torch.Generator().manual_seed(seed + 7919)
    record = {"class_fraction": class_fraction, "tau": tau, "seed": seed, "heads": {}}
    for tap in TAPS:
        head = model.heads[tap]
        x = feats[tap].to(torch.float32)
        s_std = float((x @ head.cls.weight.detach().cpu().t()).std())
        for k in BIT_LENGTHS:
            nc = int(round(class_fraction[tap] * k))
            ns = k - nc
            size_pos = sorted({int((i + 0.5) * k / ns) for i in range(ns)}) if ns else []
            mask = torch.ones(k, dtype=torch.bool)
            mask[size_pos] = False
            r = torch.randn(k, x.shape[1], generator=gen)
            r = r / (x @ r.t()).std(0).clamp(min=1e-8)[:, None] * tau * s_std
            r[~mask] = 0
            getattr(head, f"noise_{k}").copy_(r.to(getattr(head, f"noise_{k}").device))
            getattr(head, f"class_bits_{k}").copy_(mask.to(getattr(head, f"class_bits_{k}").device))
            record["heads"][f"{tap}/{k}"] = {"class_bits": int(mask.sum()), "size_bits": int((~mask).sum())}
        record["heads"][f"{tap}/class_logit_train_std"] = round(s_std, 4)
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--grid", action="store_true", help="try a small grid of compositions")
    ap.add_argument("--save", help="write the composed checkpoint here")
    ap.add_argument("--device", default="cpu")
    add_arguments(ap)
    args = ap.parse_args(argv)
    import lidc
    from checkpoint import load_checkpoint
    from evaluate import fcdn_metrics
    model, ckpt = load_checkpoint(args.checkpoint)
    model.to(args.device)
    targs = ckpt["card"]["training"]["args"]
    nodules = lidc.load_nodules(args.data)
    train_n, val_n = lidc.split_patients(nodules, targs["val_fraction"], targs["split_seed"])
    feats = training_features(model, train_n, args.device)
    grid = [(fractions(args), args.tau)]
    if args.grid:
        grid = [(dict(zip(TAPS, f)), t) for f in ((0.5, 1, 0.5), (0.75, 1, 0.75), (1, 1, 1))
                for t in (0.0, 0.25, 0.5, 1.0, 1.5)]
    for frac, tau in grid:
        rec = compose_codes(model, train_n, frac, tau, targs["seed"], args.device, feats=feats)
        m = fcdn_metrics(model, val_n, device=args.device)
        j = m["rows"]["joint"][64]
        print(json.dumps({"class_fraction": list(frac.values()), "tau": tau,
                          "joint64": {k: round(v, 4) for k, v in j.items()},
                          "map_joint": m["summary"]["map_by_bits"]["joint"],
                          "distinct": m["distinct_codes_64"]["centre_slices_of_cases"]}), flush=True)
        if args.save and not args.grid:
            ckpt["state_dict"] = model.cpu().state_dict()
            ckpt["card"]["composition"] = rec
            ckpt["card"]["metrics"] = m
            torch.save(ckpt, args.save)


if __name__ == "__main__":
    main()
