"""CI smoke: a few training steps on generated phantoms, compose, export, parity fixture.

No LIDC data: phantoms.py draws the patches. Prints the path of the exported .onnx
(last line) so that the service's CI can load and run it with onnxruntime-node.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compose  # noqa: E402
import parity_fixture  # noqa: E402
from export import export_onnx  # noqa: E402
from fcdn import FCDN, V1_WIDTHS, V2_WIDTHS  # noqa: E402
from phantoms import phantom_batch  # noqa: E402
from train import SizeTargets, step_loss  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="folder for fcdn-smoke.onnx/.json/.pt")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--widths", choices=("v1", "v2"), default="v2", help="fcdn-v1's or fcdn-v2's channels")
    ap.add_argument("--mask-stats", action="store_true", help="mask statistics in the hash heads")
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.manual_seed(args.seed)
    x, m, lab = phantom_batch(64, seed=args.seed)
    diam = lab["diameter_px"].astype(np.float64)
    y = lab["malignant"]
    hp = SimpleNamespace(mse_lambda=1.0, hash_weight=1.0, class_weight=1.0, label_smoothing=0.1,
                         class_dropout=0.0)
    targets = SizeTargets(diam)
    model = FCDN(widths=V2_WIDTHS if args.widths == "v2" else V1_WIDTHS, mask_stats=args.mask_stats)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=1e-4)
    model.train()
    for step in range(args.steps):
        i = np.arange(step * 16, step * 16 + 16) % len(x)
        out = model(torch.from_numpy(x[i]))
        loss, *_ = step_loss(out, torch.from_numpy(m[i]), y[i], diam[i], targets, hp)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"step {step + 1}: loss {float(loss):.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        feats = {t: v for t, v in model(torch.from_numpy(x))["features"].items()}
    composition = compose.compose_codes(model, None, {"shallow": 0.75, "middle": 1.0, "deep": 0.75},
                                        0.25, args.seed, feats=feats)
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "fcdn-smoke.pt")
    onnx_path = os.path.join(args.out, "fcdn-smoke.onnx")
    card = {"name": "fcdn-smoke", "untrained": False, "seed": args.seed,
            "training": {"data": "phantoms (training/phantoms.py), CI smoke only",
                         "steps": args.steps, "checkpoint": ckpt},
            "composition": composition, "metrics": None}
    torch.save({"state_dict": model.state_dict(), "bit_lengths": model.bit_lengths, "arch": model.arch,
                "card": card}, ckpt)
    export_onnx(model, onnx_path, card)
    parity_fixture.main(["--model", onnx_path, "--checkpoint", ckpt,
                         "--out", os.path.join(args.out, "fcdn-smoke.parity.json"), "--n", "4"])
    print(f"smoke done in {time.time() - t0:.1f}s")
    print(os.path.abspath(onnx_path))


if __name__ == "__main__":
    main()
