"""Fingerprints of training sentences (tf_tacokd.data.seen)."""

from __future__ import annotations

import hashlib

import pytest

from tf_tacokd.data.seen import (
    FP_CHARS,
    decode_fingerprints,
    drop_seen,
    encode_fingerprints,
    text_fingerprint,
)
from tf_tacokd.evaluate.report import held_out_note


def test_fingerprint_is_sha256_of_the_canonical_text() -> None:
    want = hashlib.sha256("it is raining again.".encode()).hexdigest()[:FP_CHARS]
    assert text_fingerprint(" It is\tRAINING  again. ") == want
    assert text_fingerprint("ｉｔ is raining again.") == want  # NFKC: full-width letters
    assert text_fingerprint("it is raining again!") != want
    assert text_fingerprint("wo3 ai4 ni3") != text_fingerprint("wo3 ai4 ni2")  # tone digits count


def test_encoding_round_trips_and_rejects_garbage() -> None:
    texts = ["a b.", "c d.", "A  B."]
    blob = encode_fingerprints(texts)
    assert len(blob) == 2 * FP_CHARS and decode_fingerprints(blob) == {text_fingerprint(t) for t in texts}
    with pytest.raises(ValueError, match="training_texts"):
        decode_fingerprints(blob[:-1])
    with pytest.raises(ValueError, match="training_texts"):
        decode_fingerprints("z" * FP_CHARS)


def test_drop_seen_against_a_loop_reference(tmp_path) -> None:
    items = [f"sentence {i}." for i in range(10)]
    runs = {"a": {"training_texts": encode_fingerprints(items[:3])},
            "b": {"training_texts": encode_fingerprints(items[2:5] + ["elsewhere."])},
            "c": {"data_dir": str(tmp_path / "gone")},  # data not here: unknown
            "d": {"data_dir": str(tmp_path)}}  # trained on the test data dir: disjoint splits
    kept, info = drop_seen(items, lambda t: t, runs, tmp_path)
    assert kept == [t for t in items if t not in items[:5]]
    assert info == {"left_out": 5, "seen_by": {"a": 3, "b": 3, "d": 0}, "unknown": ["c"]}


def test_held_out_note_names_who_saw_what() -> None:
    assert held_out_note(None) == "" and held_out_note({"left_out": 0, "seen_by": {"a": 0}, "unknown": []}) == ""
    note = held_out_note({"left_out": 14, "seen_by": {"teacher": 14, "student": 14, "here": 0}, "unknown": ["x"]})
    assert note == ("14 test sentences left out: in a system's training text (teacher 14, student 14); "
                    "training text unknown for x (not checked)")
