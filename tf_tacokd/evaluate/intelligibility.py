"""Intelligibility scores of a transcript against its reference text (pure functions).

The reference ``r`` and the hypothesis ``h`` are token sequences aligned by the minimum
number of edits (Levenshtein, unit costs); among alignments of that cost, substitutions
are preferred to a deletion plus an insertion. With ``N = len(r)`` tokens and ``S``,
``D``, ``I`` substitutions, deletions and insertions in that alignment:

- error rate = ``(S + D + I) / N`` (WER over words, CER over characters, syllable error
  rate over pinyin syllables);
- ins+del rate = ``(I + D) / N``: the paper's robustness figure (a skipped word is a
  deletion, a repeated one an insertion; Liu et al. 2020, Table 1).

The judge (:mod:`tf_tacokd.judge`) writes English as espeak-ng phonemes, one token per
word; :func:`label_scores` compares such labels (words = tokens, characters = phoneme
symbols). :func:`intelligibility_scores` compares plain texts (another recogniser's output).

Units of plain texts:

- English words: the normalised text (``TextFrontEnd.normalize``) lower-cased, hyphens
  read as spaces, everything but ``a-z``, apostrophe and space dropped
  (:func:`english_words`). Characters for the CER are the letters and apostrophes of
  those words, spaces excluded (:func:`english_chars`).
- Mandarin syllables: pinyin with a tone digit, ``v`` for u-umlaut, a missing tone read
  as the neutral tone 5, and erhua written either way (``hua4r``, ``huar4`` or
  ``hua4 r5``) folded into one syllable ``huar4`` (:func:`pinyin_syllables`). Without
  tones (:func:`toneless`), ``ma1`` and ``ma3`` count as the same syllable.

Example:
    >>> edit_counts("the cat sat".split(), "the cat cat sat".split())
    EditCounts(reference=3, substitutions=0, deletions=0, insertions=1)
    >>> pinyin_syllables("ni3 hao3, hua4 r5!")
    ['ni3', 'hao3', 'huar4']
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "EditCounts",
    "edit_counts",
    "english_words",
    "english_chars",
    "pinyin_syllables",
    "toneless",
    "intelligibility_scores",
    "label_scores",
    "alignment",
    "phoneme_word_counts",
    "phoneme_word_status",
    "surface_tones",
]


@dataclass(frozen=True)
class EditCounts:
    """Edits that turn a reference of ``reference`` tokens into a hypothesis."""

    reference: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def rate(self) -> float:
        """(S + D + I) / N; a hypothesis of an empty reference scores its insertions."""
        return self.errors / max(self.reference, 1)

    def ins_del_rate(self) -> float:
        """(I + D) / N, the paper's robustness figure."""
        return (self.insertions + self.deletions) / max(self.reference, 1)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def edit_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> EditCounts:
    """Substitutions, deletions and insertions of a minimum-edit alignment.

    Args:
        reference: reference tokens (words, characters or syllables).
        hypothesis: recognised tokens.
    """
    ops = alignment(reference, hypothesis)
    return EditCounts(len(reference), sum(o == "S" for o, _ in ops), sum(o == "D" for o, _ in ops),
                      sum(o == "I" for o, _ in ops))


def alignment(reference: Sequence[str], hypothesis: Sequence[str]) -> list[tuple[str, int]]:
    """A minimum-edit alignment as operations in reference order: ``("M" | "S" | "D", i)`` for
    reference token ``i`` (matched, substituted, deleted) and ``("I", i)`` for a hypothesis
    token inserted before reference token ``i`` (``i = len(reference)`` at the end)."""
    n, m = len(reference), len(hypothesis)
    # cost[i, j] = edits between reference[:i] and hypothesis[:j]
    cost = np.zeros((n + 1, m + 1), np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        same = np.fromiter((reference[i - 1] == h for h in hypothesis), bool, m)
        row, prev = cost[i], cost[i - 1]
        diag = prev[:-1] + ~same
        up = prev[1:] + 1
        best = np.minimum(diag, up)
        # insertions depend on the row being built: a running minimum along j
        for j in range(1, m + 1):
            row[j] = min(best[j - 1], row[j - 1] + 1)
    # trace back, preferring a match/substitution, then a deletion, then an insertion
    i, j = n, m
    ops: list[tuple[str, int]] = []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            ops.append(("S" if reference[i - 1] != hypothesis[j - 1] else "M", i - 1))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            ops.append(("D", i - 1))
            i -= 1
        else:
            ops.append(("I", i))
            j -= 1
    return ops[::-1]


_EN_KEEP = re.compile(r"[^a-z' ]+")


def english_words(text: str) -> list[str]:
    """Words of a normalised English text: lower case, hyphens as spaces, ``a-z'`` only."""
    text = _EN_KEEP.sub(" ", text.lower().replace("-", " "))
    return [w.strip("'") for w in text.split() if w.strip("'")]


def english_chars(text: str) -> list[str]:
    """Characters scored by the CER: the letters and apostrophes of :func:`english_words`."""
    return list("".join(english_words(text)))


_SYLLABLE = re.compile(r"[a-z]+[1-5]?")


def pinyin_syllables(text: str) -> list[str]:
    """Toned pinyin syllables of a text, erhua folded (``hua4 r5`` -> ``huar4``).

    Punctuation and anything that is not a-z or a tone digit separates syllables; ``ü``
    becomes ``v``; a syllable without a tone digit has the neutral tone 5.
    """
    text = text.lower().replace("ü", "v").replace("u:", "v")
    out: list[str] = []
    for token in _SYLLABLE.findall(text):
        base, tone = (token[:-1], token[-1]) if token[-1].isdigit() else (token, "5")
        if base == "r" and out:  # erhua as its own syllable ("hua4 r5"), or after the tone ("hua4r")
            prev = out[-1]
            out[-1] = prev[:-1] + "r" + prev[-1]
            continue
        out.append(base + tone)
    return out


def toneless(syllables: Sequence[str]) -> list[str]:
    """Syllables without their tone digits."""
    return [s.rstrip("12345") for s in syllables]


def intelligibility_scores(reference: str, hypothesis: str, lang: str) -> dict[str, float]:
    """Every intelligibility figure of one utterance.

    Args:
        reference: the normalised text that was to be spoken.
        hypothesis: what the recogniser heard.
        lang: "en" (words and characters) or "zh" (pinyin syllables, with and without tones).

    Returns:
        en: ``wer``, ``cer``, ``insdel_word`` and ``insdel_char`` (rates), ``words`` and
        ``chars`` (reference lengths), ``word_ins``, ``word_del``, ``word_sub``; zh: ``ser``
        (tone-syllable error rate), ``ser_toneless``, ``insdel_syllable``, ``syllables``,
        ``syl_ins``, ``syl_del``, ``syl_sub``, plus ``cer`` and ``chars`` over pinyin letters.
    """
    if lang == "en":
        w = edit_counts(english_words(reference), english_words(hypothesis))
        c = edit_counts(english_chars(reference), english_chars(hypothesis))
        return {"wer": w.rate(), "cer": c.rate(), "insdel_word": w.ins_del_rate(),
                "insdel_char": c.ins_del_rate(), "words": w.reference, "chars": c.reference,
                "word_ins": w.insertions, "word_del": w.deletions, "word_sub": w.substitutions}
    if lang == "zh":
        ref, hyp = pinyin_syllables(reference), pinyin_syllables(hypothesis)
        s = edit_counts(ref, hyp)
        t = edit_counts(toneless(ref), toneless(hyp))
        c = edit_counts(list("".join(ref)), list("".join(hyp)))
        return {"ser": s.rate(), "ser_toneless": t.rate(), "insdel_syllable": s.ins_del_rate(),
                "cer": c.rate(), "syllables": s.reference, "chars": c.reference, "syl_ins": s.insertions,
                "syl_del": s.deletions, "syl_sub": s.substitutions}
    raise ValueError(f"unknown language {lang!r}: expected 'en' or 'zh'")


def phoneme_word_status(reference: str, hypothesis: str) -> tuple[list[str], int]:
    """Each reference word's fate in a phoneme transcript, word boundaries ignored:
    ``("C" | "S" | "D" per word, inserted words)``.

    ``reference`` holds one token of phonemes per word; ``hypothesis`` is recognised
    phonemes (its spaces are not trusted: a listener hears no gap between words, and
    espeak-ng itself writes "in the" as one token). The phoneme strings are aligned; a
    reference word is *correct* if all its phonemes are matched with nothing inserted
    inside it, *deleted* if less than half of its phonemes are matched (it was not heard:
    a drone or a mumble that happens to share a vowel with it does not say it), else
    *substituted*. A run of ``k >= 2`` inserted
    phonemes counts ``max(1, round(k / w))`` inserted words (``w``: the reference's mean
    phonemes per word), wherever the alignment puts it (a repeated word may be aligned
    across a word's own phonemes); a single inserted phoneme makes the word it falls in, or
    the word before it, wrong instead.
    """
    words = reference.split()
    ref_chars: list[str] = []
    word_of: list[int] = []
    for k, w in enumerate(words):
        ref_chars += list(w)
        word_of += [k] * len(w)
    hyp_chars = list(hypothesis.replace(" ", ""))
    n_words = len(words)
    if not n_words:
        return [], 1 if hyp_chars else 0
    matched = [0] * n_words
    deleted = [0] * n_words
    broken = [False] * n_words  # a substitution or an insertion inside the word
    runs: list[tuple[int, int]] = []  # (inserted phonemes, the reference position they precede)
    for op, i in alignment(ref_chars, hyp_chars):
        if op == "M":
            matched[word_of[i]] += 1
        elif op == "S":
            broken[word_of[i]] = True
        elif op == "D":
            deleted[word_of[i]] += 1
        elif runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0] + 1, i)
        else:
            runs.append((1, i))
    mean_len = len(ref_chars) / n_words
    insertions = 0
    for k, i in runs:
        if k >= 2:
            insertions += max(1, round(k / mean_len))
        else:
            broken[word_of[i - 1] if i > 0 else 0] = True
    status = []
    for k, w in enumerate(words):
        if matched[k] * 2 < len(w):  # less than half of it heard: not said
            status.append("D")
        elif broken[k] or deleted[k] or matched[k] < len(w):
            status.append("S")
        else:
            status.append("C")
    return status, insertions


def phoneme_word_counts(reference: str, hypothesis: str) -> EditCounts:
    """Word errors of a phoneme transcript, word boundaries ignored (the counts of
    :func:`phoneme_word_status`).

    Example:
        >>> phoneme_word_counts("h@loU w3:ld", "h@loU w3:d")
        EditCounts(reference=2, substitutions=1, deletions=0, insertions=0)
    """
    status, insertions = phoneme_word_status(reference, hypothesis)
    return EditCounts(len(status), status.count("S"), status.count("D"), insertions)


def surface_tones(syllables: Sequence[str]) -> list[str]:
    """Tones as they are heard: third-tone sandhi (a 3rd tone before another 3rd tone is
    said as a 2nd, left to right: ``ni3 hao3`` -> ``ni2 hao3``). A recogniser hears the
    surface tone, the text has the underlying one; both sides are compared after this.
    """
    out = list(syllables)
    for k in range(len(out) - 1):
        if out[k].endswith("3") and syllables[k + 1].endswith("3"):
            out[k] = out[k][:-1] + "2"
    return out


def label_scores(reference: str, hypothesis: str, lang: str) -> dict[str, float]:
    """Like :func:`intelligibility_scores`, for texts already in the judge's label space
    (:func:`tf_tacokd.judge.frontend.label_text`). English: words counted by
    :func:`phoneme_word_counts` (word boundaries ignored) and ``cer`` over phoneme symbols
    (the phoneme error rate). Mandarin: syllables counted the same way over their letters
    and tone digit (a syllable with nothing heard is deleted, a wrong tone is a
    substitution), after third-tone sandhi on both sides (:func:`surface_tones`), with and
    without tones.

    Example:
        >>> label_scores("h@loU w3:ld", "h@loU h@loU w3:ld", "en")["word_ins"]
        1
        >>> label_scores("h@loU w3:ld", "h@loUw3:ld", "en")["wer"]  # a missing gap is no error
        0.0
    """
    if lang == "zh":
        ref, hyp = surface_tones(pinyin_syllables(reference)), surface_tones(pinyin_syllables(hypothesis))
        s = phoneme_word_counts(" ".join(ref), " ".join(hyp))
        t = phoneme_word_counts(" ".join(toneless(ref)), " ".join(toneless(hyp)))
        c = edit_counts(list("".join(ref)), list("".join(hyp)))
        return {"ser": s.rate(), "ser_toneless": t.rate(), "insdel_syllable": s.ins_del_rate(),
                "cer": c.rate(), "syllables": s.reference, "chars": c.reference, "syl_ins": s.insertions,
                "syl_del": s.deletions, "syl_sub": s.substitutions}
    if lang != "en":
        raise ValueError(f"unknown language {lang!r}: expected 'en' or 'zh'")
    w = phoneme_word_counts(reference, hypothesis)
    c = edit_counts(list(reference.replace(" ", "")), list(hypothesis.replace(" ", "")))
    return {"wer": w.rate(), "cer": c.rate(), "insdel_word": w.ins_del_rate(),
            "insdel_char": c.ins_del_rate(), "words": w.reference, "chars": c.reference,
            "word_ins": w.insertions, "word_del": w.deletions, "word_sub": w.substitutions}
