"""The tf.data pipeline: padding, masks, stop targets, normalisation, distribution."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tf_tacokd import audio
from tf_tacokd.config import load_config
from tf_tacokd.data.dataset import load_manifest, make_dataset

from .conftest import GOOD_EN, preprocessed_ljspeech, requires_espeak

SETTINGS = ["data.val_size=1", "data.test_size=1", "data.shard_size=3", "data.bucket_count=2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return preprocessed_ljspeech(tmp_path_factory.mktemp("ds"), SETTINGS)


def batches(data_dir: Path, *overrides: str, **kw) -> list[dict[str, np.ndarray]]:
    cfg = load_config("tiny_en", [*SETTINGS, *overrides])
    ds = make_dataset(data_dir, kw.pop("split", "train"), cfg, **kw)
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


@pytest.mark.parametrize("r", [1, 2, 3])
def test_batches_are_padded_and_masked(data_dir: Path, r: int) -> None:
    seen = 0
    for b in batches(data_dir, f"model.reduction_factor={r}", batch_size=3):
        n, frames, n_mels = b["mel"].shape
        seen += n
        assert n_mels == 20 and frames % r == 0 and frames - b["mel_lengths"].max() < r
        assert b["text_ids"].dtype == np.int32 and b["mel"].dtype == np.float32
        for i in range(n):
            length, t_len = b["mel_lengths"][i], b["text_lengths"][i]
            np.testing.assert_array_equal(b["mel_mask"][i], np.arange(frames) < length)
            np.testing.assert_array_equal(b["stop_targets"][i], np.arange(frames) >= length - 1)
            assert np.all(b["mel"][i, length:] == 0.0)
            assert np.all(b["text_ids"][i, t_len:] == 0) and np.all(b["text_ids"][i, : t_len] > 0)
            assert b["text_ids"][i, t_len - 1] == 1  # end of sequence
    assert seen == load_manifest(data_dir).count("train")


def test_every_example_once_per_epoch_and_values_are_normalised_mels(data_dir: Path) -> None:
    manifest = load_manifest(data_dir)
    cfg = load_config("tiny_en", SETTINGS)
    stats = manifest.mel_stats
    got = {}
    for b in batches(data_dir, batch_size=2, with_ids=True):
        for i, item in enumerate(b["id"]):
            got[item.decode()] = b["mel"][i, : b["mel_lengths"][i]]
    assert len(got) == manifest.count("train") and set(got) <= set(GOOD_EN)
    item, mel = next(iter(got.items()))
    raw = audio.log_mel(audio.load_audio(Path(manifest.data["corpus"]) / "wavs" / f"{item}.wav",
                                         cfg.audio), cfg.audio)
    np.testing.assert_allclose(mel, stats.normalize(raw), rtol=1e-5, atol=1e-5)
    raw_batches = batches(data_dir, "audio.normalize_mel=false", batch_size=2, with_ids=True)
    raw_got = {it.decode(): b["mel"][i, : b["mel_lengths"][i]] for b in raw_batches
               for i, it in enumerate(b["id"])}
    np.testing.assert_allclose(raw_got[item], raw, rtol=1e-6)


def test_unshuffled_order_is_deterministic_and_shuffle_changes_with_seed(data_dir: Path) -> None:
    def order(**kw):
        return [i.decode() for b in batches(data_dir, batch_size=2, with_ids=True, **kw) for i in b["id"]]

    assert order(shuffle=False) == order(shuffle=False)
    a, b = order(shuffle=True, seed=1), order(shuffle=True, seed=2)
    assert sorted(a) == sorted(b)


def test_repeat_and_drop_remainder_give_static_full_batches(data_dir: Path) -> None:
    cfg = load_config("tiny_en", SETTINGS)
    ds = make_dataset(data_dir, "train", cfg, batch_size=2, repeat=True, drop_remainder=True)
    assert ds.element_spec["mel"].shape.as_list() == [2, None, 20]
    assert sum(1 for _ in ds.take(7)) == 7


def test_filters_overlong_examples(data_dir: Path) -> None:
    lengths = [n for b in batches(data_dir, batch_size=8) for n in b["mel_lengths"]]
    limit = int(np.median(lengths))
    kept = [n for b in batches(data_dir, f"data.max_frames={limit}", batch_size=8) for n in b["mel_lengths"]]
    assert kept and max(kept) <= limit and len(kept) < len(lengths)


def test_mismatched_config_and_missing_manifest_are_clear_errors(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"preprocessed with audio.n_mels = 20.*re-run `tacokd preprocess`"):
        make_dataset(data_dir, "train", load_config("tiny_en", ["audio.n_mels=40"]))
    with pytest.raises(ValueError, match="text in 'en'"):
        make_dataset(data_dir, "train", load_config("tiny_zh", ["audio.n_mels=20"]))
    with pytest.raises(FileNotFoundError, match="run `tacokd preprocess`"):
        make_dataset(tmp_path, "train", load_config("tiny_en"))
    with pytest.raises(ValueError, match="unknown split"):
        make_dataset(data_dir, "dev", load_config("tiny_en", SETTINGS))


def test_global_batch_is_split_across_two_replicas(data_dir: Path) -> None:
    code = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tf_tacokd.config import load_config
        from tf_tacokd.data.dataset import make_dataset, distribute
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        cfg = load_config("tiny_en", {SETTINGS!r})
        ds = make_dataset({str(data_dir)!r}, "train", cfg, batch_size=4, repeat=True, drop_remainder=True)
        batch = next(iter(distribute(ds, strategy)))
        print([int(t.shape[0]) for t in strategy.experimental_local_results(batch["mel"])])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[2, 2]"


def test_split_texts_are_every_utterance_with_its_text_and_frame_count(data_dir: Path) -> None:
    manifest = load_manifest(data_dir)
    from_batches = {}
    for b in batches(data_dir, batch_size=2, with_ids=True):
        for i, item in enumerate(b["id"]):
            from_batches[item.decode()] = (b["text"][i].decode(), int(b["mel_lengths"][i]))
    rows = manifest.texts("train")
    assert len(rows) == manifest.count("train") == len(from_batches)
    assert {uid: (text, n) for uid, text, n in rows} == from_batches
    # the text the model read: the corpus's normalised column without symbols outside the table
    assert all(text == GOOD_EN[uid][1].replace('"', "") for uid, text, _ in rows)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        manifest.texts("dev")


def test_indomain_sentences_of_a_data_dir_without_a_test_split_is_a_clear_error(tmp_path: Path) -> None:
    from tf_tacokd.evaluate.testsets import indomain

    data = preprocessed_ljspeech(tmp_path, ["data.val_size=1", "data.test_size=0", "data.shard_size=3"])
    with pytest.raises(ValueError, match="the test split is empty"):
        indomain(data)


@requires_espeak
def test_phoneme_data_holds_espeaks_ipa_and_refuses_a_letter_config(data_dir: Path,
                                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    from tf_tacokd.text import TextFrontEnd

    ph = preprocessed_ljspeech(tmp_path_factory.mktemp("ph"), [*SETTINGS, "text.phonemizer=espeak-ng"])
    manifest = load_manifest(ph)
    fe = TextFrontEnd("en", phonemizer="espeak-ng")
    assert manifest.symbols == fe.symbols and manifest.data["text"]["phonemizer"] == "espeak-ng"
    cfg = load_config("tiny_en", [*SETTINGS, "text.phonemizer=espeak-ng"])
    batch = next(iter(make_dataset(ph, "train", cfg, batch_size=1, shuffle=False, with_ids=True)))
    text = batch["text"].numpy()[0].decode()
    ids = batch["text_ids"].numpy()[0][: batch["text_lengths"].numpy()[0]]
    assert fe.symbols.decode(list(ids)) == fe.process(text).phonemes  # the spoken text is stored, ids are IPA
    with pytest.raises(ValueError, match=r"text.phonemizer = 'espeak-ng', but the config has 'none'"):
        make_dataset(ph, "train", load_config("tiny_en", SETTINGS))
    with pytest.raises(ValueError, match=r"text.phonemizer = 'none', but the config has 'espeak-ng'"):
        make_dataset(data_dir, "train", cfg)
