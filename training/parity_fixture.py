"""Write PyTorch's pre-sign outputs for seeded phantom patches, for the ONNX parity test.

  OMP_NUM_THREADS=2 /usr/bin/python3 training/parity_fixture.py \
      --model models/fcdn-v1.onnx --checkpoint models/fcdn-v1.pt --out models/fcdn-v1.parity.json

The JSON holds the patches themselves (so the Node side needs no generator), the three
code vectors and the bit strings. The check (training/check_parity.mjs, or the service's
test): onnxruntime-node on the same patches must agree on >= 99.9% of the bits, and
any bit that differs must have |pre-sign| < 1e-4 on the PyTorch side.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import load_checkpoint  # noqa: E402
from export import sha256_of  # noqa: E402
from fcdn import ExportWrapper  # noqa: E402
from phantoms import phantom_batch  # noqa: E402

OUTPUTS = ("code_l4", "code_l17", "code_l25")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the .onnx file the fixture is for")
    ap.add_argument("--checkpoint", help="its torch weights (default: training.checkpoint in the card)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)

    card = json.load(open(os.path.splitext(args.model)[0] + ".json"))
    ckpt = args.checkpoint or (card.get("training") or {}).get("checkpoint")
    if not ckpt:
        ap.error("no --checkpoint and none named in the card")
    model, _ = load_checkpoint(ckpt)
    patches, _, _ = phantom_batch(args.n, seed=args.seed)
    # JSON carries 7 decimals: compute on exactly the values the Node side will read
    patches = [[round(float(v), 7) for v in p.ravel()] for p in patches]
    x = torch.tensor(patches, dtype=torch.float32).reshape(args.n, 1, 64, 64)
    with torch.no_grad():
        outs = ExportWrapper(model).eval()(x)
    doc = {
        "model": os.path.basename(args.model),
        "sha256": sha256_of(args.model),
        "torch": torch.__version__,
        "phantomSeed": args.seed,
        "shape": list(x.shape),
        "tolerance": {"minEqualBitFraction": 0.999, "maxAbsPreSignWhereBitsDiffer": 1e-4},
        "patches": patches,
        "outputs": {name: o.tolist() for name, o in zip(OUTPUTS, outs[:3])},
        "bits": {name: ["".join("1" if v > 0 else "0" for v in row) for row in o.tolist()]
                 for name, o in zip(OUTPUTS, outs[:3])},
        "maskSum": [float(v) for v in outs[3].sum(dim=(1, 2, 3))],
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f)
    print(f"wrote {args.out}: {args.n} phantom patches, outputs {', '.join(OUTPUTS)}")


if __name__ == "__main__":
    main()
