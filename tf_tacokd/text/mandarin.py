"""Mandarin text normalisation: Hanzi (or pinyin) -> pinyin with tone digits.

The paper feeds "pinyin sequence with tones" to the encoder as characters; this
module produces that string: syllables separated by spaces, tones as digits 1-5
(5 = neutral tone), "v" for u-umlaut, prosody punctuation attached to the
syllable before it.

Rules, in order:
- Unicode compatibility forms (full-width ASCII and digits) are folded; Chinese
  punctuation becomes ``, . ? ! ; :``; quotes are silent; brackets become pauses.
- DataBaker prosody marks ``#1``-``#4`` are stripped or kept as pause symbols.
- Pinyin already in the text (``ka2 er2 pu3``, as DataBaker label lines) is kept.
- Numbers are read in Chinese: digits before 年 one by one (2026年 -> er4 ling2 er4
  liu4 nian2), phone numbers (11+ digits, or 010-12345678) one by one with 1 as
  yao1, numbers with a leading zero one by one, decimals,
  percentages, times (7:30 -> qi1 dian3 san1 shi2 fen1), ranges (3-5 -> san1 dao4
  wu3), negative numbers, and otherwise as quantities (138 -> yi1 bai3 san1 shi2 ba1),
  always with citation tones.
- Hanzi go through pypinyin (``Style.TONE3``), phrase-aware, so polyphones follow
  their words (银行行长 -> yin2 hang2 hang2 zhang3).
- Latin letters that are not pinyin are spelled with their Mandarin letter names
  (config ``text.latin_in_mandarin = "spell"``) or dropped ("drop").

Example:
    >>> normalize_mandarin("银行行长2026年来了。")[0]
    'yin2 hang2 hang2 zhang3 er4 ling2 er4 liu4 nian2 lai2 le5.'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

__all__ = ["normalize_mandarin", "number_to_hanzi", "is_pinyin_syllable"]

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAN_RE = re.compile(f"[{_HAN}]")
_DIGITS = "零一二三四五六七八九"
# Beyond this many digits a number is read digit by digit.
_MAX_CARDINAL_DIGITS = 16

# Mandarin names of the Latin letters, in pinyin (how they are commonly read aloud).
_LETTER_NAMES = {
    "a": "ei1", "b": "bi4", "c": "xi1", "d": "di4", "e": "yi4", "f": "ai2 fu5",
    "g": "ji4", "h": "ai2 qi1", "i": "ai4", "j": "jie4", "k": "kai4", "l": "ai2 le5",
    "m": "ai2 mu5", "n": "en1", "o": "ou1", "p": "pi4", "q": "qiu1", "r": "a4",
    "s": "ai2 si1", "t": "ti4", "u": "you1", "v": "wei1", "w": "da2 bu5 liu5",
    "x": "ai2 ke4 si1", "y": "wai4", "z": "zei4",
}  # fmt: skip

# Numbers are read with citation tones from this table rather than through pypinyin,
# whose phrase dictionary writes the sandhi of 一 in some words (一百 yi4) and not
# others: a number in digits reads the same way wherever it stands.
_NUMBER_PINYIN = {
    "零": "ling2", "一": "yi1", "幺": "yao1", "二": "er4", "两": "liang3", "三": "san1",
    "四": "si4", "五": "wu3", "六": "liu4", "七": "qi1", "八": "ba1", "九": "jiu3",
    "十": "shi2", "百": "bai3", "千": "qian1", "万": "wan4", "亿": "yi4", "点": "dian3",
    "负": "fu4", "分": "fen1", "之": "zhi1", "整": "zheng3", "到": "dao4",
}  # fmt: skip

_PUNCT_MAP = {
    "。": ".", "、": ",", "，": ",", "．": ".", "！": "!", "？": "?", "：": ":", "；": ";",
    "…": ".", "—": ",", "–": "-", "～": " ", "~": " ", "·": " ", "・": " ",
}  # fmt: skip
_SILENT = set("\"'`“”‘’「」『』《》〈〉«»*_")
_BRACKETS = set("()[]{}（）【】〔〕［］｛｝")
_PUNCT = set(",.?!;:-")

_TOKEN_RE = re.compile(
    r"(?P<pause>#[1-4])"
    r"|(?P<time>(?<!\d)(?:[01]?\d|2[0-3]):[0-5]\d(?!\d))"
    r"|(?P<phone>(?<!\d)(?:0\d{2,3}-\d{7,8}|1\d{2}-\d{4}-\d{4})(?!\d))"
    r"|(?P<year>(?<!\d)\d{2,4})(?=\s*年)"
    r"|(?P<range>(?<!\d)\d+(?:\.\d+)?)\s*[-~～—–]\s*(?=\d)"
    r"|(?P<neg>(?<![\w])-)(?=\.?\d)"
    r"|(?P<num>(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\d.])\.\d+)%?)"
    r"|(?P<latin>[A-Za-zÜüÊê]+)(?P<tone>[1-5](?!\d))?"
    rf"|(?P<han>[{_HAN}〇]+)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.DOTALL,
)


def _under_10000(n: int) -> str:
    out, pending_zero = "", False
    for power, unit in ((3, "千"), (2, "百"), (1, "十"), (0, "")):
        d = n // 10**power % 10
        if d == 0:
            pending_zero = bool(out)
            continue
        if pending_zero:
            out += "零"
            pending_zero = False
        out += _DIGITS[d] + unit
    return out


def number_to_hanzi(n: int) -> str:
    """A non-negative integer as a Chinese quantity: 138 -> 一百三十八, 10086 -> 一万零八十六."""
    if n < 0:
        return "负" + number_to_hanzi(-n)
    if n == 0:
        return "零"
    if len(str(n)) > _MAX_CARDINAL_DIGITS:
        return "".join(_DIGITS[int(d)] for d in str(n))
    groups = []
    while n:
        n, g = divmod(n, 10000)
        groups.append(g)
    out = ""
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        unit = ("", "万", "亿", "万亿")[i]
        if g == 0:
            continue
        if out and (g < 1000 or groups[i + 1] == 0):
            out += "零"
        out += _under_10000(g) + unit
    out = out.replace("零零", "零")
    return out[1:] if out.startswith("一十") else out  # 12 is 十二, not 一十二


def _digits_hanzi(text: str, one: str = "一") -> str:
    return "".join(one if d == "1" else _DIGITS[int(d)] for d in text if d.isdigit())


def _number_hanzi(text: str) -> str:
    """Hanzi reading of a number token such as ``1,234``, ``3.14``, ``50%`` or ``007``."""
    percent = text.endswith("%")
    text = text.rstrip("%").replace(",", "")
    whole, _, frac = text.partition(".")
    if len(whole) >= 11 and not frac and not percent:  # phone numbers, IDs: digit by digit
        return _digits_hanzi(whole, one="幺")
    if len(whole) > 1 and whole.startswith("0"):
        words = _digits_hanzi(whole)
    else:
        words = number_to_hanzi(int(whole or "0"))
    if frac:
        words += "点" + _digits_hanzi(frac)
    return "百分之" + words if percent else words


def _time_hanzi(text: str) -> str:
    hour, minute = (int(x) for x in text.split(":"))
    words = number_to_hanzi(hour).replace("二", "两") if hour == 2 else number_to_hanzi(hour)
    words += "点"
    if minute == 0:
        return words + "整"
    return words + ("零" if minute < 10 else "") + number_to_hanzi(minute) + "分"


@lru_cache(maxsize=1)
def _pinyin_syllables() -> frozenset[str]:
    """All toneless pinyin syllables pypinyin knows (with "v" for u-umlaut)."""
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    syllables = set()
    for readings in pinyin_dict.values():
        for reading in readings.split(","):
            syllables.add(to_normal(reading, v_to_u=False).replace("ü", "v"))
    syllables.update({"r"})  # erhua written as a separate syllable (DataBaker: "r5")
    return frozenset(s for s in syllables if s.isalpha() and s.isascii())


def is_pinyin_syllable(text: str) -> bool:
    """True for one pinyin syllable with a tone digit, such as ``zhang3``, ``lv4`` or ``nar3``."""
    text = text.lower().replace("ü", "v")
    if not re.fullmatch(r"[a-z]+[1-5]", text):
        return False
    base = text[:-1]  # erhua may be written into the syllable: "nar3", "huar1"
    return base in _pinyin_syllables() or (base.endswith("r") and base[:-1] in _pinyin_syllables())


def _hanzi_to_pinyin(text: str, unknown: dict[str, None]) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    def _no_reading(chars: str) -> list[str]:
        for ch in chars:
            unknown.setdefault(ch, None)
        return []

    syllables = lazy_pinyin(
        text.replace("〇", "零"),
        style=Style.TONE3,
        neutral_tone_with_five=True,
        errors=_no_reading,
    )
    out = []
    for s in syllables:
        s = s.lower().replace("ü", "v").replace("ê", "e")
        if not re.fullmatch(r"[a-z]+[1-5]", s):  # an interjection with no tone: neutral
            s = re.sub(r"[^a-z]", "", s) + "5" if re.sub(r"[^a-z]", "", s) else ""
        if s:
            out.append(s)
    return out


def normalize_mandarin(
    text: str,
    prosody_marks: Literal["strip", "pause"] = "strip",
    latin: Literal["spell", "drop"] = "spell",
) -> tuple[str, list[str]]:
    """Normalise Mandarin text (Hanzi, pinyin with tone digits, or a mix) to toned pinyin.

    Args:
        text: any Unicode string.
        prosody_marks: DataBaker ``#1``-``#4`` marks are removed ("strip") or kept as
            pause symbols ("pause").
        latin: Latin letters that are not pinyin syllables are read by their letter
            names ("spell") or dropped ("drop").

    Returns:
        ``(normalised, dropped)``: the pinyin string and the characters that could not
        be read (in order of appearance).

    Long because it is one dispatch over the token kinds of ``_TOKEN_RE`` in the order they match;
    split up, that order would be harder to follow.
    """
    # a full-width comma separates clauses, never thousands: "100，100" is two numbers
    text = unicodedata.normalize("NFKC", text.replace("，", ", ").replace("、", ", "))
    text = "".join(_PUNCT_MAP.get(ch, ch) for ch in text)
    unknown: dict[str, None] = {}
    words: list[str] = []  # syllables, punctuation and pause symbols, in order
    han_run: list[str] = []  # Hanzi (and numbers read as Hanzi) waiting for pypinyin

    def flush() -> None:
        if han_run:
            words.extend(_hanzi_to_pinyin("".join(han_run), unknown))
            han_run.clear()

    def number(hanzi: str) -> None:
        flush()
        words.extend(_NUMBER_PINYIN[ch] for ch in hanzi)

    for m in _TOKEN_RE.finditer(text):
        kind, value = m.lastgroup, m.group(m.lastgroup or 0)
        if kind == "tone":  # the named tone group closes a latin match
            kind, value = "latin", m.group("latin")
        if kind == "pause":
            flush()
            if prosody_marks == "pause":
                words.append(value)
        elif kind == "time":
            number(_time_hanzi(value))
        elif kind == "phone":
            number(_digits_hanzi(value, one="幺"))
        elif kind == "year":
            number(_digits_hanzi(value))
        elif kind == "range":
            number(_number_hanzi(value) + "到")
        elif kind == "neg":
            number("负")
        elif kind == "num":
            number(_number_hanzi(value))
        elif kind == "han":
            han_run.append(value)
        elif kind == "latin":
            flush()
            tone = m.group("tone")
            if tone and is_pinyin_syllable(value + tone):
                words.append(value.lower().replace("ü", "v") + tone)
                continue
            for ch in value.lower():
                if latin == "spell" and ch in _LETTER_NAMES:
                    words.extend(_LETTER_NAMES[ch].split())
                else:
                    unknown.setdefault(ch, None)
            if tone:  # a digit after letters that do not form pinyin: read as a number
                number(_DIGITS[int(tone)])
        elif kind == "space":
            flush()
        else:  # a single other character
            flush()
            if value in _PUNCT:
                words.append(value)
            elif value in _BRACKETS:
                words.append(",")
            elif value in _SILENT or unicodedata.category(value)[0] in "MCZ":
                pass
            else:
                unknown.setdefault(value, None)
    flush()
    return _join(words), list(unknown)


def _join(words: list[str]) -> str:
    """Syllables separated by spaces; punctuation attached to the syllable before it."""
    out = ""
    for w in words:
        if w in _PUNCT:
            if not out or out[-1] in _PUNCT:  # no leading pause, no run of pauses
                continue
            out += w
        else:
            out += (" " if out else "") + w
    return out
