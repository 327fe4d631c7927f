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


# -- skips, repeats, incomplete -------------------------------------------------------

from tf_tacokd.evaluate.alignment import analyze_alignment  # noqa: E402

TOKENS = list("the cat sat.")  # 12 tokens: letters, spaces and a full stop


def walk(path: list[int], tokens: int, steps_per_token: int = 3, spread: float = 0.0) -> np.ndarray:
    """An alignment whose focus visits ``path`` (token indices) in order, ``steps_per_token``
    steps each; ``spread`` moves that much weight to the next token (realistic smearing)."""
    rows = []
    for t in path:
        for _ in range(steps_per_token):
            row = np.zeros(tokens)
            row[t] = 1.0 - spread
            row[min(t + 1, tokens - 1)] += spread
            rows.append(row)
    return np.array(rows)


def with_eos(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.zeros((len(a), 1))], axis=1)


def test_clean_diagonal_has_no_errors() -> None:
    a = with_eos(walk(list(range(12)), 12, spread=0.3))
    m = analyze_alignment(a, TOKENS, finished=True)
    assert (m.skips, m.skipped_tokens, m.repeats, m.incomplete) == (0, 0, 0, False)
    assert abs(m.focus_rate - (33 * 0.7 + 3 * 1.0) / 36) < 1e-12 and m.steps == 36  # last token: 1.0


def test_one_skipped_letter_is_one_skip() -> None:
    path = [i for i in range(12) if i != 5]  # "a" of "cat" never attended
    m = analyze_alignment(walk(path, 12), TOKENS)
    assert (m.skips, m.skipped_tokens, m.repeats, m.incomplete) == (1, 1, 0, False)


def test_skipped_word_is_one_skip_of_three_tokens() -> None:
    path = [0, 1, 2, 3, 8, 9, 10, 11]  # "cat " passed over: 3 letters, one skip
    m = analyze_alignment(walk(path, 12), TOKENS)
    assert (m.skips, m.skipped_tokens, m.repeats) == (1, 3, 0)


def test_passing_over_spaces_and_punctuation_is_not_a_skip() -> None:
    path = [i for i in range(12) if TOKENS[i] not in " ."]
    m = analyze_alignment(walk(path, 12), TOKENS)
    assert (m.skips, m.skipped_tokens, m.incomplete) == (0, 0, False)


def test_passing_over_ipa_stress_and_length_is_not_a_skip_but_a_phone_is() -> None:
    ipa = list("ðə kˈæt sˈæt.")  # espeak-ng's IPA of "the cat sat."
    marks = [i for i, t in enumerate(ipa) if t in "ˈˌː"]
    path = [i for i in range(len(ipa)) if i not in marks]
    m = analyze_alignment(walk(path, len(ipa)), ipa)
    assert (m.skips, m.skipped_tokens) == (0, 0)
    path = [i for i in path if ipa[i] != "æ" or i < 8]  # the second "æ" (of "sat") never attended
    m = analyze_alignment(walk(path, len(ipa)), ipa)
    assert (m.skips, m.skipped_tokens) == (1, 1)


def test_weak_attention_is_a_skip_below_the_threshold_only() -> None:
    a = walk(list(range(12)), 12)
    a[a[:, 5] == 1.0] = np.eye(12)[6] * 0.95 + np.eye(12)[5] * 0.05  # "a" gets 0.05 at most
    assert analyze_alignment(a, TOKENS, skip_threshold=0.1).skips == 1
    assert analyze_alignment(a, TOKENS, skip_threshold=0.04).skips == 0


def test_one_jump_back_is_one_repeat() -> None:
    path = list(range(8)) + [4, 5, 6, 7] + list(range(8, 12))  # "cat " again after "sat" began
    m = analyze_alignment(walk(path, 12), TOKENS)
    assert (m.skips, m.repeats, m.incomplete) == (0, 1, False)


def test_two_separate_jumps_back_are_two_repeats_and_small_wobbles_none() -> None:
    path = list(range(6)) + [2, 3, 4, 5] + list(range(6, 10)) + [7, 8, 9, 10, 11]
    assert analyze_alignment(walk(path, 12), TOKENS).repeats == 2
    wobble = list(range(6)) + [5, 4, 5] + list(range(6, 12))  # one token back: not a repeat
    assert analyze_alignment(walk(wobble, 12), TOKENS, repeat_tokens=2).repeats == 0


def test_stall_is_incomplete() -> None:
    path = list(range(5)) + [5] * 40  # stuck on "c" until the step limit
    m = analyze_alignment(walk(path, 12), TOKENS, finished=False)
    assert m.incomplete and not m.finished
    early_stop = analyze_alignment(walk(list(range(7)), 12), TOKENS, finished=True)
    assert early_stop.incomplete and early_stop.skips == 1 and early_stop.skipped_tokens == 3
    no_stop = analyze_alignment(walk(list(range(12)), 12), TOKENS, finished=False)
    assert no_stop.incomplete  # read everything but never stopped


def test_duration_ratio_and_bad_shapes() -> None:
    m = analyze_alignment(walk(list(range(12)), 12), TOKENS, expected_steps=24)
    assert m.duration_ratio == 1.5
    assert np.isnan(analyze_alignment(np.eye(4)).duration_ratio)
    import pytest

    with pytest.raises(ValueError, match="tokens for an alignment"):
        analyze_alignment(np.eye(4), ["a"])
    with pytest.raises(ValueError, match="decoder steps, tokens"):
        analyze_alignment(np.zeros(4))
