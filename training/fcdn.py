"""FCDN: the fully convolutional dense network of Qin et al. 2019, with hash heads.

Layer numbering (0-based, forward order; only convolutions are numbered, pooling
and up-sampling belong to the convolution that follows them):

  stage 1, 64x64   layers 0-2   plain conv3x3-BN-ReLU              1 -> 16 -> 16 -> 16
                   layers 3-5   dense block 1 (BN-ReLU-Conv3x3, growth 8)   16 -> 40
                   max-pool 2x2 -> 32x32
  stage 2, 32x32   layers 6-8   plain                              40 -> 32
                   layers 9-11  dense block 2 (growth 16)          32 -> 80
                   max-pool -> 16x16
  stage 3, 16x16   layers 12-14 plain                              80 -> 64
                   layers 15-17 dense block 3 (growth 32)          64 -> 160
                   max-pool -> 8x8            (end of the encoder)
  decoder          layers 18-23 bilinear up-sampling then "same" conv3x3-BN-ReLU,
                                6 steps 8 -> 11 -> 16 -> 23 -> 32 -> 45 -> 64
                                (the paper's 6 up-samplings; a factor of about
                                sqrt(2) each, since 3 pools need only a factor 8)
                   layers 24-25 conv3x3-BN-ReLU at 64x64
                   layer  26    conv1x1 -> per-pixel nodule logit (sigmoid = mask)

Taps (the paper's names):
  layer 4  (shallow, contour): dense block 1 state after its 2nd layer, 32 ch, 64x64
  layer 17 (middle, semantics): dense block 3 output (last encoder conv), 160 ch, 16x16
  layer 25 (deep, shape/size): last 3x3 decoder conv, 24 ch, 64x64

Hash heads (paper eq. 13-15): x = global average and max pooling of the tap,
standardised by a BatchNorm1d (so that sign() splits the data rather than every
input landing on the same side of a positive mean; its learned shift lets a bit sit
at a threshold other than the mean, as the raw non-negative features of the paper
would); then k pre-sign values W x with no bias (eq. 13, b = 0), k in 24/32/48/64.
Bits are value > 0.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

BIT_LENGTHS = (24, 32, 48, 64)
TAPS = {"shallow": 4, "middle": 17, "deep": 25}
INPUT_SIZE = 64
# Spatial size after each of the 6 decoder up-samplings (8 -> 64).
UP_SIZES = (11, 16, 23, 32, 45, 64)


class PlainConv(nn.Module):
    """conv3x3 ("same") - BN - ReLU: the encoder's plain layers and the decoder's."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class DenseLayer(nn.Module):
    """BN - ReLU - conv3x3 giving `growth` new channels (DenseNet order, paper fig. 4)."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], dim=1)


class HashHead(nn.Module):
    """Pooled tap features -> k pre-sign values for each code length.

    Every pre-sign value is linear in x (eq. 13, b = 0): u = W x. The rows of W are of
    two kinds, chosen per bit by the buffer `class_bits` (set after training by
    train.compose_codes):
      size bits:  learned rows `proj`, trained toward a thermometer code of the diameter;
      class bits: the learned class direction `cls` plus a fixed random direction
                  `noise` (scaled on training data), so that a bit says "malignant" with
                  a probability that follows the class logit. Two uncertain nodules then
                  differ in about half their class bits, two confident ones of one class
                  in none: the expected Hamming distance tracks 1 - P(same class) rather
                  than collapsing every nodule onto one of two class codes.
    Before composition (an untrained network) all bits are `proj` rows.
    """

    def __init__(self, channels: int, bit_lengths=BIT_LENGTHS, extra: int = 0):
        super().__init__()
        self.dim = 2 * channels + extra
        self.norm = nn.BatchNorm1d(self.dim)
        self.cls = nn.Linear(self.dim, 1, bias=False)
        self.proj = nn.ModuleDict(
            {str(k): nn.Linear(self.dim, k, bias=False) for k in bit_lengths})
        for k, lin in self.proj.items():
            nn.init.normal_(lin.weight, std=self.dim ** -0.5)
            self.register_buffer(f"noise_{k}", torch.zeros(int(k), self.dim))
            self.register_buffer(f"class_bits_{k}", torch.zeros(int(k), dtype=torch.bool))

    def features(self, fmap, extra=None):
        parts = [fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))]
        if extra is not None:
            parts.append(extra)
        return self.norm(torch.cat(parts, dim=1))

    def weight(self, k: int):
        mask = getattr(self, f"class_bits_{k}")[:, None]
        class_rows = self.cls.weight + getattr(self, f"noise_{k}")
        return torch.where(mask, class_rows, self.proj[str(k)].weight)

    def forward(self, fmap, extra=None):
        x = self.features(fmap, extra)
        codes = {int(k): x @ self.weight(int(k)).t() for k in self.proj}
        return codes, x, self.cls(x)[:, 0]


# Channel widths of fcdn-v1 (the default, so v1 checkpoints load unchanged).
V1_WIDTHS = {"plain": (16, 32, 64), "growth": (8, 16, 32), "decoder": (96, 64, 48, 32, 24, 24)}
# fcdn-v2, the default model: the same layers, about 3.4x less CPU (docs/evaluation.md, sweep 4).
V2_WIDTHS = {"plain": (8, 8, 16), "growth": (4, 8, 16), "decoder": (32, 24, 16, 8, 8, 8)}
MASK_STAT_NAMES = ("sqrt_area", "log_area", "perimeter", "perimeter_per_sqrt_area", "mean_inside",
                   "std_inside", "mean_outside", "max_probability")


def mask_statistics(patches, mask_logits, detach: bool = True):
    """Differentiable statistics of the predicted mask, [N, len(MASK_STAT_NAMES)].

    What a 5-feature logistic regression on true masks uses to beat the class
    direction (docs/evaluation.md): size (soft area in pixels), a perimeter proxy (total
    variation of the soft mask), shape (perimeter / sqrt area), the intensity inside the
    mask (mean, std) and outside it (about 0 for md882's segmented slices, lung for
    daco134's). Computed in the graph, so the ONNX file stays self-contained."""
    p = torch.sigmoid(mask_logits)
    if detach:
        p = p.detach()
    x = patches
    area = p.sum(dim=(1, 2, 3))
    perim = (p[:, :, 1:, :] - p[:, :, :-1, :]).abs().sum(dim=(1, 2, 3)) + \
        (p[:, :, :, 1:] - p[:, :, :, :-1]).abs().sum(dim=(1, 2, 3))
    sqrt_area = torch.sqrt(area + 1.0)
    inside = area + 1e-3
    mean_in = (p * x).sum(dim=(1, 2, 3)) / inside
    var_in = (p * x * x).sum(dim=(1, 2, 3)) / inside - mean_in * mean_in
    std_in = torch.sqrt(F.relu(var_in) + 1e-6)
    q = 1.0 - p
    mean_out = (q * x).sum(dim=(1, 2, 3)) / (q.sum(dim=(1, 2, 3)) + 1e-3)
    pmax = p.amax(dim=(1, 2, 3))
    return torch.stack([sqrt_area, torch.log1p(area), perim, perim / sqrt_area, mean_in, std_in,
                        mean_out, pmax], dim=1)


class FCDN(nn.Module):
    """widths: channel counts (`V1_WIDTHS` layout: plain = the three stages' plain-conv
    widths, growth = the dense blocks' growth rates, decoder = the 6 up-sampling convs'
    outputs, the last also used by layers 24-25). mask_stats: feed `mask_statistics`
    of the predicted mask into every hash head beside the pooled tap features."""

    def __init__(self, bit_lengths=BIT_LENGTHS, widths=None, mask_stats: bool = False,
                 mask_stats_detach: bool = True):
        super().__init__()
        self.bit_lengths = tuple(bit_lengths)
        w = {k: tuple(v) for k, v in {**V1_WIDTHS, **(widths or {})}.items()}
        self.arch = {"widths": {k: list(v) for k, v in w.items()}, "mask_stats": bool(mask_stats),
                     "mask_stats_detach": bool(mask_stats_detach)}
        (p1, p2, p3), (g1, g2, g3), dec = w["plain"], w["growth"], list(w["decoder"])
        assert len(dec) == 6
        L = []  # numbered layers, index = layer number
        # stage 1
        L += [PlainConv(1, p1), PlainConv(p1, p1), PlainConv(p1, p1)]
        L += [DenseLayer(p1 + g1 * i, g1) for i in range(3)]          # 3,4,5
        # stage 2
        c1 = p1 + 3 * g1
        L += [PlainConv(c1, p2), PlainConv(p2, p2), PlainConv(p2, p2)]
        L += [DenseLayer(p2 + g2 * i, g2) for i in range(3)]          # 9,10,11
        # stage 3
        c2 = p2 + 3 * g2
        L += [PlainConv(c2, p3), PlainConv(p3, p3), PlainConv(p3, p3)]
        L += [DenseLayer(p3 + g3 * i, g3) for i in range(3)]          # 15,16,17
        c3 = p3 + 3 * g3
        # decoder: 6 up-sampling convs, then two at full size
        dec = [c3] + dec
        L += [PlainConv(dec[i], dec[i + 1]) for i in range(6)]        # 18..23
        L += [PlainConv(dec[-1], dec[-1]), PlainConv(dec[-1], dec[-1])]  # 24, 25
        L += [nn.Conv2d(dec[-1], 1, 1)]                               # 26
        self.layers = nn.ModuleList(L)
        assert len(self.layers) == 27
        self.pool_after = {5, 11, 17}
        self.mask_stats = bool(mask_stats)
        self.mask_stats_detach = bool(mask_stats_detach)
        extra = len(MASK_STAT_NAMES) if mask_stats else 0
        self.tap_channels = {"shallow": p1 + 2 * g1, "middle": c3, "deep": dec[-1]}
        self.heads = nn.ModuleDict({t: HashHead(c, bit_lengths, extra)
                                    for t, c in self.tap_channels.items()})

    def forward(self, patches):
        """patches [N,1,64,64] in [0,1] -> dict with 'mask_logits', 'codes'
        ({tap: {bits: [N,bits]}}), 'features' ({tap: pooled features}) and
        'class_logits' ({tap: [N]}, malignant vs benign)."""
        x = patches
        taps = {}
        for i, layer in enumerate(self.layers):
            if 18 <= i <= 23:
                x = F.interpolate(x, size=(UP_SIZES[i - 18],) * 2, mode="bilinear",
                                  align_corners=False)
            x = layer(x)
            if i == TAPS["shallow"]:
                taps["shallow"] = x
            elif i == TAPS["middle"]:
                taps["middle"] = x
            elif i == TAPS["deep"]:
                taps["deep"] = x
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        stats = mask_statistics(patches, x, self.mask_stats_detach) if self.mask_stats else None
        codes, feats, logits = {}, {}, {}
        for name, fmap in taps.items():
            codes[name], feats[name], logits[name] = self.heads[name](fmap, stats)
        return {"mask_logits": x, "codes": codes, "features": feats, "class_logits": logits}


class ExportWrapper(nn.Module):
    """The service's ONNX interface: patches -> code_l4, code_l17, code_l25, mask."""

    def __init__(self, model: FCDN, bits: int = 64):
        super().__init__()
        self.model = model
        self.bits = bits

    def forward(self, patches):
        out = self.model(patches)
        c = out["codes"]
        return (c["shallow"][self.bits], c["middle"][self.bits], c["deep"][self.bits],
                torch.sigmoid(out["mask_logits"]))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
