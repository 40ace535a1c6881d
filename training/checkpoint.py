"""FCDN checkpoints: the network a checkpoint file holds, and the widths a command line asks for.

Shared by train.py (which writes checkpoints), export.py, compose.py, evaluate*.py and references*.py
(which read them); it imports only fcdn.py, so none of those import each other for it.
"""
from __future__ import annotations

import torch

from fcdn import FCDN


def widths_from_args(args):
    """--plain/--growth/--decoder (comma lists) over the fcdn-v1 widths."""
    w = {}
    for k in ("plain", "growth", "decoder"):
        v = getattr(args, k)
        if v:
            w[k] = tuple(int(x) for x in v.split(","))
    return w


def load_checkpoint(path: str):
    try:  # newer torch defaults to weights_only=True; our checkpoints hold a plain card dict
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:
        ckpt = torch.load(path, map_location="cpu")
    model = FCDN(ckpt.get("bit_lengths", (24, 32, 48, 64)), **ckpt.get("arch", {}))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
