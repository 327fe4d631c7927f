"""Symbol tables: the mapping between normalised text and integer ids.

Id 0 is padding and id 1 is end-of-sequence in every table, so batches can be
zero-padded and the encoder always sees where the text ends. The rest are the
characters a front end can emit. Multi-character symbols (Mandarin pause marks
``#1``-``#4``) are matched before single characters.

Example:
    >>> table = symbol_table("en")
    >>> table.encode("hi.")
    [9, 10, 33, 1]
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

PAD = "_"
EOS = "~"

#: Punctuation kept for prosody (and the apostrophe, which changes the letters' reading).
EN_PUNCTUATION = "!',-.:;?"
#: Mandarin prosody punctuation after full-width normalisation.
ZH_PUNCTUATION = "!,-.:;?"
#: espeak-ng's IPA for en-us, one symbol per character (text.phonemizer = "espeak-ng"):
#: vowels, consonants, stress (primary, secondary), length, syllabic mark (U+0329). Collected
#: from espeak-ng 1.51's rendering of the built-in corpus, plus the few it gives foreign words.
EN_IPA = ("a", "b", "d", "e", "f", "h", "i", "j", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u", "v",
          "w", "x", "z", "æ", "ç", "ð", "ŋ", "ɐ", "ɑ", "ɒ", "ɔ", "ə", "ɚ", "ɛ", "ɜ", "ɡ", "ɪ", "ɬ", "ɹ",
          "ɾ", "ʃ", "ʊ", "ʌ", "ʒ", "ʔ", "θ", "ᵻ", "ˈ", "ˌ", "ː", "\u0329")
#: DataBaker prosody marks, kept as pause symbols when text.prosody_marks = "pause".
ZH_PAUSES = ("#1", "#2", "#3", "#4")


@dataclass(frozen=True)
class SymbolTable:
    """An ordered list of symbols; the position of a symbol is its id.

    Args:
        language: the front end that produces text for this table ("en" or "zh").
        symbols: all symbols, starting with ``PAD`` and ``EOS``.
    """

    language: str
    symbols: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.symbols[:2] != (PAD, EOS):
            raise ValueError(f"a symbol table must start with {PAD!r}, {EOS!r}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("duplicate symbols in table")
        object.__setattr__(self, "_ids", {s: i for i, s in enumerate(self.symbols)})
        multi = sorted((s for s in self.symbols if len(s) > 1), key=len, reverse=True)
        pattern = "|".join([*(re.escape(s) for s in multi), r"(?s:.)"])
        object.__setattr__(self, "_pattern", re.compile(pattern))

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def eos_id(self) -> int:
        return 1

    def tokens(self, text: str) -> list[str]:
        """Split normalised text into symbols (multi-character symbols first)."""
        return self._pattern.findall(text)

    def unknown(self, text: str) -> list[str]:
        """Tokens of ``text`` that are not in the table, in order of first appearance."""
        seen: dict[str, None] = {}
        for tok in self.tokens(text):
            if tok not in self._ids or tok in (PAD, EOS):
                seen.setdefault(tok, None)
        return list(seen)

    def encode(self, text: str, add_eos: bool = True) -> list[int]:
        """Ids of normalised ``text``; a symbol outside the table is a ``ValueError``."""
        ids = []
        for tok in self.tokens(text):
            i = self._ids.get(tok)
            if i is None or i < 2:
                raise ValueError(f"symbol {tok!r} is not in the {self.language} symbol table")
            ids.append(i)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``, without padding and end-of-sequence."""
        return "".join(self.symbols[i] for i in ids if i >= 2)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (for run directories and TFLite sidecars)."""
        return {"language": self.language, "pad": PAD, "eos": EOS, "symbols": list(self.symbols)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "SymbolTable":
        return cls(language=str(data["language"]), symbols=tuple(data["symbols"]))  # type: ignore[arg-type]


def symbol_table(language: str, phonemes: bool = False) -> SymbolTable:
    """The symbol table of a language ("en": characters, or with ``phonemes`` espeak-ng's IPA;
    "zh": pinyin characters and tones)."""
    if phonemes:
        if language != "en":
            raise ValueError(f"phoneme symbols exist for English only, not {language!r} (pinyin is phonemic)")
        return SymbolTable(language=language, symbols=(PAD, EOS, *EN_IPA, " ", *EN_PUNCTUATION.replace("'", "")))
    if language == "en":
        chars = list(string.ascii_lowercase) + [" "] + list(EN_PUNCTUATION)
    elif language == "zh":
        # Pinyin uses a-z (with "v" for u-umlaut, as pypinyin and DataBaker write it),
        # tone digits 1-5 (5 = neutral tone), the space between syllables, punctuation.
        chars = list(string.ascii_lowercase) + list("12345") + [" "] + list(ZH_PUNCTUATION)
        chars += list(ZH_PAUSES)
    else:
        raise ValueError(f"unknown language {language!r}: expected 'en' or 'zh'")
    return SymbolTable(language=language, symbols=(PAD, EOS, *chars))
