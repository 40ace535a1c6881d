"""Export an FCDN checkpoint (or a seeded random network) to ONNX plus its model card.

  python3 training/export.py --checkpoint runs/v1/fcdn.pt --out models/fcdn-v1.onnx
  python3 training/export.py --untrained --seed 0 --out test/fixtures/fcdn-untrained.onnx

The ONNX interface is the service's contract (src/inference/types.ts):
  input  patches  float32 [N,1,64,64] in [0,1]
  output code_l4, code_l17, code_l25  float32 [N,64] pre-sign values (bit = value > 0)
  output mask     float32 [N,1,64,64] per-pixel nodule probability
The card (same basename, .json) records taps, preprocessing, sha256 and metrics.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fcdn import FCDN, ExportWrapper, TAPS, INPUT_SIZE, MASK_STAT_NAMES, count_parameters  # noqa: E402
from phantoms import phantom_batch  # noqa: E402
from checkpoint import load_checkpoint, widths_from_args  # noqa: E402,F401  (load_checkpoint: export.load_checkpoint for older callers)

OPSET = 17

PREPROCESSING = {
    "window_hu": [-1200, 600],
    "scaling": "clip(HU, -1200, 600) then (HU + 1200) / 1800, giving [0, 1]",
    "patch": "64x64 centred on the nodule; other sizes resized bilinearly to 64x64",
    "png": {
        "8bit": "already windowed: value / 255",
        "16bit": "raw HU stored as HU + 32768: HU = value - 32768, then windowed",
    },
    "dicom": "HU from RescaleSlope/Intercept, a 64x64 grid at 0.75 mm/pixel (PixelSpacing) centred on "
             "centerX/centerY, triangle filter, air (-1200 HU) outside the image, rounded to whole HU",
    "slices": "a case is its centre slice (offset 0) and its neighbours; the Joint distance uses the slice "
              "window, offsets -N..N (FCDN_SLICE_WINDOW, default 1)",
}


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def calibrate_batchnorm(model: FCDN, seed: int, batches: int = 8, n: int = 32):
    """Set BatchNorm running statistics from phantom patches (for the untrained net).

    A freshly initialised network has running mean 0 / var 1 everywhere, which makes
    every pooled feature positive and every input fall on the same side of each
    hash hyperplane; real statistics make the random codes vary with the input.
    """
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for b in range(batches):
            x, _, _ = phantom_batch(n, seed=10_000 + seed * 100 + b)
            model(torch.from_numpy(x))
    model.eval()


def export_onnx(model: FCDN, out_path: str, card: dict, bits: int = 64) -> dict:
    """Write out_path (.onnx) and the card beside it; return the card written."""
    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    wrapper = ExportWrapper(model, bits).eval()
    dummy = torch.rand(2, 1, INPUT_SIZE, INPUT_SIZE)
    torch.onnx.export(
        wrapper, dummy, out_path, opset_version=OPSET,
        input_names=["patches"], output_names=["code_l4", "code_l17", "code_l25", "mask"],
        dynamic_axes={k: {0: "N"} for k in ["patches", "code_l4", "code_l17", "code_l25", "mask"]},
        do_constant_folding=True)
    ch = model.tap_channels
    extra = ", plus the predicted mask's statistics" if model.mask_stats else ""
    full = {
        "name": card.get("name", os.path.splitext(os.path.basename(out_path))[0]),
        "architecture": "FCDN (Qin et al. 2019): 9 plain convs + 3 dense blocks x 3 BN-ReLU-Conv, "
                        "3 max-pools, 6 bilinear up-samplings, per-pixel sigmoid; layers numbered "
                        "0-26 as in training/fcdn.py and docs/model.md",
        "parameters": count_parameters(model),
        "widths": model.arch["widths"],
        "maskStatistics": list(MASK_STAT_NAMES) if model.mask_stats else None,
        "inputSize": INPUT_SIZE,
        "bits": bits,
        "io": {"input": "patches", "shallow": "code_l4", "middle": "code_l17",
               "deep": "code_l25", "mask": "mask"},
        "taps": {
            "shallow": {"layer": TAPS["shallow"], "output": "code_l4",
                        "features": f"dense block 1 after its 2nd layer ({ch['shallow']} ch, 64x64), avg+max pooled{extra}"},
            "middle": {"layer": TAPS["middle"], "output": "code_l17",
                       "features": f"dense block 3 output, last encoder layer ({ch['middle']} ch, 16x16), avg+max pooled{extra}"},
            "deep": {"layer": TAPS["deep"], "output": "code_l25",
                     "features": f"last 3x3 decoder conv ({ch['deep']} ch, 64x64), avg+max pooled{extra}"},
        },
        "codes": "bit i = (output[i] > 0 ? 1 : 0) = character i of the 64-char bit string",
        "preprocessing": PREPROCESSING,
        "opset": OPSET,
    }
    for k, v in card.items():
        if k != "name":
            full[k] = v
    full["sha256"] = sha256_of(out_path)
    card_path = os.path.splitext(out_path)[0] + ".json"
    with open(card_path, "w") as f:
        json.dump(full, f, indent=2)
        f.write("\n")
    return full


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="fcdn.pt written by train.py")
    ap.add_argument("--untrained", action="store_true", help="export a seeded random network")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output .onnx path (card goes beside it)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--save-checkpoint", help="also save the torch weights here (recorded in the "
                    "card as training.checkpoint; evaluate.py reads the 24-48 bit heads from it)")
    ap.add_argument("--plain", help="untrained only: widths as in train.py")
    ap.add_argument("--growth")
    ap.add_argument("--decoder")
    ap.add_argument("--mask-stats", action="store_true")
    args = ap.parse_args(argv)

    if args.untrained:
        torch.manual_seed(args.seed)
        model = FCDN(widths=widths_from_args(args), mask_stats=args.mask_stats)
        calibrate_batchnorm(model, args.seed)
        card = {"name": args.name or "fcdn-untrained", "untrained": True, "seed": args.seed,
                "training": None, "metrics": None,
                "note": "random initialisation (torch.manual_seed(seed)); BatchNorm statistics "
                        "from seeded phantom patches; for tests only, codes carry no meaning"}
        if args.save_checkpoint:
            torch.save({"state_dict": model.state_dict(), "bit_lengths": model.bit_lengths,
                        "arch": model.arch, "card": card}, args.save_checkpoint)
    elif args.checkpoint:
        model, ckpt = load_checkpoint(args.checkpoint)
        card = dict(ckpt.get("card", {}))
        if args.name:
            card["name"] = args.name
        card.setdefault("untrained", False)
        if args.save_checkpoint:
            card["training"] = dict(card.get("training") or {}, checkpoint=args.save_checkpoint)
            torch.save({**ckpt, "card": card}, args.save_checkpoint)
    else:
        ap.error("give --checkpoint or --untrained")
    full = export_onnx(model, args.out, card)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) sha256 {full['sha256']}")


if __name__ == "__main__":
    main()
