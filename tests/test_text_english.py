"""English normalisation: one test per rule, plus symbols and errors."""

from __future__ import annotations

import warnings

import pytest

from tf_tacokd.text import TextFrontEnd, UnknownCharacterWarning, symbol_table
from tf_tacokd.text.english import normalize_english, number_to_words, year_to_words


def norm(text: str) -> str:
    return normalize_english(text)[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        # cardinals (inflect), with thousands separators and negatives
        ("I have 3 cats", "i have three cats"),
        ("123", "one hundred twenty-three"),
        ("1,000,000 people", "one million people"),
        ("-5 degrees", "minus five degrees"),
        # decimals
        ("pi is 3.14", "pi is three point one four"),
        (".5 of it", "zero point five of it"),
        # ordinals
        ("May 3rd", "may third"),
        ("the 21st century", "the twenty-first century"),
        ("the 1000000000000000000th", "the one" + " zero" * 18),  # beyond inflect's range: digit by digit
        ("his 100th birthday", "his one hundredth birthday"),
        # years
        ("in 1977", "in nineteen seventy-seven"),
        ("in 1905", "in nineteen oh five"),
        ("in 1900", "in nineteen hundred"),
        ("in 2005", "in two thousand five"),
        ("in 2010", "in twenty ten"),
        ("in 2000", "in two thousand"),
        # decades and plural numbers
        ("the 1980s", "the nineteen eighties"),
        ("an '80s song", "an eighties song"),
        ("the 70s", "the seventies"),
        ("100s of them", "hundreds of them"),
        # currency
        ("$5.50", "five dollars, fifty cents"),
        ("$1", "one dollar"),
        ("$0.99", "ninety-nine cents"),
        ("$1.01", "one dollar, one cent"),
        ("£3", "three pounds"),
        ("£2.50", "two pounds, fifty pence"),
        ("€1.01", "one euro, one cent"),
        ("$5 million", "five million dollars"),
        ("$2.5 billion", "two point five billion dollars"),
        # percentages
        ("50%", "fifty percent"),
        ("2.5% tax", "two point five percent tax"),
        # times
        ("7:07", "seven oh seven"),
        ("7:30", "seven thirty"),
        ("10:00", "ten o'clock"),
        ("10:15 p.m.", "ten fifteen p m"),
        ("6:00 am", "six a m"),
        # phone-like digit runs, read digit by digit
        ("555-123-4567", "five five five, one two three, four five six seven"),
        ("call 555-1234", "call five five five, one two three four"),
        ("(020) 7946-0958", "oh two oh, seven nine four six, oh nine five eight"),
        ("agent 007", "agent oh oh seven"),
        # fractions
        ("1/2 cup", "one half cup"),
        ("3/4", "three quarters"),
        ("2/3", "two thirds"),
        # abbreviations
        ("Mr. Jones", "mister jones"),
        ("Mrs. Jones", "misses jones"),
        ("Dr. Who", "doctor who"),
        ("St. Peter", "saint peter"),
        ("Smith Co. Ltd.", "smith company limited"),
        ("apples, pears, etc.", "apples, pears, et cetera"),
        ("e.g. this", "for example this"),
        ("No. 5", "number five"),
        ("Say no.", "say no."),
        # symbols read as words
        ("salt & pepper", "salt and pepper"),
        ("2 + 2 = 4", "two plus two equals four"),
        ("me @ home", "me at home"),
        # transliteration and case
        ("Café Naïve", "cafe naive"),
        ("ÀÉÎÕÜ", "aeiou"),
        ("ＦＵＬＬ ｗｉｄｔｈ", "full width"),
        # whitespace collapsed, prosody punctuation kept, brackets become pauses
        ("  lots   of\t\nspace  ", "lots of space"),
        ("Wait! Why? Yes; no: maybe - ok.", "wait! why? yes; no: maybe - ok."),
        ("He (really) did", "he, really, did"),
        ('"Quoted" words', "quoted words"),
        ("“Curly” and ‘single’", "curly and 'single'"),
        ("don't", "don't"),
        ("a -- b", "a - b"),
        ("5th-floor", "fifth-floor"),
    ],
)
def test_normalisation_rules(text: str, expected: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert norm(text) == expected


def test_number_helpers() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(-12) == "minus twelve"
    assert number_to_words("1" * 20) == " ".join(["one"] * 20)  # too long for a cardinal
    assert year_to_words(1066) == "ten sixty-six"
    assert year_to_words(2024) == "twenty twenty-four"


def test_symbol_table_layout() -> None:
    table = symbol_table("en")
    assert table.symbols[:2] == ("_", "~") and table.pad_id == 0 and table.eos_id == 1
    for ch in "abcdefghijklmnopqrstuvwxyz ,.?!;:-'":
        assert ch in table.symbols
    assert table.decode(table.encode("hi there.")) == "hi there."
    with pytest.raises(ValueError, match="not in the en symbol table"):
        table.encode("HI")


def test_front_end_ids_end_with_eos_and_decode() -> None:
    fe = TextFrontEnd("en")
    p = fe.process("Hello, world!")
    assert p.normalized == "hello, world!"
    assert p.ids[-1] == fe.symbols.eos_id and 0 not in p.ids
    assert fe.symbols.decode(p.ids) == p.normalized
    assert p.tokens == list(p.normalized)


def test_unknown_characters_dropped_with_one_warning_listing_them() -> None:
    fe = TextFrontEnd("en")
    with pytest.warns(UnknownCharacterWarning) as record:
        p = fe.process("snow ☃ and 😀 and ☃")
    assert len(record) == 1
    message = str(record[0].message)
    assert "'☃' (U+2603)" in message and "U+1F600" in message
    assert p.normalized == "snow and and"


def test_strict_mode_rejects_unknown_characters() -> None:
    with pytest.raises(ValueError, match=r"cannot read '☃'.*strict = false"):
        TextFrontEnd("en", strict=True).process("snow ☃")


@pytest.mark.parametrize("text", ["", "   ", "...", "?!", "😀", "---"])
def test_empty_after_normalisation_is_a_value_error_quoting_input(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="nothing to pronounce in " + repr(text).replace("?", r"\?").replace(".", r"\.")):
            TextFrontEnd("en").process(text)


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        TextFrontEnd("en").process(123)  # type: ignore[arg-type]
