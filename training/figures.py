"""Figures for docs/: PR curves at 64 bits (paper fig. 9) and a query's top 5 (figs. 5/8).

They show LIDC-IDRI images: every figure carries the attribution "LIDC-IDRI, TCIA, CC BY 3.0".
"""
from __future__ import annotations

import os

import numpy as np

import retrieval as R

ATTRIBUTION = "Images: LIDC-IDRI, TCIA, CC BY 3.0"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def pr_curves(pr: dict, path: str):
    plt = _plt()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=110)
    names = {"joint": "FCDN Joint", "shallow": "FCDN layer 4", "middle": "FCDN layer 17",
             "deep": "FCDN layer 25"}
    for name, res in pr.items():
        style = "-" if name in names else "--"
        width = 2.5 if name == "joint" else 1.2
        ax.plot(res["pr_recall"], res["pr_precision"], style, lw=width,
                label=f"{names.get(name, name)} (MAP {res['map']:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated, mean over queries)")
    ax.set_title("Precision-recall at 64 bits, validation patients")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.text(0.99, 0.005, "Data: LIDC-IDRI, TCIA, CC BY 3.0", ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def query_top5(enc, cases, path: str, seed: int = 0, query: int | None = None):
    """One query (centre slice) and its top 5 by each layer and by Joint, with labels."""
    plt = _plt()
    bits = {t: enc["codes"][t][64] > 0 for t in ("shallow", "middle", "deep")}
    D = R.joint_distances(bits, enc["owner"], enc["centre_rows"], len(cases))
    patients = [c.patient for c in cases]
    if query is None:
        # a malignant md882 query of middling size: the harder, more instructive case
        cand = [i for i, c in enumerate(cases) if c.label == 1 and c.subset == "md882"
                and 8 <= c.diameter_mm <= 15]
        query = cand[len(cand) // 2] if cand else 0
    rows = [("Joint", "joint"), ("layer 4", "shallow"), ("layer 17", "middle"), ("layer 25", "deep")]
    fig, axes = plt.subplots(len(rows), 6, figsize=(9, 6.6), dpi=110)
    img = enc["images"]
    lab = ["benign", "malignant"]

    def show(ax, ci, title, colour="black"):
        ax.imshow(img[enc["centre_rows"][ci]], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=7, color=colour)

    q = cases[query]
    for r, (title, key) in enumerate(rows):
        secondary = D["middle"] if key == "joint" else None
        order = R.rank_gallery(D[key], patients, seed, secondary)[query]
        d = "%.1f mm" % q.diameter_mm if np.isfinite(q.diameter_mm) else ""
        show(axes[r, 0], query, f"query\n{lab[q.label]} {d}")
        axes[r, 0].set_ylabel(title, fontsize=9)
        for j, ci in enumerate(order[:5]):
            c = cases[ci]
            d = "%.1f mm" % c.diameter_mm if np.isfinite(c.diameter_mm) else ""
            colour = "green" if c.label == q.label else "red"
            show(axes[r, j + 1], ci, f"#{j + 1} {lab[c.label]} {d}\ndist {D[key][query, ci]:.0f}", colour)
    fig.suptitle("Top 5 at 64 bits by Joint distance and by single layer (validation patients)",
                 fontsize=10)
    fig.text(0.99, 0.005, ATTRIBUTION, ha="right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
