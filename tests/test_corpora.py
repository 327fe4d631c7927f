"""Corpus readers (both layouts, bad entries reported) and the espeak-ng corpus maker."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from tf_tacokd.data import corpora
from tf_tacokd.data.corpora import (
    EspeakMissingError,
    detect_format,
    generate_sentences,
    make_corpus,
    read_corpus,
    read_databaker,
    read_ljspeech,
)

from .conftest import GOOD_EN, GOOD_ZH, make_databaker, make_ljspeech, requires_espeak


def test_ljspeech_reader_uses_normalized_column_and_reports_bad_lines(tmp_path: Path) -> None:
    bad = make_ljspeech(tmp_path)
    listing = read_ljspeech(tmp_path)
    ids = [u.id for u in listing.utterances]
    # reader-level problems: missing wav, empty text, malformed line, duplicate id
    reader_bad = {"BAD-missing", "BAD-empty", "BAD-fields"}
    assert {p.item_id for p in listing.rejected} == reader_bad | {"LJ001-0001"}
    for p in listing.rejected:
        assert bad[p.item_id] in p.reason
        assert p.location.startswith(str(tmp_path / "metadata.csv") + ":")
    dup = next(p for p in listing.rejected if p.reason == "duplicate id")
    assert dup.location.endswith(":17")  # the second occurrence, by line number
    # audio problems are found later, by preprocessing: those items are listed here
    assert set(GOOD_EN) <= set(ids)
    u = next(u for u in listing.utterances if u.id == "LJ001-0002")
    assert u.text == 'he said "hello" twice' and u.raw_text == 'He said "hello" twice'
    assert u.audio_path == tmp_path / "wavs" / "LJ001-0002.wav"


def test_ljspeech_two_field_lines_use_the_text_column(tmp_path: Path) -> None:
    (tmp_path / "wavs").mkdir()
    (tmp_path / "wavs" / "a.wav").write_bytes(b"")
    (tmp_path / "metadata.csv").write_text("a|Only text\n", encoding="utf-8")
    listing = read_ljspeech(tmp_path)
    assert listing.utterances[0].text == "Only text" and "no normalized column" in listing.notes[0].reason


def test_ljspeech_undecodable_bytes_reject_only_that_line(tmp_path: Path) -> None:
    (tmp_path / "wavs").mkdir()
    for i in "ab":
        (tmp_path / "wavs" / f"{i}.wav").write_bytes(b"")
    (tmp_path / "metadata.csv").write_bytes(b"a|Good|good\nb|Bad \xff\xfe|bad\n")
    listing = read_ljspeech(tmp_path)
    assert [u.id for u in listing.utterances] == ["a"]
    assert "not valid UTF-8" in listing.rejected[0].reason


def test_databaker_reader_pairs_lines_and_reports_irregular_entries(tmp_path: Path) -> None:
    bad = make_databaker(tmp_path)
    listing = read_databaker(tmp_path)
    assert [u.id for u in listing.utterances] == list(GOOD_ZH)
    assert {p.item_id: bad[p.item_id] in p.reason for p in listing.rejected} == {k: True for k in bad}
    first = listing.utterances[0]
    assert first.text == "ka2 er2 pu3 pei2 wai4 sun1 wan2 hua2 ti1"  # the pinyin line, no BOM
    assert first.raw_text == "卡尔普#2陪外孙#1玩滑梯#4。"
    notes = {p.item_id: p.reason for p in listing.notes}
    assert "erhua" in notes["000005"] and "5 Hanzi, 4 syllables" in notes["000005"]
    assert "stray spaces" in notes["000006"]
    assert next(u for u in listing.utterances if u.id == "000006").text == "wo3  men5 qu4 gong1 yuan2"


def test_databaker_hanzi_option_rederives_from_hanzi(tmp_path: Path) -> None:
    make_databaker(tmp_path)
    listing = read_databaker(tmp_path, text="hanzi")
    assert listing.utterances[0].text == "卡尔普#2陪外孙#1玩滑梯#4。"


def test_detect_format_and_clear_errors(tmp_path: Path) -> None:
    make_ljspeech(tmp_path / "lj")
    make_databaker(tmp_path / "db")
    assert detect_format(tmp_path / "lj") == "ljspeech"
    assert detect_format(tmp_path / "db") == "databaker"
    assert read_corpus(tmp_path / "db").format == "databaker"
    with pytest.raises(FileNotFoundError, match="neither an LJSpeech layout"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError, match="no metadata.csv"):
        read_ljspeech(tmp_path / "db")
    with pytest.raises(FileNotFoundError, match="no label files"):
        read_databaker(tmp_path / "lj")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_generated_sentences_are_deterministic_and_in_range(lang: str) -> None:
    a = generate_sentences(lang, 300, seed=3)
    assert a == generate_sentences(lang, 300, seed=3)
    assert a != generate_sentences(lang, 300, seed=4)
    assert len(a) == 300 and len(set(a)) > 250
    for s in a:
        if lang == "en":
            assert 3 <= len(s.split()) <= 25, s
        else:
            n_han = sum("\u4e00" <= ch <= "\u9fff" for ch in s)
            assert 4 <= n_han <= 40, s


def test_make_corpus_explains_missing_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpora.shutil, "which", lambda name: None)
    with pytest.raises(EspeakMissingError, match="apt-get install espeak-ng"):
        make_corpus("en", tmp_path, size=2)


@requires_espeak
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_make_corpus_writes_the_real_layout_and_resumes(tmp_path: Path, lang: str) -> None:
    summary = make_corpus(lang, tmp_path, size=6, seed=1)  # type: ignore[arg-type]
    assert summary.count == 6 and summary.seconds > 3 and not summary.skipped
    listing = read_corpus(tmp_path)
    assert listing.format == ("ljspeech" if lang == "en" else "databaker")
    assert len(listing.utterances) == 6 and not listing.rejected
    info = sf.info(str(listing.utterances[0].audio_path))
    assert info.samplerate == 22050 and info.channels == 1
    if lang == "zh":  # the label line is toned pinyin, as DataBaker's
        assert all(s[-1] in "12345" for u in listing.utterances for s in u.text.split())
    meta = sorted(tmp_path.rglob("*.txt")) + sorted(tmp_path.glob("metadata.csv"))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.wav")}
    again = make_corpus(lang, tmp_path, size=6, seed=1)  # type: ignore[arg-type]
    assert again.count == 6
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.wav")} == before  # not redone
    assert meta[0].read_text(encoding="utf-8")
