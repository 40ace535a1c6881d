"""Train the FCDN on lidc-hu (HU crops with lung context) with graded-similarity hash codes.

  OMP_NUM_THREADS=1 /usr/bin/python3 training/train_hu.py --data ../shared/data/lidc-hu --out training/runs/v3

(the defaults are fcdn-v3's options; docs/model.md has the exact command it was trained with).

What the network sees is exactly the product's input (training/lidc_hu.py: HU, pixel spacing,
64x64 patch at 0.75 mm/pixel around the mask centroid, window [-1200, 600]), augmented for what
varies between CT series: rotation and flips, pixel spacing (+-15%), the centre point (+-2 mm),
HU noise and offset, slice thickness (a slice averaged with a neighbour); and, for the 8-bit PNG
sources the service also accepts, other renderings of the same patch: another grey mapping
(--render-p) and the nodule alone on black, as md882's segmented crops are (--segment-p).

Losses, per batch:
- segmentation (the paper's eq. 3-12): BCE + lambda * MSE of the per-pixel map against the mask;
- hashing, per tap (layers 4, 17, 25) and code length (24/32/48/64): the codes' relaxed inner
  product <tanh(u_i), tanh(u_j)> / k is regressed onto a graded similarity s_ij in [-1, 1] built
  from what radiologists rate (malignancy as the mean of the available readers, the diameter,
  texture, spiculation, margin, lobulation, sphericity, calcification): Hamming distance then
  grows with dissimilarity instead of splitting nodules into two class codes. Plus
  quantization (|tanh u| near 1), bit balance (each bit's mean near 0) and decorrelation
  (bits' covariance near the identity), so that codes spread over the space.
The hash heads' rows are all learned rows (`HashHead.proj`; no class/noise composition), so the
export and the ONNX interface are unchanged (training/export.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcdn import FCDN, V2_WIDTHS, count_parameters  # noqa: E402
import lidc_hu  # noqa: E402

CANVAS = 96  # training canvases: a 96x96 product grid, augmented then cut to 64x64

ATTRIBUTE_RANGES = {"texture": 4.0, "spiculation": 4.0, "margin": 4.0, "lobulation": 4.0,
                    "sphericity": 4.0, "calcification": 5.0}


def mask_canvas(n: lidc_hu.HuNodule, s: int):
    step_x, step_y = lidc_hu.MM_PER_PIXEL / n.spacing[1], lidc_hu.MM_PER_PIXEL / n.spacing[0]
    half = (CANVAS - 1) / 2
    wx, _ = lidc_hu._grid_taps(CANVAS, n.centre_xy[0] - half * step_x, step_x, n.masks.shape[2])
    wy, _ = lidc_hu._grid_taps(CANVAS, n.centre_xy[1] - half * step_y, step_y, n.masks.shape[1])
    return (wy @ (n.masks[s].astype(np.float64) @ wx.T)).astype(np.float32)


class Bank:
    """Everything training samples from, in memory: canvases and per-nodule targets."""

    def __init__(self, nodules):
        self.nodules = nodules
        self.img, self.msk, self.owner, self.offset = [], [], [], []
        for i, n in enumerate(nodules):
            for s in range(len(n.slices)):
                if abs(s - n.centre) > 1:
                    continue
                self.img.append(lidc_hu.product_patch(n.slices[s], n.spacing, n.centre_xy, size=CANVAS,
                                                      quantize=False).astype(np.float32))
                self.msk.append(mask_canvas(n, s))
                self.owner.append(i)
                self.offset.append(s - n.centre)
        self.img = torch.from_numpy(np.stack(self.img))
        self.msk = torch.from_numpy(np.stack(self.msk))
        self.owner = np.asarray(self.owner)
        self.offset = np.asarray(self.offset)
        self.slices_of = [np.nonzero(self.owner == i)[0] for i in range(len(nodules))]
        self.mal = torch.tensor([n.malignancy for n in nodules], dtype=torch.float32)
        self.label = torch.tensor([n.label for n in nodules], dtype=torch.float32)  # -1: indeterminate
        self.logd = torch.tensor([math.log(max(n.diameter_mm, 2.0)) for n in nodules], dtype=torch.float32)
        self.attr = torch.tensor([[n.ratings.get(k, 0.0) / r for k, r in ATTRIBUTE_RANGES.items()]
                                  for n in nodules], dtype=torch.float32)
        self.attr_known = torch.tensor([[1.0 if n.ratings.get(k, 0.0) > 0 else 0.0 for k in ATTRIBUTE_RANGES]
                                        for n in nodules], dtype=torch.float32)


def similarity(bank: Bank, idx: torch.Tensor, args) -> torch.Tensor:
    """Graded similarity s_ij in [-1, 1] of the nodules idx (see the module doc)."""
    m, d, a, k = bank.mal[idx], bank.logd[idx], bank.attr[idx], bank.attr_known[idx]
    dm = (m[:, None] - m[None, :]).abs() / 2.0                       # 2 rating steps: fully apart
    dd = (d[:, None] - d[None, :]).abs() / math.log(args.diameter_ratio)
    both = k[:, None, :] * k[None, :, :]
    da = ((a[:, None, :] - a[None, :, :]).abs() * both).sum(-1) / both.sum(-1).clamp(min=1)
    dist = args.w_malignancy * dm + args.w_diameter * dd + args.w_attributes * da
    if args.w_class > 0:
        # The consensus class itself (what MAP's relevance is), where both nodules have one.
        c = bank.label[idx]
        known = (c[:, None] >= 0) & (c[None, :] >= 0)
        dist = dist + args.w_class * ((c[:, None] != c[None, :]) & known).float()
    return 1.0 - 2.0 * dist.clamp(max=1.0)


def augment(bank: Bank, rows: np.ndarray, rng: np.random.Generator, train: bool, args=None):
    """Canvases rows -> patches [B,1,64,64] in [0,1] and masks [B,1,64,64]."""
    img = bank.img[rows].clone()
    msk = bank.msk[rows]
    B = len(rows)
    if train:
        # slice thickness: average with a neighbour of the same nodule now and then
        for b in range(B):
            if rng.random() < 0.2:
                sl = bank.slices_of[bank.owner[rows[b]]]
                other = sl[np.abs(bank.offset[sl] - bank.offset[rows[b]]) == 1]
                if len(other):
                    img[b] = 0.5 * (img[b] + bank.img[rng.choice(other)])
        ang = torch.from_numpy(rng.uniform(0, 2 * math.pi, B)).float()
        scale = torch.from_numpy(rng.uniform(0.85, 1.15, B)).float()
        flip = torch.from_numpy(np.where(rng.random(B) < 0.5, -1.0, 1.0)).float()
        shift = torch.from_numpy(rng.uniform(-2.0, 2.0, (B, 2)) / lidc_hu.MM_PER_PIXEL).float()
    else:
        ang = torch.zeros(B)
        scale = torch.ones(B)
        flip = torch.ones(B)
        shift = torch.zeros(B, 2)
    # affine_grid maps output [-1,1] (64 px) to input [-1,1] (CANVAS px): identity crop = 64/CANVAS
    r = (lidc_hu.SIZE / CANVAS) * scale
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = r * torch.cos(ang) * flip
    theta[:, 0, 1] = -r * torch.sin(ang)
    theta[:, 1, 0] = r * torch.sin(ang) * flip
    theta[:, 1, 1] = r * torch.cos(ang)
    theta[:, :, 2] = shift * 2.0 / CANVAS
    grid = F.affine_grid(theta, (B, 1, lidc_hu.SIZE, lidc_hu.SIZE), align_corners=False)
    x = F.grid_sample(img[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    m = F.grid_sample(msk[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if train:
        noise = torch.from_numpy(rng.uniform(0, 30, B)).float()[:, None, None, None]
        x = x + noise * torch.randn_like(x) + torch.from_numpy(rng.uniform(-25, 25, B)).float()[:, None, None, None]
    x = torch.round(x)
    lo = torch.full((B, 1, 1, 1), lidc_hu.WINDOW[0])
    hi = torch.full((B, 1, 1, 1), lidc_hu.WINDOW[1])
    m = (m > 0.5).float()
    if train and args is not None and args.render_p > 0:
        # Other renderings of the same nodule, as PNG sources make them: another grey mapping
        # (window), and now and then only the nodule (0 outside its outline, like md882's crops).
        other = torch.from_numpy(rng.random(B) < args.render_p)
        lo = torch.where(other[:, None, None, None], torch.from_numpy(rng.uniform(-1350, -900, B)).float()[:, None, None, None], lo)
        hi = torch.where(other[:, None, None, None], torch.from_numpy(rng.uniform(150, 750, B)).float()[:, None, None, None], hi)
    x = ((x - lo) / (hi - lo)).clamp(0, 1)
    if train and args is not None and args.segment_p > 0:
        seg = torch.from_numpy(rng.random(B) < args.segment_p)[:, None, None, None]
        x = torch.where(seg & (m < 0.5), torch.zeros_like(x), x)
    return x, m


def hash_loss(u: torch.Tensor, s: torch.Tensor, args):
    k = u.shape[1]
    h = torch.tanh(u)
    inner = h @ h.t() / k
    off = ~torch.eye(len(u), dtype=torch.bool)
    pair = ((inner - s) ** 2)[off].mean()
    quant = ((h.abs() - 1.0) ** 2).mean()
    balance = (h.mean(0) ** 2).mean()
    hc = h - h.mean(0, keepdim=True)
    cov = hc.t() @ hc / len(h)
    decor = ((cov - torch.diag(torch.diag(cov))) ** 2).sum() / (k * (k - 1))
    return pair + args.quant * quant + args.balance * balance + args.decor * decor


def sample_batch(bank: Bank, rng, batch: int):
    """batch distinct nodules (balanced over sources), one window slice each."""
    nod = rng.choice(len(bank.nodules), size=batch, replace=False)
    rows = np.array([rng.choice(bank.slices_of[i]) for i in nod])
    return torch.from_numpy(nod), rows


def train(args):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    nodules = lidc_hu.load_hu_nodules(args.data)
    train_n, val_n = lidc_hu.split(nodules)
    bank = Bank(train_n)
    print(f"loaded {len(train_n)} training / {len(val_n)} validation nodules, {len(bank.owner)} training slices "
          f"in {time.time() - t0:.0f}s", flush=True)
    widths = {"plain": tuple(args.plain), "growth": tuple(args.growth), "decoder": tuple(args.decoder)}
    model = FCDN(widths=widths, mask_stats=args.mask_stats).to(args.device)
    print(f"{count_parameters(model)} parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)
    steps = args.epochs * args.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    history = []
    t_start = time.time()
    for epoch in range(args.epochs):
        model.train()
        agg = {"seg": 0.0, "hash": 0.0}
        for _ in range(args.steps_per_epoch):
            nod, rows = sample_batch(bank, rng, args.batch)
            x, m = augment(bank, rows, rng, True, args)
            x, m = x.to(args.device), m.to(args.device)
            out = model(x)
            logits = out["mask_logits"]
            seg = F.binary_cross_entropy_with_logits(logits, m) + args.mse_lambda * F.mse_loss(torch.sigmoid(logits), m)
            s = similarity(bank, nod, args).to(args.device)
            hl = 0.0
            for tap in ("shallow", "middle", "deep"):
                for k, u in out["codes"][tap].items():
                    hl = hl + hash_loss(u, s, args) * (1.0 if k == 64 else 0.5)
            loss = seg + args.hash_weight * hl / 3.0
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            agg["seg"] += float(seg) / args.steps_per_epoch
            agg["hash"] += float(hl) / 3.0 / args.steps_per_epoch
        row = {"epoch": epoch + 1, **{k: round(v, 4) for k, v in agg.items()}, "s": round(time.time() - t_start)}
        if args.eval_every and (epoch + 1) % args.eval_every == 0 and epoch + 1 < args.epochs:
            from evaluate_hu import quick_metrics
            row["val"] = quick_metrics(model, val_n, args.device)
        history.append(row)
        print(json.dumps(row), flush=True)
    model.eval()
    return model, train_n, val_n, history, time.time() - t_start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the lidc-hu folder (labels.csv, images/, masks/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--steps-per-epoch", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--mse-lambda", type=float, default=1.0)
    ap.add_argument("--hash-weight", type=float, default=1.0)
    ap.add_argument("--quant", type=float, default=0.1)
    ap.add_argument("--balance", type=float, default=0.1)
    ap.add_argument("--decor", type=float, default=0.5)
    ap.add_argument("--w-malignancy", type=float, default=0.7)
    ap.add_argument("--w-diameter", type=float, default=0.25)
    ap.add_argument("--w-attributes", type=float, default=0.05)
    ap.add_argument("--w-class", type=float, default=0.0,
                    help="weight of a different consensus class in the dissimilarity (0: fcdn-v3)")
    ap.add_argument("--diameter-ratio", type=float, default=2.5,
                    help="a diameter ratio this large counts as fully apart in the size term")
    ap.add_argument("--plain", type=lambda s: [int(v) for v in s.split(",")], default=list(V2_WIDTHS["plain"]))
    ap.add_argument("--growth", type=lambda s: [int(v) for v in s.split(",")], default=list(V2_WIDTHS["growth"]))
    ap.add_argument("--decoder", type=lambda s: [int(v) for v in s.split(",")], default=list(V2_WIDTHS["decoder"]))
    ap.add_argument("--no-mask-stats", dest="mask_stats", action="store_false")
    ap.add_argument("--render-p", type=float, default=0.3,
                    help="share of training patches rendered with another window (PNG sources)")
    ap.add_argument("--segment-p", type=float, default=0.25,
                    help="share of training patches with everything outside the nodule set to 0 (md882-like)")
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model, train_n, val_n, history, secs = train(args)
    model = model.cpu()
    from evaluate_hu import quick_metrics
    metrics = quick_metrics(model, val_n, "cpu")
    print(json.dumps(metrics, indent=1))
    card = {
        "name": os.path.basename(os.path.normpath(args.out)),
        "untrained": False,
        "seed": args.seed,
        "training": {
            "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} /usr/bin/python3 "
                       f"{os.path.relpath(os.path.abspath(__file__))} " + " ".join(argv or sys.argv[1:]),
            "cwd": "the repository root" if os.path.exists("training/train_hu.py") else "training/",
            "args": vars(args),
            "data": "lidc-hu development part (../shared/data/lidc-hu): LIDC-IDRI nodules in HU with "
                    "context, sources ctslicing and gdro; LIDC-IDRI, TCIA, CC BY 3.0",
            "split": f"by LIDC patient id (training/lidc_hu_split.py: sha256 rule, 25% to validation): "
                     f"train {len(train_n)} nodules / {len({n.patient for n in train_n})} patients, "
                     f"validation {len(val_n)} nodules / {len({n.patient for n in val_n})} patients",
            "seconds": round(secs, 1),
            "device": args.device,
            "torch": torch.__version__,
            "history": history[-3:],
        },
        "hashing": "graded-similarity pairwise hashing (training/train_hu.py); every bit a learned row",
        "composition": None,
        "metrics": {"python_validation": metrics},
        "architecture_options": model.arch,
    }
    torch.save({"state_dict": model.state_dict(), "bit_lengths": model.bit_lengths,
                "arch": model.arch, "card": card}, os.path.join(args.out, "fcdn.pt"))
    with open(os.path.join(args.out, "card.json"), "w") as f:
        json.dump(card, f, indent=1)
    print(f"trained in {secs:.0f}s; wrote {args.out}/fcdn.pt", flush=True)


if __name__ == "__main__":
    main()
