"""PNG plots written with each checkpoint: loss curves, alignments, spectrograms.

matplotlib is imported on first use; where it is missing (pip install matplotlib) the plots
are skipped with one warning and training goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("training.plots")

History = dict[str, list[tuple[int, float]]]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed: no PNG plots. Hint: pip install matplotlib")
        return None
    matplotlib.use("Agg")  # files only; no display on a training machine
    import matplotlib.pyplot as plt

    return plt


def loss_curves(path: Path, history: History, title: str) -> None:
    """One panel per prefix ("train/...", "val/..."), one line per series, log-scaled where positive."""
    plt = _pyplot()
    if plt is None:
        return
    groups: dict[str, list[str]] = {}
    for key in sorted(history):
        groups.setdefault(key.split("/")[0], []).append(key)
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(6 * max(1, len(groups)), 4), squeeze=False)
    for ax, (group, keys) in zip(axes[0], groups.items(), strict=False):
        positive = True
        for key in keys:
            if not history[key]:
                continue
            x, y = zip(*history[key], strict=True)
            ax.plot(x, y, label=key.split("/", 1)[1], marker="." if len(x) < 30 else None)
            positive &= min(y) > 0
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(f"{title}: {group}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def panels(path: Path, images: list[tuple[str, np.ndarray, str]], title: str) -> None:
    """Stacked image panels, each (caption, array, kind).

    Kind "align" is decoder step x text (drawn text-vertical, like NVIDIA's plots), "mel" is
    channels x frames. No images (a corpus with no held-out rows yet): no figure, one log line.
    """
    if not images:
        log.info("no validation images: %s skipped", path.name)
        return
    plt = _pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(len(images), 1, figsize=(10, 3 * len(images)), squeeze=False)
    for ax, (caption, array, kind) in zip(axes[:, 0], images, strict=True):
        if kind == "align":
            im = ax.imshow(array.T, aspect="auto", origin="lower", interpolation="none", vmin=0)
            ax.set_xlabel("decoder step")
            ax.set_ylabel("text symbol")
        else:
            im = ax.imshow(array, aspect="auto", origin="lower", interpolation="none")
            ax.set_xlabel("frame")
            ax.set_ylabel("mel channel")
        ax.set_title(caption, fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
