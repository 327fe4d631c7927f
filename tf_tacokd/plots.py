"""Figures (matplotlib, headless): attention alignments, training curves, the lambda sweep."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from .runs import RunPaths

__all__ = ["pyplot", "alignment_figure", "drawable", "figure_to_png", "save_alignment", "read_history",
           "budget_offset", "training_curves", "lambda_sweep_figure"]


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend: the one place figures are set up
    (imported on first use, so the package imports without matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def drawable(text: str) -> bool:
    """Whether matplotlib's default font has a glyph for every character of ``text`` (without a
    CJK font installed, Hanzi would be drawn as empty boxes with a warning per character).

    Example:
        >>> drawable("The cat.")
        True
    """
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    font = FT2Font(findfont(FontProperties()))
    return all(c.isspace() or font.get_char_index(ord(c)) != 0 for c in text)


def alignment_figure(alignment: np.ndarray, tokens: Sequence[str] | None = None, title: str = ""):
    """Heat map of one alignment ``[decoder steps, text tokens]`` (tokens on the y axis)."""
    plt = pyplot()

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
    plt = pyplot()

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


# ---------------------------------------------------------------------------
# Training curves and the lambda sweep
# ---------------------------------------------------------------------------


def read_history(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of ``run_dir/history.csv`` (one per validation) as floats; empty cells dropped.

    Raises:
        FileNotFoundError: the run has no history.csv (not trained with this package, or no
            validation reached yet).
    """
    import csv

    path = RunPaths(run_dir).history
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training history (train until the first validation, "
                                f"train.validate_every steps)")
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def budget_offset(run_dir: str | Path) -> int:
    """Steps spent before this run started: the teacher's steps for a distilled student
    (``teacher.json`` names the teacher), else 0. Used to plot systems on one step budget."""
    import json

    link = RunPaths(run_dir).teacher
    if not link.is_file():
        return 0
    teacher = Path(json.loads(link.read_text(encoding="utf-8"))["teacher"])
    teacher = teacher.parent if teacher.suffix == ".keras" else teacher
    state = RunPaths(teacher).state  # written by every training run (train._write_state)
    return int(json.loads(state.read_text(encoding="utf-8")).get("step", 0)) if state.is_file() else 0


def training_curves(runs: Sequence[tuple[str, str | Path]], metrics: Sequence[str] = ("val_fr_mel_loss",),
                    budget: bool = True, title: str = ""):
    """Validation curves of several runs, one panel per metric.

    Args:
        runs: (name, run directory) pairs.
        metrics: history.csv columns; ``val_fr_mel_loss`` (free-running validation mel loss) is
            the one every mode logs, so teacher, SS, FR and students compare on it.
        budget: shift a distilled student by its teacher's steps (x = total training steps).

    Example:
        >>> fig = training_curves([("SS", "runs/ss"), ("KD", "runs/kd")])  # doctest: +SKIP
    """
    plt = pyplot()

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        plotted = 0
        for name, run_dir in runs:
            offset = budget_offset(run_dir) if budget else 0
            points = [(r["step"] + offset, r[metric]) for r in read_history(run_dir) if metric in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=name)
                plotted += 1
        if not plotted:
            raise ValueError(f"no run logged {metric!r}; see the columns of history.csv")
        ax.set_xlabel("total training steps" + (" (student: + teacher's)" if budget else ""))
        ax.set_ylabel(metric)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def lambda_sweep_figure(lambdas: Sequence[float], objectives: Sequence[float], objective: str = "",
                        best: float | None = None):
    """Objective against lambda (log axis) for a ``tacokd tune`` search."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.5))
    order = np.argsort(lambdas)
    ax.plot(np.asarray(lambdas)[order], np.asarray(objectives)[order], marker="o")
    if best is not None:
        ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best λ = {best:.3g}")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    # a sweep spanning less than a decade or two gets labelled minor ticks that overlap
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("λ (distillation weight)")
    ax.set_ylabel(objective or "objective")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
