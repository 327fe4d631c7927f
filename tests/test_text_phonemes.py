"""The English phoneme front end (text.phonemizer = "espeak-ng")."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import pytest

from tf_tacokd.config import ConfigError, load_config
from tf_tacokd.text import TextFrontEnd, UnknownCharacterWarning, phonemes, symbol_table

from .conftest import requires_espeak

PRETRAINED = Path(__file__).resolve().parents[1] / "tf_tacokd" / "pretrained"


def espeak_ipa(words: str) -> str:
    """The reference: espeak-ng itself on one punctuation-free chunk."""
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us"], input=words, capture_output=True,
                         text=True, check=True).stdout
    return " ".join(out.split())


@requires_espeak
def test_phonemes_are_espeaks_ipa_with_the_punctuation_kept() -> None:
    got = phonemes.phonemize_english("hello world, this is a test. yes - it's fine?")
    fine = espeak_ipa("it's fine")
    want = f"{espeak_ipa('hello world')}, {espeak_ipa('this is a test')}. {espeak_ipa('yes')} - {fine}?"
    assert got == want
    assert got.startswith("həlˈoʊ wˈɜːld, ")


@requires_espeak
def test_one_batched_call_gives_what_one_call_per_chunk_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["the cat sat on the mat.", "mister and misses olivia paid one hundred fifty-nine dollars, "
             "ninety-two cents for thirteen lamps on july three.", "really? yes; fine: done!",
             "a", "the quick brown fox jumps over the lazy dog"]
    phonemes._cache.clear()
    calls = []
    real = phonemes._espeak
    monkeypatch.setattr(phonemes, "_espeak", lambda args, text: calls.append(text) or real(args, text))
    phonemes.prefetch(texts)
    assert len(calls) == 1  # one espeak-ng call for all chunks
    batched = [phonemes.phonemize_english(t) for t in texts]
    assert len(calls) == 1  # served from the cache
    phonemes._cache.clear()
    single = [phonemes.phonemize_english(t) for t in texts]
    assert batched == single
    assert single[4] == espeak_ipa("the quick brown fox jumps over the lazy dog")


def test_a_batch_whose_lines_do_not_match_falls_back_to_one_call_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(args: list[str], text: str) -> str:
        lines = text.splitlines()
        if len(lines) > 1:  # espeak-ng split a clause: one line too many
            return "\n".join(["ə", *[f"<{line}>" for line in lines]]) + "\n"
        return f"<{lines[0]}>\n"

    monkeypatch.setattr(phonemes, "_espeak", fake)
    phonemes._cache.clear()
    phonemes.prefetch(["one two, three.", "four"])
    assert phonemes.phonemize_english("one two, three.") == "<one two>, <three>."
    assert phonemes.phonemize_english("four") == "<four>"
    phonemes._cache.clear()


@requires_espeak
def test_front_end_reads_phonemes_and_keeps_the_spoken_text() -> None:
    fe = TextFrontEnd("en", phonemizer="espeak-ng")
    p = fe.process("Dr. Smith paid $5.")
    assert p.normalized == "doctor smith paid five dollars."  # what is spoken, as before
    assert p.phonemes == f"{espeak_ipa('doctor smith paid five dollars')}."
    assert fe.symbols.decode(p.ids) == p.phonemes and p.ids[-1] == fe.symbols.eos_id
    assert "ˈ" in p.tokens and "a" in p.tokens
    assert TextFrontEnd("en").process("Dr. Smith paid $5.").phonemes is None
    assert fe.normalize("Dr. Smith paid $5.") == p.normalized


def test_phoneme_table_and_settings_round_trip() -> None:
    table = symbol_table("en", phonemes=True)
    assert table.symbols[:2] == ("_", "~") and "ɹ" in table.symbols and "'" not in table.symbols
    assert len(set(table.symbols)) == len(table.symbols)
    fe = TextFrontEnd("en", phonemizer="espeak-ng")
    again = TextFrontEnd.from_settings(json.loads(json.dumps(fe.get_config())))
    assert again.phonemizer == "espeak-ng" and again.symbols == fe.symbols
    old = {k: v for k, v in TextFrontEnd("en").get_config().items() if k != "phonemizer"}
    assert TextFrontEnd.from_settings(old).phonemizer == "none"  # sidecars written before the option


def test_phonemizer_is_for_english_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pinyin"):
        TextFrontEnd("zh", phonemizer="espeak-ng")
    with pytest.raises(ValueError, match="unknown phonemizer 'g2p'"):
        TextFrontEnd("en", phonemizer="g2p")  # type: ignore[arg-type]
    path = tmp_path / "c.toml"
    path.write_text('base = "voice_zh"\n[text]\nphonemizer = "espeak-ng"\n')
    with pytest.raises(ConfigError, match=r"\[text\] phonemizer"):
        load_config(path)


def test_phonemes_outside_the_table_warn_or_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    import tf_tacokd.text as text_module

    monkeypatch.setattr(text_module, "phonemize_english", lambda normalized: "bʁˈɔ̃ʒuʁ.")
    fe = TextFrontEnd("en", phonemizer="espeak-ng")
    with pytest.warns(UnknownCharacterWarning, match="U\\+0281"):
        p = fe.process("bonjour.")
    assert p.phonemes == "bˈɔʒu."
    with pytest.raises(ValueError, match="espeak-ng's phonemes"):
        TextFrontEnd("en", strict=True, phonemizer="espeak-ng").process("bonjour.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TextFrontEnd("en").process("bonjour.")  # letters: nothing to warn about


def test_missing_espeak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phonemes.shutil, "which", lambda name: None)
    phonemes._cache.clear()
    with pytest.raises(phonemes.EspeakMissingError, match="apt-get install espeak-ng"):
        TextFrontEnd("en", phonemizer="espeak-ng").process("hello there.")


@pytest.mark.parametrize("name", ["en_teacher", "zh_teacher"])
def test_data_preprocessed_before_the_option_keeps_its_hash(name: str) -> None:
    from tf_tacokd.data.preprocess import preprocess_hash

    data = json.loads((PRETRAINED / name / "data.json").read_text())
    assert preprocess_hash(load_config(PRETRAINED / name / "config.toml")) == data["config_hash"]


@requires_espeak
def test_the_main_job_shows_what_the_english_voice_reads(tmp_path: Path) -> None:
    """quick_en (the shipped English voice's config) reads phonemes: the main job's text stage
    prints them under the normalised text, and its ids are the phonemes'."""
    from tf_tacokd.pipeline import Context, _stage_text

    lines: list[str] = []
    _stage_text(Context("en", load_config("quick_en"), tmp_path, lines.append))
    shown = "\n".join(lines)
    assert "A B C D E F G.\n      -> a b c d e f g.\n      -> ɐ bˈiː sˈiː dˈiː ˈiː ˈɛf dʒˈiː." in shown
    fe = TextFrontEnd.from_config(load_config("quick_en").text)
    rows = (tmp_path / "text_frontend.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert rows[2].split("\t")[2] == " ".join(map(str, fe.encode("A B C D E F G.")))
