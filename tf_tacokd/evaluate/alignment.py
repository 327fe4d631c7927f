"""Alignment metrics computed from an attention matrix ``[decoder steps, text tokens]``.

Example:
    >>> import numpy as np
    >>> a = np.eye(10)
    >>> round(focus_rate(a), 3), round(diagonal_score(a), 3)
    (1.0, 1.0)
"""

from __future__ import annotations

import numpy as np

__all__ = ["focus_rate", "diagonal_score"]


def focus_rate(alignment: np.ndarray) -> float:
    """FastSpeech's focus rate: the mean over decoder steps of the largest attention weight."""
    a = np.asarray(alignment, np.float64)
    return float(a.max(axis=1).mean()) if a.size else 0.0


def diagonal_score(alignment: np.ndarray, tolerance: float = 0.1) -> float:
    """Fraction of decoder steps whose attention peak lies within ``tolerance`` (as a
    fraction of the text length) of the straight diagonal from the first to the last token."""
    a = np.asarray(alignment, np.float64)
    if a.size == 0:
        return 0.0
    steps, tokens = a.shape
    peak = a.argmax(axis=1) / max(tokens - 1, 1)
    line = np.arange(steps) / max(steps - 1, 1)
    return float(np.mean(np.abs(peak - line) <= tolerance))
