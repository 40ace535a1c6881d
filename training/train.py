"""Train the FCDN on the LIDC development patches.

  OMP_NUM_THREADS=2 /usr/bin/python3 training/train.py --data ../shared/data/lidc --out training/runs/v1

Losses (paper eq. 3-16):
  per-pixel head: BCE(mask) + lambda * pixel MSE(sigmoid, mask); Adam (0.9, 0.999, 1e-8)
  with decoupled weight decay (AdamW) as the L2 term.
  hash heads (eq. 13-15, target codes made from the labels): each head's learned rows
  are fitted with BCE to a thermometer code of the diameter (bit j = diameter > the
  j-th training quantile), and each tap's class direction to benign/malignant (BCE,
  smoothed labels). After training, compose.py turns a share of each head's bits into
  class bits (class direction + a fixed random direction scaled on training data), so
  that Hamming distance reflects both class confidence and size instead of collapsing
  to one code per class. Unknown labels (indeterminate class, daco134's diameter in
  mm) are masked out.
Split: by patient_id, seeded (lidc.split_patients). Only training patients are used
to fit anything; validation numbers are computed once, on the final weights.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcdn import FCDN, BIT_LENGTHS  # noqa: E402
import lidc  # noqa: E402
import compose  # noqa: E402
from checkpoint import widths_from_args  # noqa: E402


# ---------------------------------------------------------------- target codes
class SizeTargets:
    """Thermometer target bits of the diameter: bit j = diameter > the j-th of k evenly
    spaced training quantiles, so that the Hamming distance between two targets counts
    the training nodules whose size lies between them."""

    def __init__(self, train_diameters):
        d = np.asarray([x for x in train_diameters if np.isfinite(x)])
        self.thresholds = {k: np.quantile(d, (np.arange(k) + 0.5) / k) for k in BIT_LENGTHS}

    def targets(self, k, diameter):
        """diameter [B] (nan = unknown) -> (target 0/1, weight) [B,k] tensors."""
        t = np.nan_to_num(diameter)[:, None] > self.thresholds[k][None]
        w = np.repeat(np.isfinite(diameter)[:, None], k, 1)
        return torch.from_numpy(t.astype(np.float32)), torch.from_numpy(w.astype(np.float32))


# ---------------------------------------------------------------- sampling
def training_slices(nodules, md_radius: int):
    """(nodule index, slice index) pairs that carry the nodule's labels: the slices near
    the centre (a peripheral slice of a large nodule looks like a small one)."""
    out = []
    for i, n in enumerate(nodules):
        r = md_radius if n.subset == "md882" else lidc.DACO_CONTEXT
        for s in range(max(0, n.centre - r), min(len(n.slices), n.centre + r + 1)):
            out.append((i, s))
    return out


def augment(img, mask, rng, segment_context_p: float, is_daco: bool):
    """Dihedral flips/rotations, a small shift, intensity jitter; daco134 slices are
    sometimes cut out by their mask, so that md882-style (segmented) inputs and
    inputs with lung context map to the same codes."""
    if is_daco and rng.random() < segment_context_p:
        img = img * mask
    k = rng.integers(4)
    img, mask = np.rot90(img, k), np.rot90(mask, k)
    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    dy, dx = rng.integers(-3, 4, 2)
    img, mask = np.roll(img, (dy, dx), (0, 1)), np.roll(mask, (dy, dx), (0, 1))
    img = np.clip(img * rng.uniform(0.9, 1.1) + rng.uniform(-0.03, 0.03) * (img > 0), 0, 1)
    return np.ascontiguousarray(img, np.float32), np.ascontiguousarray(mask, np.float32)


# ---------------------------------------------------------------- training
def step_loss(out, mask, label, diameter, targets: SizeTargets, args, model_heads=None):
    """Total loss of one batch: per-pixel BCE + lambda * pixel MSE (eq. 3-12), the size
    bits toward their thermometer targets and each tap's class logit (eq. 15)."""
    device = mask.device
    logits = out["mask_logits"]
    seg = F.binary_cross_entropy_with_logits(logits, mask) + \
        args.mse_lambda * F.mse_loss(torch.sigmoid(logits), mask)
    hl = 0.0
    for tap, per_k in out["codes"].items():
        for k, u in per_k.items():
            t, w = targets.targets(k, diameter)
            t, w = t.to(device), w.to(device)
            bce = F.binary_cross_entropy_with_logits(u, t, weight=w, reduction="sum")
            hl = hl + bce / w.sum().clamp(min=1)
    hl = hl / (len(out["codes"]) * len(BIT_LENGTHS))
    # smoothed labels keep the class logit a graded confidence rather than saturating
    y = torch.as_tensor(label).to(device)
    known = (y >= 0).float()
    ys = y.clamp(min=0).float() * (1 - args.label_smoothing) + args.label_smoothing / 2
    cl = 0.0
    for tap, s_ in out["class_logits"].items():
        if args.class_dropout > 0:
            # dropout on the pooled features seen by the class direction only: with ~450
            # training nodules the class direction otherwise leans on a few features
            head = model_heads[tap]
            s_ = head.cls(F.dropout(out["features"][tap], args.class_dropout))[:, 0]
        bce = F.binary_cross_entropy_with_logits(s_, ys, weight=known, reduction="sum")
        cl = cl + bce / known.sum().clamp(min=1)
    cl = cl / len(out["class_logits"])
    return seg + args.hash_weight * hl + args.class_weight * cl, seg, hl, cl


def train(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)
    t0 = time.time()
    nodules = lidc.load_nodules(args.data)
    train_n, val_n = lidc.split_patients(nodules, args.val_fraction, args.split_seed)
    print(f"loaded {len(nodules)} nodules in {time.time() - t0:.0f}s: "
          f"train {len(train_n)} ({len({n.patient for n in train_n})} patients), "
          f"validation {len(val_n)} ({len({n.patient for n in val_n})} patients)", flush=True)

    targets = SizeTargets([n.diameter_mm for n in train_n])
    pairs = training_slices(train_n, args.md_radius)
    labels = np.array([n.label for n in train_n])
    diam = np.array([n.diameter_mm for n in train_n])

    model = FCDN(widths=widths_from_args(args), mask_stats=args.mask_stats,
                 mask_stats_detach=not args.mask_stats_grad).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)
    steps_per_epoch = int(np.ceil(args.samples_per_epoch / args.batch))
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total,
                                                pct_start=0.15)
    # nodules, not slices, are the unit: weight each slice by 1 / its nodule's count
    counts = np.bincount([i for i, _ in pairs], minlength=len(train_n))
    p = np.array([1.0 / counts[i] for i, _ in pairs])
    p /= p.sum()
    history = []
    t_train = time.time()
    for epoch in range(args.epochs):
        model.train()
        sums = {"seg": 0.0, "size": 0.0, "class": 0.0}
        for step in range(steps_per_epoch):
            idx = rng.choice(len(pairs), args.batch, p=p)
            xs, ms = [], []
            for j in idx:
                ni, si = pairs[j]
                n = train_n[ni]
                x, m = augment(n.slices[si], n.masks[si], rng, args.segment_context_p,
                               n.subset == "daco134")
                xs.append(x)
                ms.append(m)
            x = torch.from_numpy(np.stack(xs)[:, None]).to(device)
            m = torch.from_numpy(np.stack(ms)[:, None]).to(device)
            ni = np.array([pairs[j][0] for j in idx])
            out = model(x)
            loss, seg, hl, cl = step_loss(out, m, labels[ni], diam[ni], targets, args, model.heads)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums["seg"] += float(seg)
            sums["size"] += float(hl)
            sums["class"] += float(cl)
        rec = {k: v / steps_per_epoch for k, v in sums.items()}
        rec["epoch"] = epoch + 1
        rec["seconds"] = round(time.time() - t_train, 1)
        history.append(rec)
        print(json.dumps(rec), flush=True)
    train_seconds = time.time() - t_train
    model.eval()
    return model, train_n, val_n, history, train_seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the LIDC folder (labels.csv, md882/, daco134/)")
    ap.add_argument("--out", required=True, help="output folder for fcdn.pt and metrics.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--samples-per-epoch", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--mse-lambda", type=float, default=1.0)
    ap.add_argument("--hash-weight", type=float, default=1.0)
    ap.add_argument("--class-weight", type=float, default=1.0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--class-dropout", type=float, default=0.0,
                    help="dropout on the pooled features for the class loss only")
    compose.add_arguments(ap)
    ap.add_argument("--plain", help="plain-conv widths of the 3 stages (default 16,32,64 = fcdn-v1)")
    ap.add_argument("--growth", help="dense-block growth rates (default 8,16,32)")
    ap.add_argument("--decoder", help="widths of the 6 up-sampling convs, the last also for "
                    "layers 24-25 (default 96,64,48,32,24,24)")
    ap.add_argument("--mask-stats", action="store_true",
                    help="feed statistics of the predicted mask (area, perimeter, intensity) "
                    "into every hash head")
    ap.add_argument("--mask-stats-grad", action="store_true",
                    help="let the hash losses' gradients flow into the mask through those statistics")
    ap.add_argument("--md-radius", type=int, default=2, help="md882 slices used: centre +- this")
    ap.add_argument("--segment-context-p", type=float, default=0.5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    model, train_n, val_n, history, secs = train(args)
    composition = compose.compose_codes(model, train_n, compose.fractions(args), args.tau,
                                        args.seed, args.device)
    card = {
        "name": os.path.basename(os.path.normpath(args.out)),
        "untrained": False,
        "seed": args.seed,
        "training": {
            "command": "OMP_NUM_THREADS=2 /usr/bin/python3 training/train.py " + " ".join(
                a if not a.startswith("/") else a for a in (argv or sys.argv[1:])),
            "args": vars(args),
            "data": "LIDC-IDRI development patches (md882 + daco134), ../shared/data/lidc; "
                    "LIDC-IDRI, TCIA, CC BY 3.0",
            "split": f"by patient_id, seed {args.split_seed}: {args.val_fraction:.0%} of each subset's "
                     f"patients to validation; train {len(train_n)} nodules / "
                     f"{len({n.patient for n in train_n})} patients, validation {len(val_n)} nodules / "
                     f"{len({n.patient for n in val_n})} patients",
            "seconds": round(secs, 1),
            "device": args.device,
            "torch": torch.__version__,
            "history": history[-3:],
        },
        "composition": composition,
        "metrics": None,
    }
    if not args.no_eval:
        from evaluate import fcdn_metrics
        card["metrics"] = fcdn_metrics(model, val_n, device=args.device)
        print(json.dumps(card["metrics"]["summary"], indent=1))
    card["architecture_options"] = model.arch
    torch.save({"state_dict": model.cpu().state_dict(), "bit_lengths": model.bit_lengths,
                "arch": model.arch, "card": card}, os.path.join(args.out, "fcdn.pt"))
    with open(os.path.join(args.out, "card.json"), "w") as f:
        json.dump(card, f, indent=1)
    print(f"trained in {secs:.0f}s; wrote {args.out}/fcdn.pt")


if __name__ == "__main__":
    main()
