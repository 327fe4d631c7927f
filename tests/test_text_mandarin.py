"""Mandarin normalisation: polyphones, numbers, punctuation, pinyin input, prosody marks."""

from __future__ import annotations

import warnings

import pytest

from tf_tacokd.text import TextFrontEnd, UnknownCharacterWarning, symbol_table
from tf_tacokd.text.mandarin import is_pinyin_syllable, normalize_mandarin, number_to_hanzi


def norm(text: str, **kw) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return normalize_mandarin(text, **kw)[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        # polyphones follow their words (pypinyin phrase dictionary)
        ("银行行长", "yin2 hang2 hang2 zhang3"),
        ("长大", "zhang3 da4"),
        ("长度", "chang2 du4"),
        ("校长", "xiao4 zhang3"),
        ("重要", "zhong4 yao4"),
        ("重新", "chong2 xin1"),
        ("音乐", "yin1 yue4"),
        ("快乐", "kuai4 le4"),
        ("还钱", "huan2 qian2"),
        ("还是", "hai2 shi4"),
        ("睡觉", "shui4 jiao4"),
        ("觉得", "jue2 de5"),
        # neutral tone is 5; u-umlaut is v
        ("我的", "wo3 de5"),
        ("绿色", "lv4 se4"),
        ("女儿", "nv3 er2"),
    ],
)
def test_hanzi_to_toned_pinyin(text: str, expected: str) -> None:
    assert norm(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026年", "er4 ling2 er4 liu4 nian2"),  # years digit by digit
        ("1998年", "yi1 jiu3 jiu3 ba1 nian2"),
        ("138", "yi1 bai3 san1 shi2 ba1"),  # quantities
        ("138个", "yi1 bai3 san1 shi2 ba1 ge4"),
        ("10", "shi2"),
        ("12", "shi2 er4"),
        ("20", "er4 shi2"),
        ("101", "yi1 bai3 ling2 yi1"),
        ("1001", "yi1 qian1 ling2 yi1"),
        ("10086", "yi1 wan4 ling2 ba1 shi2 liu4"),
        ("1,000,000人", "yi1 bai3 wan4 ren2"),
        ("100，100", "yi1 bai3, yi1 bai3"),  # a full-width comma is not a thousands separator
        ("100、100", "yi1 bai3, yi1 bai3"),
        ("3.14", "san1 dian3 yi1 si4"),
        ("50%", "bai3 fen1 zhi1 wu3 shi2"),
        ("-5度", "fu4 wu3 du4"),
        ("3-5天", "san1 dao4 wu3 tian1"),
        ("7:30", "qi1 dian3 san1 shi2 fen1"),
        ("2:05", "liang3 dian3 ling2 wu3 fen1"),
        ("10:00", "shi2 dian3 zheng3"),
        ("13800138000", "yao1 san1 ba1 ling2 ling2 yao1 san1 ba1 ling2 ling2 ling2"),
        ("010-62345678", "ling2 yao1 ling2 liu4 er4 san1 si4 wu3 liu4 qi1 ba1"),
        ("007号", "ling2 ling2 qi1 hao4"),
        ("２０２６年", "er4 ling2 er4 liu4 nian2"),  # full-width digits
    ],
)
def test_numbers_read_in_chinese(text: str, expected: str) -> None:
    assert norm(text) == expected


@pytest.mark.parametrize(
    "n, hanzi",
    [(0, "零"), (10, "十"), (15, "十五"), (110, "一百一十"), (1010, "一千零一十"),
     (10001, "一万零一"), (100010000, "一亿零一万"), (100000001, "一亿零一"),
     (12345678, "一千二百三十四万五千六百七十八"), (-3, "负三")],
)
def test_number_to_hanzi(n: int, hanzi: str) -> None:
    assert number_to_hanzi(n) == hanzi


@pytest.mark.parametrize(
    "text, expected",
    [
        ("你好，世界。", "ni3 hao3, shi4 jie4."),
        ("你好！你好？", "ni3 hao3! ni3 hao3?"),
        ("一、二、三", "yi1, er4, san1"),
        ("他说：“好的”；", "ta1 shuo1: hao3 de5;"),
        ("《红楼梦》", "hong2 lou2 meng4"),
        ("（你好）世界", "ni3 hao3, shi4 jie4"),
        ("等等……", "deng3 deng3."),
        ("，，你好", "ni3 hao3"),
    ],
)
def test_full_width_punctuation_is_normalised(text: str, expected: str) -> None:
    assert norm(text) == expected


def test_pinyin_input_is_accepted_as_is() -> None:
    label = "ka2 er2 pu3 pei2 wai4 sun1 wan2 hua2 ti1"
    assert norm(label) == label
    assert norm("Ni3 Hao3") == "ni3 hao3"
    assert norm("lü4 se4") == "lv4 se4"
    assert norm("你好 ma5") == "ni3 hao3 ma5"
    assert is_pinyin_syllable("zhang3") and is_pinyin_syllable("lv4")
    assert not is_pinyin_syllable("iphone1") and not is_pinyin_syllable("zhang")


def test_databaker_prosody_marks() -> None:
    hanzi = "卡尔普#2陪外孙#1玩滑梯#4。"
    assert norm(hanzi) == "ka3 er3 pu3 pei2 wai4 sun1 wan2 hua2 ti1."
    paused = norm(hanzi, prosody_marks="pause")
    assert paused == "ka3 er3 pu3 #2 pei2 wai4 sun1 #1 wan2 hua2 ti1 #4."
    table = symbol_table("zh")
    assert "#2" in table.tokens(paused) and table.decode(table.encode(paused)) == paused


def test_latin_letters_are_spelled_predictably_or_dropped() -> None:
    assert norm("ABC") == "ei1 bi4 xi1"
    assert norm("我用iPhone12") == "wo3 yong4 ai4 pi4 ai2 qi1 ou1 en1 yi4 shi2 er4"
    with pytest.warns(UnknownCharacterWarning, match="'h'"):
        fe = TextFrontEnd("zh", latin_in_mandarin="drop")
        assert fe.normalize("hi你好") == "ni3 hao3"


def test_unknown_characters_dropped_with_one_warning() -> None:
    with pytest.warns(UnknownCharacterWarning) as record:
        p = TextFrontEnd("zh").process("你好😀Привет")
    assert len(record) == 1 and "U+1F600" in str(record[0].message)
    assert p.normalized == "ni3 hao3"


def test_symbols_are_pinyin_characters_and_tones() -> None:
    table = symbol_table("zh")
    assert table.symbols[:2] == ("_", "~")
    for ch in "abcdefghijklmnopqrstuvwxyz12345 ,.?!;:":
        assert ch in table.symbols
    fe = TextFrontEnd("zh")
    p = fe.process("银行")
    assert p.tokens == list("yin2 hang2") and p.ids[-1] == 1


@pytest.mark.parametrize("text", ["", "。。。", "😀", "《》"])
def test_empty_mandarin_is_a_value_error(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="nothing to pronounce"):
            TextFrontEnd("zh").process(text)


def test_strict_mandarin() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        TextFrontEnd("zh", strict=True).process("你好😀")
