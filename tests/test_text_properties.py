"""Property test: any Unicode string yields valid ids or a ValueError (both languages)."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf_tacokd.text import TextFrontEnd

# Characters the rules care about, mixed into arbitrary Unicode so that numbers,
# currency, times, pinyin and prosody marks meet each other in odd combinations.
INTERESTING = list("0123456789.,:;%$£€¥-+/#&@()[]\"'“”。，、？！《》……—~ \t\n") + [
    "年", "银", "行", "长", "一", "不", "〇", "ka2", "lü4", "Mr.", "St.", "1st", "#3", "p.m.",
    "e.g.", "ABC", "iPhone", "½", "²", "😀", "\u0301", "\u200b", "\x00",
]  # fmt: skip

texts = st.lists(
    st.one_of(st.text(max_size=8), st.sampled_from(INTERESTING), st.integers().map(str)),
    max_size=12,
).map("".join)


@pytest.mark.parametrize("language", ["en", "zh"])
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_any_unicode_yields_ids_or_value_error(language: str, text: str) -> None:
    fe = TextFrontEnd(language)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p = fe.process(text)
        except ValueError as e:
            assert "nothing to pronounce" in str(e)
            return
        again = fe.process(text)
    assert again == p  # deterministic
    n = len(fe.symbols)
    assert len(p.ids) >= 2 and p.ids[-1] == fe.symbols.eos_id
    assert all(isinstance(i, int) and 2 <= i < n for i in p.ids[:-1])
    assert fe.symbols.decode(p.ids) == p.normalized
    assert p.normalized == p.normalized.strip() and "  " not in p.normalized
    assert any(ch.isalpha() for ch in p.normalized)
    if language == "zh":
        # every word is a toned syllable (or a pause mark), punctuation attached
        for word in p.normalized.split(" "):
            core = word.rstrip(",.?!;:-")
            assert core == "" or core[-1] in "12345", (text, p.normalized)
