"""Text front ends: raw text -> normalised text -> symbol ids.

Pure Python (no TensorFlow import), so the TFLite demo and other tools can reuse it.

Example:
    >>> from tf_tacokd.text import TextFrontEnd
    >>> fe = TextFrontEnd("zh")
    >>> fe.process("银行行长").normalized
    'yin2 hang2 hang2 zhang3'
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .english import normalize_english
from .mandarin import normalize_mandarin
from .phonemes import PHONEMIZERS, phonemize_english, prefetch
from .symbols import EOS, PAD, SymbolTable, symbol_table

if TYPE_CHECKING:
    from ..config import TextConfig

__all__ = [
    "TextFrontEnd",
    "Processed",
    "UnknownCharacterWarning",
    "SymbolTable",
    "symbol_table",
    "normalize_english",
    "normalize_mandarin",
    "PAD",
    "EOS",
]


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_SURROGATE = re.compile("[\udc80-\udcff]")

#: the longest text one call reads (normalisation is linear, but bounded all the same)
MAX_TEXT_CHARS = 100_000


class UnknownCharacterWarning(UserWarning):
    """Characters the front end cannot read were dropped."""


@dataclass(frozen=True)
class Processed:
    """The stages of one text: what the user gave, what the model reads, and the ids."""

    text: str
    normalized: str
    tokens: list[str]
    ids: list[int]
    dropped: list[str]
    #: what the model reads when it reads phonemes (text.phonemizer), else None
    phonemes: str | None = None


class TextFrontEnd:
    """Normalises text of one language and maps it to symbol ids.

    Args:
        language: "en" (characters) or "zh" (pinyin with tone digits, as characters).
        strict: if True, unknown characters raise ``ValueError`` instead of being
            dropped with an :class:`UnknownCharacterWarning`.
        prosody_marks: Mandarin only; DataBaker ``#1``-``#4`` marks are removed
            ("strip") or kept as pause symbols ("pause").
        latin_in_mandarin: Mandarin only; Latin letters that are not pinyin are read by
            their letter names ("spell") or dropped ("drop").
        phonemizer: English only; "espeak-ng" makes the model read espeak-ng's IPA of the
            normalised text instead of its letters (:mod:`.phonemes`), "none" the letters.

    Example:
        >>> TextFrontEnd("en").encode("Hi!")
        [9, 10, 29, 1]
    """

    def __init__(
        self,
        language: Literal["en", "zh"] = "en",
        strict: bool = False,
        prosody_marks: Literal["strip", "pause"] = "strip",
        latin_in_mandarin: Literal["spell", "drop"] = "spell",
        phonemizer: Literal["none", "espeak-ng"] = "none",
    ) -> None:
        if phonemizer not in PHONEMIZERS:
            raise ValueError(f"unknown phonemizer {phonemizer!r}: expected one of {', '.join(PHONEMIZERS)}")
        if phonemizer != "none" and language != "en":
            raise ValueError(f"phonemizer {phonemizer!r} is for English text; {language} text is read as "
                             "pinyin, which is already phonemic: use phonemizer = \"none\"")
        self.language = language
        self.strict = strict
        self.prosody_marks = prosody_marks
        self.latin_in_mandarin = latin_in_mandarin
        self.phonemizer = phonemizer
        self.symbols: SymbolTable = symbol_table(language, phonemes=phonemizer != "none")

    @classmethod
    def from_config(cls, cfg: "TextConfig") -> "TextFrontEnd":
        """Build the front end a :class:`~tf_tacokd.config.TextConfig` describes."""
        return cls(cfg.language, cfg.strict, cfg.prosody_marks, cfg.latin_in_mandarin, cfg.phonemizer)

    @classmethod
    def from_settings(cls, settings: dict[str, object]) -> "TextFrontEnd":
        """The front end :meth:`get_config` describes (settings saved before the phonemizer
        existed read letters)."""
        return cls(settings["language"], settings["strict"], settings["prosody_marks"],  # type: ignore[arg-type]
                   settings["latin_in_mandarin"], settings.get("phonemizer", "none"))  # type: ignore[arg-type]

    def get_config(self) -> dict[str, object]:
        """Settings that reproduce this front end (for run directories and TFLite sidecars)."""
        return {
            "language": self.language,
            "strict": self.strict,
            "prosody_marks": self.prosody_marks,
            "latin_in_mandarin": self.latin_in_mandarin,
            "phonemizer": self.phonemizer,
            "symbols": list(self.symbols.symbols),
        }

    def process(self, text: str) -> Processed:
        """Normalise ``text`` and map it to ids (ending with the end-of-sequence id).

        Raises:
            TypeError: ``text`` is not a string.
            ValueError: nothing pronounceable is left after normalisation, or (strict
                mode) the text contains characters the front end cannot read.
        """
        normalized, dropped = self._normalize(text)
        if self.phonemizer == "none":
            return Processed(text, normalized, self.symbols.tokens(normalized), self.symbols.encode(normalized),
                             dropped)
        phonemes = phonemize_english(normalized)
        unknown = self.symbols.unknown(phonemes)
        if unknown:  # espeak-ng gave IPA outside the table (a foreign word): never silently
            listed = " ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown)
            message = f"no symbol for espeak-ng's phonemes {listed} of {_quote(normalized)} ({phonemes!r})"
            if self.strict:
                raise ValueError(message + "; rephrase the text or use strict = false to drop them")
            warnings.warn(message + "; dropped", UnknownCharacterWarning, stacklevel=2)
            phonemes = "".join(c for c in phonemes if c not in unknown)
        tokens = self.symbols.tokens(phonemes)
        return Processed(text, normalized, tokens, self.symbols.encode(phonemes), dropped, phonemes)

    def _normalize(self, text: str) -> tuple[str, list[str]]:
        """``(normalised text, dropped characters)``; the checks and warnings of :meth:`process`."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"text too long: {len(text):,} characters (the front end reads at most "
                             f"{MAX_TEXT_CHARS:,} at a time); split it into smaller pieces")
        bad = _SURROGATE.search(text)
        if bad:  # undecodable bytes that reached us as surrogate escapes
            raise ValueError(f"text is not valid UTF-8: byte 0x{ord(bad.group(0)) - 0xDC00:02X} at character "
                             f"{bad.start()} of {_quote(text)}; re-encode it as UTF-8")
        original = text
        escapes = _ANSI.findall(text)
        text = _ANSI.sub(" ", text)  # terminal colour codes: "\x1b[31m" would be read "thirty-one m"
        if self.language == "en":
            normalized, dropped = normalize_english(text)
        else:
            normalized, dropped = normalize_mandarin(
                text, prosody_marks=self.prosody_marks, latin=self.latin_in_mandarin
            )
        if escapes:
            dropped = ["\x1b", *[c for c in dropped if c != "\x1b"]]
        if dropped:
            listed = " ".join(f"{c!r} (U+{ord(c):04X})" for c in dropped)
            message = f"{self.language} front end cannot read {listed} in {_quote(original)}"
            if self.language == "en" and any("\u3400" <= c <= "\u9fff" for c in dropped):
                message += " (Chinese text: use --lang zh / a zh model)"
            if self.strict:
                raise ValueError(message + "; remove them or use strict = false to drop them")
            warnings.warn(message + "; dropped", UnknownCharacterWarning, stacklevel=3)
        if not any(ch.isalpha() for ch in normalized):
            raise ValueError(
                f"nothing to pronounce in {_quote(text)}: it is empty after {self.language} "
                f"normalisation (normalised: {normalized!r})"
            )
        return normalized, dropped

    def prefetch(self, texts: list[str]) -> None:
        """Ask espeak-ng for the phonemes of many raw texts in a few calls (a cache that
        :meth:`process` reads); does nothing for a front end that reads letters or pinyin."""
        if self.phonemizer == "none":
            return
        normalized = []
        for text in texts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnknownCharacterWarning)
                try:
                    normalized.append(self._normalize(text)[0])
                except (TypeError, ValueError):
                    continue  # process() reports it
        prefetch(normalized)

    def normalize(self, text: str) -> str:
        """The normalised text (what is spoken; the model reads it, or its phonemes)."""
        return self._normalize(text)[0]

    def encode(self, text: str) -> list[int]:
        """Symbol ids of ``text``, ending with the end-of-sequence id."""
        return self.process(text).ids


def _quote(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
