"""English text normalisation: raw text -> lower-case characters the model reads.

Order of the rules (each one assumes the previous have run):
Unicode compatibility forms -> currency -> abbreviations -> times -> phone-like
digit runs -> percentages -> ordinals -> decimals -> years -> cardinals ->
ASCII transliteration (unidecode) -> lower case -> symbols outside the table
dropped -> whitespace collapsed.

Example:
    >>> normalize_english("Dr. Smith paid $5.50 at 7:07 on May 3rd, 1977.")[0]
    'doctor smith paid five dollars, fifty cents at seven oh seven on may third, nineteen seventy-seven.'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

from unidecode import unidecode

if TYPE_CHECKING:
    import inflect

__all__ = ["normalize_english", "number_to_words", "year_to_words"]

# Cardinals longer than this are read digit by digit (inflect stops at decillions,
# and nobody reads a 40-digit number as a cardinal anyway).
_MAX_CARDINAL_DIGITS = 15

_ABBREVIATIONS = [
    (re.compile(rf"\b{abbr}\.", re.IGNORECASE), expansion)
    for abbr, expansion in [
        ("mrs", "misses"),
        ("mr", "mister"),
        ("ms", "miss"),
        ("dr", "doctor"),
        ("drs", "doctors"),
        ("st", "saint"),
        ("co", "company"),
        ("jr", "junior"),
        ("sr", "senior"),
        ("maj", "major"),
        ("gen", "general"),
        ("rev", "reverend"),
        ("lt", "lieutenant"),
        ("hon", "honorable"),
        ("sgt", "sergeant"),
        ("capt", "captain"),
        ("col", "colonel"),
        ("esq", "esquire"),
        ("ltd", "limited"),
        ("ft", "fort"),
        ("prof", "professor"),
        ("mt", "mount"),
        ("no", "number"),
        ("vs", "versus"),
        ("etc", "et cetera"),
    ]
] + [
    (re.compile(r"\be\.g\.", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.e\.", re.IGNORECASE), "that is"),
]
# "No." only means "number" before a digit ("No. 5"), not at the end of "Say no."
_ABBREVIATIONS = [
    (re.compile(r"\bno\.(?=\s*\d)", re.IGNORECASE), "number") if exp == "number" else (pat, exp)
    for pat, exp in _ABBREVIATIONS
]

_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
}
_CURRENCY_RE = re.compile(r"([$£€¥])\s?(\d[\d,]*)(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion)\b)?")
_TIME_RE = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)(?:\s?([ap])\.?\s?m\b\.?)?", re.IGNORECASE)
_PHONE_RE = re.compile(
    r"(?<![\d.,])(?:\+\d{1,3}[\s-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[.-]\d{3,4}(?![\d])"
    r"|(?<![\d.,])\d{3}-\d{4}(?![\d-])"
)
_LEADING_ZERO_RE = re.compile(r"(?<![\d.,])0\d+(?![\d.,]\d)")
_COMMA_NUMBER_RE = re.compile(r"(?<=\d),(?=\d{3}\b)")
# (?<!\d) anchors a number at its first digit: without it a long digit run with no "%" or "."
# costs quadratic time (40,000 digits took 97 s)
_PERCENT_RE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s?%")
_DECADE_RE = re.compile(r"(?:'|\b(1[1-9]|20)|\b)(\d)0s\b")
_PLURAL_NUMBER_RE = re.compile(r"\b([1-9]\d*)s\b")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"(?<!\d)(\d*)\.(\d+)")
_MINUS_RE = re.compile(r"(?<![\w.])-(?=[$£€¥]?\.?\d)")
_VERSION_RE = re.compile(r"(?<![\d.])\d{1,6}(?:\.\d{1,6}){2,}(?![.\d])")  # 1.2.3: "one point two point three"
_NUMBER_RE = re.compile(r"\d+")
_FRACTION_RE = re.compile(r"(?<![\d/])(\d+)/([2-9]|10)(?![\d/])")
_WS_RE = re.compile(r"\s+")
# Han, kana and hangul: unidecode would read 打 as "da" (toneless pinyin) without a word
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@lru_cache(maxsize=1)
def _engine() -> inflect.engine:
    """inflect's engine, imported on first use: importing inflect takes seconds (typeguard
    instruments it), and text without numbers, plurals or ordinals never needs it."""
    import inflect

    return inflect.engine()


def _digits(text: str, zero: str = "zero") -> str:
    return " ".join(zero if d == "0" else _DIGITS[int(d)] for d in text if d.isdigit())


def number_to_words(n: int | str) -> str:
    """A cardinal in words: ``123`` -> ``"one hundred twenty-three"``.

    Very long digit strings are read digit by digit.
    """
    text = str(n).lstrip("+")
    negative = text.startswith("-")
    text = text.lstrip("-").lstrip("0") or "0"
    if len(text) > _MAX_CARDINAL_DIGITS:
        words = _digits(text)
    else:
        words = _engine().number_to_words(int(text), andword="").replace(",", "")
    return f"minus {words}" if negative else words


def year_to_words(year: int) -> str:
    """A year as people say it: 1977 -> nineteen seventy-seven, 2005 -> two thousand five."""
    if 2000 <= year < 2010 or year % 1000 == 0:
        return number_to_words(year)
    hi, lo = divmod(year, 100)
    if lo == 0:
        return f"{number_to_words(hi)} hundred"
    if lo < 10:
        return f"{number_to_words(hi)} oh {number_to_words(lo)}"
    return f"{number_to_words(hi)} {number_to_words(lo)}"


def _currency(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m.group(1)]
    whole = int(m.group(2).replace(",", "") or 0)
    scale = m.group(4)
    if scale:  # $5.5 million -> five point five million dollars
        amount = number_to_words(whole) + (f" point {_digits(m.group(3))}" if m.group(3) else "")
        return f" {amount} {scale} {many} "
    cents = int((m.group(3) or "0")[:2].ljust(2, "0"))
    parts = []
    if whole or not cents:
        parts.append(f"{number_to_words(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}")
    return " " + ", ".join(parts) + " "


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if minute == 0:
        words = f"{number_to_words(hour)} o'clock" if not m.group(3) else number_to_words(hour)
    elif minute < 10:
        words = f"{number_to_words(hour)} oh {number_to_words(minute)}"
    else:
        words = f"{number_to_words(hour)} {number_to_words(minute)}"
    if m.group(3):
        words += f" {m.group(3).lower()} m"
    return f" {words} "


def _phone(m: re.Match[str]) -> str:
    groups = re.findall(r"\d+", m.group(0))
    return " " + ", ".join(_digits(g, zero="oh") for g in groups) + " "


def _decade(m: re.Match[str]) -> str:
    """1980s -> nineteen eighties, '80s and 80s -> eighties, 2000s -> two thousands."""
    tens = int(m.group(2))
    if m.group(1) is None:
        if tens == 0:
            return m.group(0)
        words = number_to_words(tens * 10)
    else:
        words = year_to_words(int(m.group(1) + m.group(2) + "0"))
    head, _, last = words.rpartition(" ")
    return f" {head} {_engine().plural(last)} "


def _plural_number(m: re.Match[str]) -> str:
    """100s -> hundreds, 1000s -> thousands, 747s -> seven hundred forty-sevens."""
    words = number_to_words(m.group(1)).removeprefix("one ") if m.group(1) in ("100", "1000", "1000000") else number_to_words(m.group(1))
    head, _, last = words.rpartition(" ")
    return f" {head} {_engine().plural(last)} "


def _ordinal(m: re.Match[str]) -> str:
    digits = m.group(1).lstrip("0") or "0"
    if len(digits) > _MAX_CARDINAL_DIGITS:  # beyond inflect's range: read digit by digit
        return f" {_digits(digits)} "
    words = _engine().number_to_words(_engine().ordinal(int(digits)), andword="")
    return f" {words.replace(',', '')} "


def _decimal(m: re.Match[str]) -> str:
    whole = number_to_words(m.group(1)) if m.group(1) else "zero"  # ".5" is "zero point five"
    return f" {whole} point {_digits(m.group(2))} "


def _fraction(m: re.Match[str]) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    name = "half" if den == 2 else _engine().ordinal(number_to_words(den))
    if den == 4:
        name = "quarter"
    return f" {number_to_words(num)} {name if num == 1 else _engine().plural(name)} "


def _cardinal_or_year(m: re.Match[str]) -> str:
    text = m.group(0)
    if len(text) > _MAX_CARDINAL_DIGITS:  # also keeps int() below Python's 4300-digit limit
        return f" {_digits(text)} "
    value = int(text)
    if len(text) == 4 and 1000 < value < 2100:
        return f" {year_to_words(value)} "
    return f" {number_to_words(text)} "


def _expand_numbers(text: str) -> str:
    # a minus sign before a number or an amount ("-5", "-0.5", "-.5", "-$3.50"); "1-2" is a range
    text = _MINUS_RE.sub(" minus ", text)
    text = _VERSION_RE.sub(lambda m: " " + " point ".join(number_to_words(p) for p in m.group(0).split(".")) + " ",
                           text)
    text = _CURRENCY_RE.sub(_currency, text)
    text = _TIME_RE.sub(_time, text)
    text = _PHONE_RE.sub(_phone, text)
    text = _COMMA_NUMBER_RE.sub("", text)
    text = _LEADING_ZERO_RE.sub(lambda m: " " + _digits(m.group(0), zero="oh") + " ", text)
    text = _PERCENT_RE.sub(lambda m: f"{m.group(1)} percent ", text)
    text = _DECADE_RE.sub(_decade, text)
    text = _PLURAL_NUMBER_RE.sub(_plural_number, text)
    text = _ORDINAL_RE.sub(_ordinal, text)
    text = _DECIMAL_RE.sub(_decimal, text)
    text = _FRACTION_RE.sub(_fraction, text)
    return _NUMBER_RE.sub(_cardinal_or_year, text)


# Characters that carry no sound of their own: removed silently, or mapped to a pause.
_SILENT_CHARS = '"`*_#~'
_SILENT = str.maketrans({c: " " for c in _SILENT_CHARS})
_TO_PAUSE = str.maketrans({c: " , " for c in "()[]{}"} | {"/": " "})
_WORDS = [("&", " and "), ("+", " plus "), ("@", " at "), ("=", " equals ")]
# unidecode would spell these as the letters "c", "r", "tm"
_SYMBOL_WORDS = [("©", " copyright "), ("®", " registered "), ("™", " trademark ")]


def normalize_english(text: str, allowed: frozenset[str] | None = None) -> tuple[str, list[str]]:
    """Normalise English text.

    Args:
        text: any Unicode string.
        allowed: the characters the symbol table accepts (default: letters, space and
            the prosody punctuation ``, . ? ! ; : -`` plus the apostrophe).

    Returns:
        ``(normalised, dropped)``: the normalised text and the characters that were
        dropped because nothing could be made of them (in order of appearance).
    """
    from .symbols import symbol_table

    allowed = allowed or frozenset(symbol_table("en").symbols[2:])
    for symbol, word in _SYMBOL_WORDS:  # before NFKC, which turns "™" into "TM"
        text = text.replace(symbol, word)
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2044", "/")
    for pattern, expansion in _ABBREVIATIONS:
        text = pattern.sub(expansion, text)
    text = _expand_numbers(text)
    for symbol, word in _WORDS:
        text = text.replace(symbol, word)
    text = text.replace("%", " percent ")
    dropped: dict[str, None] = {}
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch.isspace() or category in ("Cf", "Zs", "Zl", "Zp"):
            out.append(" ")
            continue
        if category == "Cc" or _CJK.match(ch):  # control characters; Chinese is --lang zh's job
            dropped.setdefault(ch, None)
            out.append(" ")
            continue
        if category.startswith("M"):  # combining marks left after NFKC carry no sound
            continue
        raw = ch if ch.isascii() else unidecode(ch)
        ascii_ = raw.translate(_SILENT).translate(_TO_PAUSE).lower()
        # unidecode spells a few symbols with digits (superscripts, some fractions)
        ascii_ = _NUMBER_RE.sub(lambda m: " " + number_to_words(m.group(0)) + " ", ascii_)
        if not raw.strip() or any(c not in allowed and not c.isspace() for c in ascii_):
            dropped.setdefault(ch, None)
        out.append("".join(c if c in allowed else " " for c in ascii_))
    text = _WS_RE.sub(" ", "".join(out))
    # tidy pauses: no space before punctuation, no run of commas, nothing dangling at the start
    text = re.sub(r"\s+([,.;:?!])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"-{2,}", "-", text)
    # "fifth -floor" -> "fifth-floor"; a spaced dash ("here - there") stays a pause
    text = re.sub(r"(?<=\w)(?:\s+-(?=\w)|-\s+(?=\w))", "-", text)
    text = re.sub(r"^[\s,;:.-]+", "", text).strip()
    return text, list(dropped)
