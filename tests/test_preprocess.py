"""Preprocessing: bad items listed and skipped, strict mode, resume after a kill, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_tacokd import audio
from tf_tacokd.config import load_config
from tf_tacokd.data import preprocess as pp
from tf_tacokd.data.preprocess import PreprocessError, preprocess

from .conftest import GOOD_EN, GOOD_ZH, make_databaker, make_ljspeech

SETTINGS = ["data.val_size=1", "data.test_size=1", "data.shard_size=2"]


@pytest.fixture
def lj(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bad = make_ljspeech(tmp_path / "corpus")
    return tmp_path / "corpus", bad


def read_records(path: Path, n_mels: int) -> list[dict]:
    out = []
    for raw in tf.data.TFRecordDataset(str(path)):
        ex = tf.train.Example.FromString(raw.numpy())
        f = ex.features.feature
        mel = np.frombuffer(f["mel"].bytes_list.value[0], "<f4").reshape(-1, n_mels)
        out.append({"id": f["id"].bytes_list.value[0].decode(), "ids": list(f["ids"].int64_list.value),
                    "text": f["text"].bytes_list.value[0].decode(), "mel": mel,
                    "n_frames": f["n_frames"].int64_list.value[0]})
    return out


def test_bad_items_are_listed_and_skipped_good_ones_kept(tmp_path: Path, lj) -> None:
    corpus, bad = lj
    cfg = load_config("tiny_en", SETTINGS)
    report = preprocess(cfg, corpus, tmp_path / "out")
    # the split is made before audio is read, so a bad item may take a val/test place
    assert sum(report.counts.values()) == len(GOOD_EN) and report.counts["val"] <= 1
    reasons = {p.item_id: p.reason for p in report.rejected if p.reason != "duplicate id"}
    assert set(reasons) == set(bad) - {"LJ001-0001"}
    for item, reason in reasons.items():
        assert bad[item] in reason, (item, reason)
    rows = (tmp_path / "out" / "rejected.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "location\titem\treason" and len(rows) == 1 + len(bad)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rejected"] == len(bad) and manifest["counts"] == report.counts
    assert manifest["symbols"]["symbols"][:2] == ["_", "~"]
    assert manifest["audio"]["n_mels"] == cfg.audio.n_mels and len(manifest["mel_stats"]["mean"]) == 20
    assert manifest["hours"]["train"] > 0 and len(manifest["frame_length_percentiles"]) == 21
    assert (tmp_path / "out" / "config.toml").is_file()


def test_records_hold_ids_and_the_log_mel_of_the_audio(tmp_path: Path, lj) -> None:
    corpus, _ = lj
    cfg = load_config("tiny_en", SETTINGS)
    preprocess(cfg, corpus, tmp_path / "out")
    records = [r for p in sorted((tmp_path / "out" / "shards").glob("*.tfrecord"))
               for r in read_records(p, cfg.audio.n_mels)]
    assert sorted(r["id"] for r in records) == sorted(GOOD_EN)
    rec = next(r for r in records if r["id"] == "LJ001-0003")
    assert rec["text"] == "in nineteen seventy-seven it cost five dollars" and rec["ids"][-1] == 1
    expected = audio.log_mel(audio.load_audio(corpus / "wavs" / "LJ001-0003.wav", cfg.audio), cfg.audio)
    np.testing.assert_array_equal(rec["mel"], expected)
    assert rec["n_frames"] == len(expected)


def test_strict_fails_naming_the_first_bad_item(tmp_path: Path, lj) -> None:
    corpus, _ = lj
    with pytest.raises(PreprocessError, match=r"--strict: .*metadata.csv:9: item 'BAD-missing': missing audio"):
        preprocess(load_config("tiny_en", SETTINGS), corpus, tmp_path / "out", strict=True)


def test_strict_fails_on_bad_audio_too(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    make_ljspeech(corpus)
    meta = corpus / "metadata.csv"
    keep = [ln for ln in meta.read_text().splitlines() if not ln.startswith(("BAD-missing", "BAD-empty",
                                                                              "BAD-fields", "BAD-symbols", "LJ001-0001|Dup"))]
    meta.write_text("\n".join(keep) + "\n")
    with pytest.raises(PreprocessError, match=r"--strict: .*item 'BAD-.*': .*(corrupt|silent|too long|8000 Hz)"):
        preprocess(load_config("tiny_en", SETTINGS), corpus, tmp_path / "out", strict=True)


def test_killed_run_resumes_without_redoing_finished_shards(tmp_path: Path, lj, monkeypatch) -> None:
    corpus, _ = lj
    cfg = load_config("tiny_en", SETTINGS)
    out = tmp_path / "out"
    real = pp._process_shard
    calls = []

    def dies_on_third_shard(task):
        calls.append(task["name"])
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(task)

    monkeypatch.setattr(pp, "_process_shard", dies_on_third_shard)
    with pytest.raises(KeyboardInterrupt):
        preprocess(cfg, corpus, out)
    finished = {p.stem: p.stat().st_mtime_ns for p in (out / "shards").glob("*.tfrecord")}
    assert len(finished) == 2 and not (out / "manifest.json").exists()
    assert not list((out / "shards").glob("*.tmp"))  # the shard in progress left nothing behind

    monkeypatch.setattr(pp, "_process_shard", real)
    report = preprocess(cfg, corpus, out)
    assert report.shards_skipped == 2 and report.shards_written == len(json.loads(
        (out / "plan.json").read_text())["shards"]) - 2
    for name, mtime in finished.items():
        assert (out / "shards" / f"{name}.tfrecord").stat().st_mtime_ns == mtime
    assert sum(report.counts.values()) == len(GOOD_EN)

    again = preprocess(cfg, corpus, out)  # idempotent: nothing left to do
    assert again.shards_written == 0 and again.counts == report.counts


def test_other_config_on_same_output_is_refused_unless_overwrite(tmp_path: Path, lj) -> None:
    corpus, _ = lj
    preprocess(load_config("tiny_en", SETTINGS), corpus, tmp_path / "out")
    other = load_config("tiny_en", [*SETTINGS, "audio.n_mels=16"])
    with pytest.raises(PreprocessError, match="different config or corpus"):
        preprocess(other, corpus, tmp_path / "out")
    report = preprocess(other, corpus, tmp_path / "out", overwrite=True)
    assert report.manifest["audio"]["n_mels"] == 16 and report.shards_skipped == 0


def test_split_is_deterministic_and_disjoint() -> None:
    cfg = load_config("tiny_en", ["data.val_size=3", "data.test_size=4"])
    ids = [f"u{i:03d}" for i in range(50)]
    a, b = pp._split(ids, cfg), pp._split(list(reversed(ids)), cfg)
    assert a == b
    assert (len(a["test"]), len(a["val"]), len(a["train"])) == (4, 3, 43)
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(ids)
    assert pp._split(ids, load_config("tiny_en", ["data.split_seed=2", "data.val_size=3",
                                                   "data.test_size=4"]))["test"] != a["test"]


def test_databaker_corpus_and_two_workers_give_identical_shards(tmp_path: Path) -> None:
    make_databaker(tmp_path / "db")
    cfg = load_config("tiny_zh", SETTINGS)
    one = preprocess(cfg, tmp_path / "db", tmp_path / "one", workers=1)
    two = preprocess(cfg, tmp_path / "db", tmp_path / "two", workers=2)
    assert one.counts == two.counts and sum(one.counts.values()) == len(GOOD_ZH)
    for p in sorted((tmp_path / "one" / "shards").glob("*.tfrecord")):
        assert p.read_bytes() == (tmp_path / "two" / "shards" / p.name).read_bytes()
    assert {p.item_id for p in one.rejected} == {"000007", "000008", "000009"}
    texts = {r["id"]: r["text"] for p in (tmp_path / "one" / "shards").glob("*.tfrecord")
             for r in read_records(p, cfg.audio.n_mels)}
    assert texts["000001"] == "ka2 er2 pu3 pei2 wai4 sun1 wan2 hua2 ti1"
    assert texts["000005"] == "lao3 ban3 zai4 nar3"
