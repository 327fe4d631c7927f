"""English phonemes from espeak-ng: normalised text -> the IPA a phoneme model reads.

Why: a character model must learn English letter-to-sound from its training sentences, and
from 10,000 of them it does not (RESULTS.md section 13: a teacher-forced character model
gets 35 % of the words it never saw wrong, 2.6 % of the frequent ones; Mandarin pinyin,
which is phonemic, reaches 3.9 % judge error free running). espeak-ng knows how every word
is pronounced; with ``text.phonemizer = "espeak-ng"`` the model reads its IPA instead of
letters (one symbol per IPA character: stress ``ˈ ˌ`` and length ``ː`` are symbols of their
own), keeping the sentence's punctuation as pauses and the spaces between words:

    "hello world, this is a test." -> "həlˈoʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst."

espeak-ng runs as a program (as for the built-in corpus), so it is needed wherever such a
model reads text: training, synthesis, the TFLite demo. One call reads many
punctuation-free chunks, one per line (:func:`prefetch`); results are cached per chunk.

This module is the one place tf_tacokd asks espeak-ng for phonemes (the judge's
per-word ``-x`` labels are :func:`espeak_phonemes`).

Example:
    >>> phonemize_english("hello world, this is a test.")  # doctest: +SKIP
    'həlˈoʊ wˈɜːld, ðɪs ɪz ɐ tˈɛst.'
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["ESPEAK_VOICES", "EspeakMissingError", "phonemize_english", "prefetch", "espeak_phonemes",
           "PHONEMIZERS"]

#: espeak-ng voice per language; never plain "cmn" for Mandarin: it reads tone digits as English
ESPEAK_VOICES = {"en": "en-us", "zh": "cmn-latn-pinyin"}
#: values of ``text.phonemizer``
PHONEMIZERS = ("none", "espeak-ng")

# punctuation the normalised English text keeps (prosody); a lone "-" between spaces is a pause
_BREAK = re.compile(r"([,.?!;:]|(?:^|(?<=\s))-(?=\s|$))")
_CACHE_LIMIT = 200_000
_cache: dict[tuple[str, str], str] = {}


class EspeakMissingError(RuntimeError):
    """espeak-ng (or the voice) is not installed."""


def _espeak(args: list[str], text: str) -> str:
    """stdout of ``espeak-ng -q ARGS`` reading ``text``; clear errors when it is missing or fails."""
    if shutil.which("espeak-ng") is None:
        raise EspeakMissingError("espeak-ng is not installed; it gives the phonemes this model reads. "
                                 "Install it with `apt-get install espeak-ng` (Debian/Ubuntu) and run again.")
    result = subprocess.run(["espeak-ng", "-q", *args], input=text, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"espeak-ng {' '.join(args)} failed on {text[:60]!r}: {result.stderr.strip()[:200]}")
    return result.stdout


def _chunks(normalized: str) -> list[str]:
    """The text between punctuation marks, and the marks themselves, in order."""
    return [p.strip() for p in _BREAK.split(normalized) if p.strip()]


def _is_words(chunk: str) -> bool:
    return any(c.isalnum() for c in chunk)


def prefetch(texts: Iterable[str], voice: str = "en-us", batch: int = 2000) -> None:
    """Phonemise the chunks of many normalised texts in a few espeak-ng calls (filling the cache
    :func:`phonemize_english` reads). A batch whose output has another number of lines than
    chunks (espeak-ng split or merged a clause) falls back to one call per chunk."""
    todo = list(dict.fromkeys(c for t in texts for c in _chunks(t)
                              if _is_words(c) and (voice, c) not in _cache))
    for k in range(0, len(todo), batch):
        part = todo[k:k + batch]
        lines = _espeak(["--ipa", "-v", voice], "\n".join(part) + "\n").splitlines()
        if len(lines) != len(part):
            lines = [" ".join(_espeak(["--ipa", "-v", voice], c + "\n").split()) for c in part]
        if len(_cache) + len(part) > _CACHE_LIMIT:
            _cache.clear()
        for chunk, line in zip(part, lines):
            _cache[(voice, chunk)] = " ".join(line.split())


def phonemize_english(normalized: str, voice: str = "en-us") -> str:
    """espeak-ng's IPA of normalised English text, punctuation kept (see the module docstring).

    Args:
        normalized: the output of :func:`~tf_tacokd.text.english.normalize_english`.
        voice: the espeak-ng voice.

    Raises:
        EspeakMissingError: espeak-ng is not installed.
    """
    prefetch([normalized], voice)
    out = ""
    for chunk in _chunks(normalized):
        if not _is_words(chunk):
            if chunk in ",.?!;:":
                out = out.rstrip() + chunk + " "
            elif chunk == "-":
                out += "- "
            continue
        out += _cache[(voice, chunk)] + " "
    return out.strip()


@lru_cache(maxsize=65536)
def espeak_phonemes(text: str, voice: str = "en-us") -> str:
    """espeak-ng's phonemes of ``text`` (``-x`` mnemonics), one space-separated token per
    word, stress (``'``, ``,``), linking (``-``) and pause (``_:``) marks removed (the
    intelligibility judge's English labels)."""
    out = re.sub(r"_[:!|]*", " ", _espeak(["-x", "-v", voice], text).replace("\n", " "))
    return " ".join(re.sub(r"[',\-]", "", out).split())
