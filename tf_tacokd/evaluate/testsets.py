"""Test sentences: the built-in hard sets, the in-domain test split, or a user's file.

Built-in hard sets (written for this project, shipped in the package):

- ``hard_en``: 10 single letters, 16 spellings, 12 repeated numbers, 12 repeated words
  (the 50 after the categories of FastSpeech's hard sentences, as in the paper), 30 long
  sentences of ~134 characters and 10 very long ones of ~330 (90);
- ``hard_zh``: 16 single characters, 14 tongue twisters, 12 repeated numbers, 14 long sentences,
  8 long sentences with numbers and dates, 8 polyphone sentences, 5 repeated syllables, 6
  sentences with Latin letters and 10 very long sentences of ~90 characters (93).

``very_long`` (both languages) is twice the longest training utterance of the shipped voices:
length beyond anything seen in training, the out-of-domain case free-running training is for.

A sentence file is UTF-8 with one sentence per line, or ``category<TAB>text``; blank lines and
lines starting with ``#`` are ignored. A category must be one of the built-in sets' categories
(:func:`known_categories`) or be declared in a ``# categories: NAME NAME ...`` line before
it is used, so a typo or a stray tab inside a sentence is an error, not a new category.

Example:
    >>> s = builtin_hard("en")
    >>> len(s), s[0].id, s[0].category
    (90, 'single_letter-001', 'single_letter')
"""

from __future__ import annotations

import importlib.resources
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TestSentence", "builtin_hard", "indomain", "known_categories", "load_sentence_file",
           "load_sentences"]


@dataclass(frozen=True)
class TestSentence:
    """One test item.

    Attributes:
        id: unique, file-name safe (``category-NNN``, or the corpus utterance id).
        category: e.g. ``spelling``, ``long_sentence``, ``indomain``.
        text: what is synthesised.
        audio: the natural recording, for MCD (in-domain only).
        frames: the natural recording's mel frames, for the duration ratio (in-domain only).
    """

    id: str
    category: str
    text: str
    audio: Path | None = None
    frames: int | None = None


def _builtin_lines(lang: str) -> list[str]:
    res = importlib.resources.files("tf_tacokd.evaluate") / "sentences" / f"hard_{lang}.tsv"
    return res.read_text(encoding="utf-8").splitlines()


def known_categories() -> set[str]:
    """Categories a sentence file may use without declaring them: those of the built-in hard
    sets, ``custom`` (lines without a category) and ``indomain``."""
    found = {"custom", "indomain"}
    for lang in ("en", "zh"):
        found |= {line.partition("\t")[0].strip() for line in _builtin_lines(lang)
                  if "\t" in line and not line.lstrip().startswith("#")}
    return found


def _parse(lines: list[str], source: str, check_categories: bool = True) -> list[TestSentence]:
    out: list[TestSentence] = []
    counts: Counter[str] = Counter()
    allowed = known_categories() if check_categories else set()
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            head, sep, names = line.lstrip("# \t").partition(":")
            if sep and head.strip().lower() == "categories":
                allowed |= set(names.replace(",", " ").split())
            continue
        category, sep, text = line.partition("\t")
        if not sep:
            category, text = "custom", line
        category, text = category.strip() or "custom", text.strip()
        if not text:
            raise ValueError(f"{source}:{number}: no text after the category {category!r}")
        if not category.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{source}:{number}: category {category!r} must be letters, digits, _ or -")
        if check_categories and category not in allowed:
            import difflib

            near = difflib.get_close_matches(category, sorted(allowed), 1)
            raise ValueError(
                f"{source}:{number}: unknown category {category!r}"
                + (f" (did you mean {near[0]!r}?)" if near else "")
                + f"; known: {', '.join(sorted(allowed))}. Declare new ones in a '# categories: NAME ...' "
                "line above, or if the tab belongs to the sentence, replace it with a space")
        counts[category] += 1
        out.append(TestSentence(f"{category}-{counts[category]:03d}", category, text))
    if not out:
        raise ValueError(f"{source}: no sentences (one per line, or category<TAB>text)")
    return out


def load_sentence_file(path: str | Path) -> list[TestSentence]:
    """Sentences from a UTF-8 text file (see the module docstring for the format)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e
    return _parse(lines, str(path))


def builtin_hard(lang: str) -> list[TestSentence]:
    """The built-in hard set of ``lang`` ("en" or "zh")."""
    if lang not in ("en", "zh"):
        raise ValueError(f"no built-in hard set for language {lang!r}: use en or zh")
    return _parse(_builtin_lines(lang), f"hard_{lang}.tsv", check_categories=False)


def indomain(data_dir: str | Path, limit: int | None = None) -> list[TestSentence]:
    """The test split of a preprocessed data directory, with the natural recordings when the
    corpus is still where preprocessing read it (else ``audio`` is None and MCD is skipped)."""
    from ..data.corpora import read_corpus
    from ..data.dataset import load_manifest

    manifest = load_manifest(data_dir)
    rows = manifest.texts("test")
    if not rows:
        raise ValueError(f"{data_dir}: the test split is empty (data.test_size = 0?)")
    audio: dict[str, Path] = {}
    corpus = Path(manifest.data.get("corpus", ""))
    if corpus.is_dir():
        try:
            audio = {u.id: u.audio_path for u in read_corpus(corpus).utterances}
        except (OSError, ValueError):
            audio = {}
    return [TestSentence(uid, "indomain", text, audio.get(uid), n_frames) for uid, text, n_frames in rows[:limit or None]]


def load_sentences(spec: str, lang: str, data_dir: str | Path | None = None,
                   limit: int | None = None) -> list[TestSentence]:
    """``builtin-hard``, ``builtin-indomain`` (needs ``data_dir``) or a file path."""
    if spec == "builtin-hard":
        items = builtin_hard(lang)
    elif spec == "builtin-indomain":
        if data_dir is None or not Path(data_dir).is_dir():
            raise ValueError(f"builtin-indomain needs the run's preprocessed data directory; "
                             f"{data_dir} does not exist (re-run tacokd preprocess, or pass --data)")
        return indomain(data_dir, limit)
    elif Path(spec).is_file():
        items = load_sentence_file(spec)
    else:
        raise ValueError(f"--sentences {spec!r}: use builtin-hard, builtin-indomain or an existing file")
    return items[:limit] if limit else items
