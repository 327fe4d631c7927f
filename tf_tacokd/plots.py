"""Figures: attention alignments (matplotlib, headless)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["alignment_figure", "figure_to_png", "save_alignment"]


def alignment_figure(alignment: np.ndarray, tokens: Sequence[str] | None = None, title: str = ""):
    """Heat map of one alignment ``[decoder steps, text tokens]`` (tokens on the y axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alignment = np.asarray(alignment)
    fig, ax = plt.subplots(figsize=(max(4.0, alignment.shape[0] / 25), max(3.0, alignment.shape[1] / 12)))
    im = ax.imshow(alignment.T, aspect="auto", origin="lower", interpolation="none", vmin=0, vmax=1)
    ax.set_xlabel("decoder step")
    ax.set_ylabel("text token")
    if tokens is not None and len(tokens) <= 120:
        ax.set_yticks(range(len(tokens)))
        ax.set_yticklabels(["␣" if t == " " else t for t in tokens], fontsize=6)
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def figure_to_png(fig) -> bytes:
    """PNG bytes of a figure (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def save_alignment(path: str | Path, alignment: np.ndarray, tokens: Sequence[str] | None = None,
                   title: str = "") -> Path:
    """Write an alignment plot as PNG."""
    path = Path(path)
    path.write_bytes(figure_to_png(alignment_figure(alignment, tokens, title)))
    return path
