"""Fingerprints of training sentences (tf_tacokd.data.seen)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from tf_tacokd.data.seen import (
    FP_CHARS,
    decode_fingerprints,
    drop_seen,
    encode_fingerprints,
    inherited_fingerprints,
    run_fingerprints,
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


def test_inherited_fingerprints_and_what_a_run_knows(tmp_path) -> None:
    own = {text_fingerprint(t) for t in ("a.", "b.")}
    parent = {"training_texts": encode_fingerprints(["a.", "c."])}
    grandparent = {"training_texts": encode_fingerprints(["d."]), "inherited_texts": encode_fingerprints(["e."])}
    assert decode_fingerprints(inherited_fingerprints([parent, grandparent], own)) == \
        {text_fingerprint(t) for t in ("c.", "d.", "e.")}
    assert inherited_fingerprints([parent, None], own) is None  # an ancestor that cannot be read
    assert inherited_fingerprints([{"data_dir": str(tmp_path / "gone")}], own) is None
    assert inherited_fingerprints([{"training_texts": encode_fingerprints(["a."])}], own) == ""
    assert run_fingerprints({"training_texts": encode_fingerprints(["a."]), "inherited_texts": None}) is None


def test_a_run_from_another_models_weights_inherits_its_training_text(tmp_path) -> None:
    """The lineage bug: a model fine-tuned on corpus B from a model trained on corpus A (here:
    the same sentences split another way) has seen A's training sentences, some of them in B's
    test split; the in-domain check must leave those out."""
    from .conftest import TINY_RUN_SETTINGS, make_ljspeech

    import tf_tacokd.pretrained as pretrained
    from tf_tacokd.config import load_config
    from tf_tacokd.data.dataset import load_manifest
    from tf_tacokd.data.preprocess import preprocess
    from tf_tacokd.train import train

    make_ljspeech(tmp_path / "corpus")
    cfg = {seed: load_config("tiny_en", TINY_RUN_SETTINGS + ["data.test_size=6", f"data.split_seed={seed}"])
           for seed in (1, 2)}
    for seed in cfg:
        preprocess(cfg[seed], tmp_path / "corpus", tmp_path / f"data{seed}")
    split = {seed: {s: {text_fingerprint(t) for _, t, _ in load_manifest(tmp_path / f"data{seed}").texts(s)}
                    for s in ("train", "test")} for seed in cfg}
    assert split[1]["train"] & split[2]["test"], "the fixture must put some of A's training text in B's test"
    train(cfg[1], tmp_path / "data1", tmp_path / "a", steps=2, verbose=0)
    train(cfg[2], tmp_path / "data2", tmp_path / "b", steps=2, verbose=0, init=tmp_path / "a")
    data_b = json.loads((tmp_path / "b" / "data.json").read_text())
    assert decode_fingerprints(data_b["inherited_texts"]) == split[1]["train"] - split[2]["train"]
    assert run_fingerprints(data_b) == split[1]["train"] | split[2]["train"]
    test_b = [t for _, t, _ in load_manifest(tmp_path / "data2").texts("test")]
    kept, info = drop_seen(test_b, lambda t: t, {"b": data_b}, tmp_path / "data2")
    assert {text_fingerprint(t) for t in kept} == split[2]["test"] - split[1]["train"]
    assert info["seen_by"] == {"b": len(split[2]["test"] & split[1]["train"])}
    # a resume after the init model is gone keeps what was recorded when the run started
    shutil.rmtree(tmp_path / "a")
    train(cfg[2], tmp_path / "data2", tmp_path / "b", steps=4, verbose=0, init=tmp_path / "a")
    assert json.loads((tmp_path / "b" / "data.json").read_text())["inherited_texts"] == data_b["inherited_texts"]
    # and the shipped form records both
    folder = pretrained.pack(tmp_path / "b", "en", "student", dest=tmp_path / "shipped")
    shipped = json.loads((folder / "data.json").read_text())
    assert decode_fingerprints(shipped["training_texts"]) == split[1]["train"] | split[2]["train"]
    assert "inherited_texts" not in shipped
