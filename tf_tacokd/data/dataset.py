"""tf.data input pipeline over preprocessed shards.

Each batch is a dict of tensors (the Tacotron2 ``train_step`` unpacks it):

==================  ==================  =====================================================
key                 shape / dtype       meaning
==================  ==================  =====================================================
``text_ids``        [B, T] int32        symbol ids, 0-padded (0 is the pad id), EOS included
``text_lengths``    [B] int32           true lengths of ``text_ids``
``mel``             [B, F, n_mels] f32  log-mel (normalised with corpus statistics if
                                        ``audio.normalize_mel``), 0-padded; F is a
                                        multiple of ``model.reduction_factor``
``mel_lengths``     [B] int32           true number of frames
``mel_mask``        [B, F] float32      1 for real frames, 0 for padding
``stop_targets``    [B, F] float32      1 from the last real frame on, 0 before it
==================  ==================  =====================================================

Example:
    >>> from tf_tacokd.config import load_config
    >>> from tf_tacokd.data.dataset import make_dataset
    >>> ds = make_dataset("data/en", "train", load_config("espeak_en"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from ..audio import MelStats
from ..config import Config
from ..text import SymbolTable
from .layout import DataPaths

__all__ = ["Manifest", "load_manifest", "make_dataset", "bucket_boundaries", "distribute", "check_compatible"]


@dataclass(frozen=True)
class Manifest:
    """A preprocessed data directory: its manifest plus helpers."""

    root: Path
    data: dict[str, Any]

    @property
    def mel_stats(self) -> MelStats:
        return MelStats.from_dict(self.data["mel_stats"])

    @property
    def symbols(self) -> SymbolTable:
        return SymbolTable.from_dict(self.data["symbols"])

    @property
    def n_mels(self) -> int:
        return int(self.data["audio"]["n_mels"])

    def shards(self, split: str) -> list[str]:
        """The split's shard files, each checked against the size preprocessing recorded (a
        shard cut short would otherwise end training with a DataLossError naming no file)."""
        if split not in self.data["shards"]:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(self.data['shards'])}")
        checks = self.data.get("shard_checks", {})
        paths = []
        for rel in self.data["shards"][split]:
            path = self.root / rel
            expected = (checks.get(rel) or [None])[0]
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing shard; re-run `tacokd preprocess` into {self.root}")
            if expected is not None and path.stat().st_size != expected:
                raise ValueError(f"{path}: {path.stat().st_size} bytes, but preprocessing wrote {expected}: the "
                                 f"shard is damaged; re-run `tacokd preprocess` into {self.root} (it redoes "
                                 "damaged shards)")
            paths.append(str(path))
        return paths

    def count(self, split: str) -> int:
        return int(self.data["counts"][split])

    def texts(self, split: str) -> list[tuple[str, str, int]]:
        """``(id, normalised text, mel frames)`` of every utterance of a split, in shard order,
        read without decoding the mels.

        Example:
            >>> load_manifest("data/en").texts("test")[0]  # doctest: +SKIP
            ('ESPEAK-00017', 'it is raining again.', 131)
        """
        spec = {"id": tf.io.FixedLenFeature([], tf.string), "text": tf.io.FixedLenFeature([], tf.string),
                "n_frames": tf.io.FixedLenFeature([], tf.int64)}
        out = []
        for record in tf.data.TFRecordDataset(self.shards(split)):
            ex = tf.io.parse_single_example(record, spec)
            out.append((ex["id"].numpy().decode(), ex["text"].numpy().decode("utf-8"), int(ex["n_frames"].numpy())))
        return out


def load_manifest(data_dir: str | Path) -> Manifest:
    """Read ``manifest.json`` of a preprocessed directory (clear error if it is missing)."""
    path = DataPaths(data_dir).manifest
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; run `tacokd preprocess` on a corpus first")
    return Manifest(Path(data_dir), json.loads(path.read_text(encoding="utf-8")))


def bucket_boundaries(manifest: Manifest, count: int) -> list[int]:
    """``count - 1`` frame-length boundaries at evenly spaced training-set percentiles."""
    pct = manifest.data.get("frame_length_percentiles") or []
    if count <= 1 or len(pct) < 3:
        return []
    idx = np.linspace(0, len(pct) - 1, count + 1)[1:-1]
    return sorted({int(pct[int(round(i))]) + 1 for i in idx})


def check_compatible(manifest: Manifest, cfg: Config) -> None:
    """ValueError naming the key if ``manifest``'s data was preprocessed with other audio or text settings."""
    audio = manifest.data["audio"]
    for key in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax"):
        if audio[key] != getattr(cfg.audio, key):
            raise ValueError(
                f"{manifest.root}: preprocessed with audio.{key} = {audio[key]}, but the config has "
                f"{getattr(cfg.audio, key)}; re-run `tacokd preprocess` with this config"
            )
    if manifest.data["text"]["language"] != cfg.text.language:
        raise ValueError(
            f"{manifest.root}: text in {manifest.data['text']['language']!r}, config text.language is "
            f"{cfg.text.language!r}"
        )
    phonemizer = manifest.data["text"].get("phonemizer", "none")
    if phonemizer != cfg.text.phonemizer:
        raise ValueError(
            f"{manifest.root}: preprocessed with text.phonemizer = {phonemizer!r}, but the config has "
            f"{cfg.text.phonemizer!r}; re-run `tacokd preprocess` with this config or use its data"
        )


def make_dataset(
    data_dir: str | Path,
    split: str,
    cfg: Config,
    batch_size: int | None = None,
    shuffle: bool | None = None,
    repeat: bool = False,
    drop_remainder: bool = False,
    seed: int | None = None,
    with_ids: bool = False,
    shard: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of padded, masked examples from one split of a preprocessed directory.

    Args:
        data_dir: the output of ``tacokd preprocess``.
        split: "train", "val" or "test".
        cfg: the run's config (audio must match the preprocessing; model.reduction_factor,
            data.max_frames, data.max_text_len, data.shuffle_buffer, data.bucket_count).
        batch_size: the global batch (default ``train.batch_size``). Under a
            ``tf.distribute`` strategy, ``model.fit`` splits it across replicas.
        shuffle: shuffle files and examples (default: only for "train").
        repeat: repeat forever (for step-based training).
        drop_remainder: only full batches (static batch dimension).
        seed: shuffle seed (default ``train.seed``).
        with_ids: also yield the utterance ``id`` and normalised ``text`` strings.
        shard: ``(count, index)``: keep every count-th example from the index-th, before
            shuffling and batching (one input pipeline per worker in multi-worker training).

    Many parameters because training, validation, evaluation and multi-worker input each
    need a different combination; all but the first three have defaults.
    """
    manifest = load_manifest(data_dir)
    check_compatible(manifest, cfg)
    files = manifest.shards(split)
    if not files:
        raise ValueError(f"{manifest.root}: split {split!r} is empty")
    batch_size = batch_size or cfg.train.batch_size
    shuffle = (split == "train") if shuffle is None else shuffle
    seed = cfg.train.seed if seed is None else seed

    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # deterministic order for a seed (reproducible runs; workers agree on the order)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(_parser(manifest, cfg, with_ids), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(lambda x: (x["mel_lengths"] <= cfg.data.max_frames)
                   & (x["text_lengths"] <= cfg.data.max_text_len))
    if shard is not None:
        ds = ds.shard(*shard)
    if shuffle:
        ds = ds.shuffle(cfg.data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = _batch(ds, manifest, cfg, batch_size, drop_remainder, with_ids)
    finish = _masks_and_targets(cfg.model.reduction_factor, batch_size if drop_remainder else None)
    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _parser(manifest: Manifest, cfg: Config, with_ids: bool) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """One TFRecord -> ids and (normalised) log-mel with their lengths."""
    n_mels = manifest.n_mels
    stats = manifest.mel_stats if cfg.audio.normalize_mel else None
    spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "text": tf.io.FixedLenFeature([], tf.string),
        "ids": tf.io.VarLenFeature(tf.int64),
        "mel": tf.io.FixedLenFeature([], tf.string),
        "n_frames": tf.io.FixedLenFeature([], tf.int64),
    }
    mean = tf.constant(stats.mean) if stats else None
    std = tf.constant(stats.std) if stats else None

    def parse(record: tf.Tensor) -> dict[str, tf.Tensor]:
        ex = tf.io.parse_single_example(record, spec)
        mel = tf.reshape(tf.io.decode_raw(ex["mel"], tf.float32, little_endian=True), [-1, n_mels])
        if stats:
            mel = (mel - mean) / std
        ids = tf.cast(tf.sparse.to_dense(ex["ids"]), tf.int32)
        out = {"text_ids": ids, "text_lengths": tf.shape(ids)[0],
               "mel": mel, "mel_lengths": tf.shape(mel)[0]}
        if with_ids:
            out["id"], out["text"] = ex["id"], ex["text"]
        return out

    return parse


def _batch(ds: tf.data.Dataset, manifest: Manifest, cfg: Config, batch_size: int, drop_remainder: bool,
           with_ids: bool) -> tf.data.Dataset:
    """Padded batches, bucketed by mel length when ``data.bucket_count`` > 1."""
    padded_shapes = {"text_ids": [None], "text_lengths": [], "mel": [None, manifest.n_mels], "mel_lengths": []}
    if with_ids:
        padded_shapes.update({"id": [], "text": []})
    boundaries = bucket_boundaries(manifest, cfg.data.bucket_count)
    if not boundaries:
        return ds.padded_batch(batch_size, padded_shapes=padded_shapes, drop_remainder=drop_remainder)
    return ds.bucket_by_sequence_length(
        element_length_func=lambda x: x["mel_lengths"],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=padded_shapes,
        drop_remainder=drop_remainder,
    )


def _masks_and_targets(r: int, static_batch: int | None) -> Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]:
    """Pad each batch's mel to whole decoder steps of ``r`` frames and add ``mel_mask`` and
    ``stop_targets``; ``static_batch``: restore the static batch size bucketing loses (XLA and
    TPUs want it)."""

    def finish(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        mel = batch["mel"]
        frames = tf.shape(mel)[1]
        pad = (-frames) % r  # whole decoder steps of r frames
        mel = tf.pad(mel, [[0, 0], [0, pad], [0, 0]])
        positions = tf.range(frames + pad)[tf.newaxis, :]
        lengths = batch["mel_lengths"][:, tf.newaxis]
        batch["mel"] = mel
        batch["mel_mask"] = tf.cast(positions < lengths, tf.float32)
        batch["stop_targets"] = tf.cast(positions >= lengths - 1, tf.float32)
        if static_batch is not None:
            batch = {k: tf.ensure_shape(v, [static_batch, *v.shape[1:]]) for k, v in batch.items()}
        return batch

    return finish


def distribute(ds: tf.data.Dataset, strategy: tf.distribute.Strategy) -> Any:
    """The dataset split across a strategy's replicas (for custom training loops;
    ``model.fit`` does this itself)."""
    return strategy.experimental_distribute_dataset(ds)
