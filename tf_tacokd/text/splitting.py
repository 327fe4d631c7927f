"""Splitting normalised text into utterances a Tacotron decodes in one piece.

Used by synthesis on the host (:mod:`tf_tacokd.synthesize`) and on devices
(:mod:`tf_tacokd.lite`), so both read long text the same way.
"""

from __future__ import annotations

import re

__all__ = ["MAX_UNITS", "split_sentences"]

#: the longest utterance decoded in one piece: characters of normalised English, syllables
#: of Mandarin pinyin (about 10 s of speech at espeak-ng's rate either way)
MAX_UNITS = {"en": 150, "zh": 40}
_ABBREVIATION = re.compile(r"^(?:[a-z]\.)+$")  # "r." "u.s.a." after normalisation: not a sentence end


def _units(words: list[str], lang: str) -> int:
    return len(words) if lang == "zh" else len(" ".join(words))


def split_sentences(normalized: str, lang: str = "en", max_units: int | None = None) -> list[str]:
    """Utterances of a *normalised* text: sentence ends first, then clauses, then words.

    Splitting after normalisation means a period inside "Dr.", "$5.50" or "p.m." never ends
    a sentence (they are "doctor", "five dollars, fifty cents", "p m" by then); a spelled
    initial such as "r." or "u.s.a." does not end one either. A sentence longer than
    ``max_units`` (characters in English, syllables in Mandarin; default :data:`MAX_UNITS`)
    is split at clause punctuation (``, : ;``) and, where a clause is still too long, between
    words (English) or syllables (Mandarin).

    Example:
        >>> split_sentences("doctor smith paid five dollars, fifty cents. my initials are r. t. m.")
        ['doctor smith paid five dollars, fifty cents.', 'my initials are r. t. m.']
        >>> split_sentences("ni3 hao3, wo3 hen3 hao3", "zh", max_units=3)
        ['ni3 hao3,', 'wo3 hen3 hao3']
    """
    budget = max_units or MAX_UNITS.get(lang, 150)
    sentences: list[list[str]] = [[]]
    for word in normalized.split():
        sentences[-1].append(word)
        if word[-1] in ".!?;" and not (lang == "en" and _ABBREVIATION.match(word)):
            sentences.append([])
    pieces: list[str] = []
    for words in filter(None, sentences):
        clauses: list[list[str]] = [[]]
        for word in words:
            clauses[-1].append(word)
            if word[-1] in ",:;":
                clauses.append([])
        current: list[str] = []
        for clause in filter(None, clauses):
            if current and _units(current + clause, lang) > budget:
                pieces.append(" ".join(current))
                current = []
            current += clause
            while _units(current, lang) > budget and len(current) > 1:
                cut = len(current) - 1
                while cut > 1 and _units(current[:cut], lang) > budget:
                    cut -= 1
                pieces.append(" ".join(current[:cut]))
                current = current[cut:]
        if current:
            pieces.append(" ".join(current))
    return pieces
