"""Robustness metrics computed from one attention matrix ``[decoder steps, text tokens]``.

What the paper counted by ear is counted here from the attention:

- a **skip** is a run of pronounceable input tokens (letters, digits, IPA phones) that never
  receive the focus: their largest attention weight over all decoder steps stays below a
  threshold. Spaces, punctuation, the end-of-sentence symbol and IPA modifiers (stress ``ˈ ˌ``,
  length ``ː``, combining marks: they belong to a neighbouring phone) may be passed over silently.
- a **repeat** is the focus (the most attended token of a decoder step) going back at least
  ``repeat_tokens`` tokens behind the furthest token it had already reached; one excursion
  back counts once, however long it lasts.
- **incomplete**: the decoder hit its step limit without the stop token, or the focus never
  came within ``tail_tokens`` tokens of the last pronounceable token.

Example:
    >>> import numpy as np
    >>> a = np.eye(10)
    >>> round(focus_rate(a), 3), round(diagonal_score(a), 3)
    (1.0, 1.0)
    >>> m = analyze_alignment(a, tokens=list("hello worl") , finished=True)
    >>> m.skips, m.repeats, m.incomplete
    (0, 0, False)
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["AlignmentMetrics", "analyze_alignment", "diagonal_score", "focus_rate", "pronounceable"]


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


def pronounceable(token: str) -> bool:
    """Tokens that must be spoken: letters, digits (Mandarin tone digits included) and IPA
    phones; not IPA modifier letters (stress, length: Unicode category Lm), which Python calls
    alphabetic but which mark a neighbouring phone.

    Example:
        >>> [pronounceable(t) for t in ["a", "3", "ə", "ˈ", "ː", " ", ","]]
        [True, True, True, False, False, False, False]
    """
    return any(ch.isalnum() and unicodedata.category(ch) != "Lm" for ch in token)


@dataclass(frozen=True)
class AlignmentMetrics:
    """Per-utterance robustness numbers (see the module docstring for the definitions)."""

    skips: int
    skipped_tokens: int
    repeats: int
    incomplete: bool
    finished: bool
    focus_rate: float
    diagonal_score: float
    steps: int
    duration_ratio: float  # decoder steps / expected steps (NaN when unknown)

    def as_dict(self) -> dict:
        return asdict(self)


def _skip_runs(skipped: np.ndarray, speak: np.ndarray) -> int:
    """Runs of skipped pronounceable tokens; non-pronounceable tokens neither start nor break a run."""
    runs, inside = 0, False
    for s, p in zip(skipped, speak):
        if not p:
            continue
        if s and not inside:
            runs += 1
        inside = bool(s)
    return runs


def _repeat_excursions(focus: np.ndarray, back: int) -> int:
    """Excursions of the focus ``back`` or more tokens behind the furthest token reached."""
    if focus.size == 0:
        return 0
    furthest, inside, count = int(focus[0]), False, 0
    for f in focus[1:]:
        if f <= furthest - back:
            count += not inside
            inside = True
        else:
            inside = False
            furthest = max(furthest, int(f))
    return count


def analyze_alignment(
    alignment: np.ndarray,
    tokens: Sequence[str] | None = None,
    finished: bool = True,
    expected_steps: float | None = None,
    skip_threshold: float = 0.1,
    repeat_tokens: int = 2,
    tail_tokens: int = 2,
) -> AlignmentMetrics:
    """Skips, repeats, incompleteness, focus rate, diagonal score and duration ratio.

    Args:
        alignment: attention weights ``[decoder steps, text tokens]`` (the tokens of the
            utterance only; an end-of-sentence column may be included).
        tokens: the text tokens (to tell letters from spaces and punctuation); None treats
            every column as pronounceable.
        finished: whether the stop token fired before the step limit.
        expected_steps: decoder steps a natural reading would take (duration ratio), or None.
        skip_threshold: a token whose largest weight stays below this is skipped; decoder
            steps whose largest weight is below it do not move the focus.
        repeat_tokens: how far back (in tokens) the focus must jump to count as a repeat.
        tail_tokens: the focus must come this close to the last pronounceable token.
    """
    a = np.asarray(alignment, np.float64)
    if a.ndim != 2:
        raise ValueError(f"alignment must be [decoder steps, tokens], got shape {a.shape}")
    steps, n = a.shape
    if tokens is None:
        speak = np.ones(n, bool)
    else:
        if len(tokens) not in (n, n - 1):
            raise ValueError(f"{len(tokens)} tokens for an alignment over {n} columns")
        speak = np.array([pronounceable(t) for t in tokens] + [False] * (n - len(tokens)))
    ratio = steps / expected_steps if expected_steps else float("nan")
    if steps == 0 or n == 0:
        return AlignmentMetrics(int(speak.any()), int(speak.sum()), 0, True, bool(finished), 0.0, 0.0,
                                steps, ratio)
    peak_weight = a.max(axis=0)
    skipped = (peak_weight < skip_threshold) & speak
    confident = a.max(axis=1) >= skip_threshold
    focus = a.argmax(axis=1)[confident]
    spoken = np.flatnonzero(speak)
    last = int(spoken[-1]) if spoken.size else n - 1
    reached = int(focus.max()) if focus.size else -1
    incomplete = (not finished) or reached < last - tail_tokens
    return AlignmentMetrics(
        skips=_skip_runs(skipped, speak),
        skipped_tokens=int(skipped.sum()),
        repeats=_repeat_excursions(focus, repeat_tokens),
        incomplete=bool(incomplete),
        finished=bool(finished),
        focus_rate=focus_rate(a),
        diagonal_score=diagonal_score(a),
        steps=steps,
        duration_ratio=float(ratio),
    )
