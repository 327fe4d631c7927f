"""Alignment metrics on hand-made attention matrices."""

from __future__ import annotations

import numpy as np

from tf_tacokd.evaluate.alignment import diagonal_score, focus_rate


def diagonal(steps: int, tokens: int) -> np.ndarray:
    a = np.zeros((steps, tokens))
    a[np.arange(steps), np.round(np.linspace(0, tokens - 1, steps)).astype(int)] = 1.0
    return a


def test_clean_diagonal_scores_one() -> None:
    a = diagonal(30, 12)
    assert focus_rate(a) == 1.0 and diagonal_score(a) == 1.0


def test_uniform_attention_has_low_focus() -> None:
    a = np.full((20, 10), 0.1)
    assert abs(focus_rate(a) - 0.1) < 1e-9


def test_stuck_attention_is_not_diagonal() -> None:
    a = np.zeros((30, 12))
    a[:, 0] = 1.0  # never moves
    assert focus_rate(a) == 1.0 and diagonal_score(a) < 0.2


def test_empty() -> None:
    assert focus_rate(np.zeros((0, 3))) == 0.0 and diagonal_score(np.zeros((0, 3))) == 0.0
