"""Preprocessing: corpus -> ids and log-mels in sharded TFRecords with a manifest.

Output directory: see :class:`~tf_tacokd.data.layout.DataPaths`.

Resumable and idempotent: a shard is written to a temporary file and renamed when
complete, then its summary is written; a re-run skips shards whose summary exists,
so an interrupted run loses at most the shards in progress. A bad item (missing,
corrupt, silent, too long or wrongly sampled audio; empty or unreadable text;
malformed metadata) is listed in ``rejected.tsv`` and skipped, never the shard.

Example:
    >>> from tf_tacokd.config import load_config
    >>> from tf_tacokd.data.preprocess import preprocess
    >>> report = preprocess(load_config("espeak_en"), "corpora/en", "data/en")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..atomic import atomic_path, write_json
from ..config import Config, config_from_dict
from ..text import TextFrontEnd, UnknownCharacterWarning
from .corpora import Problem, read_corpus
from .layout import DataPaths

__all__ = ["preprocess", "PreprocessReport", "PreprocessError", "preprocess_hash", "SPLITS"]

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1


class PreprocessError(RuntimeError):
    """Preprocessing cannot go on (strict mode, or an output directory from another config)."""


@dataclass
class PreprocessReport:
    """What a preprocessing run did."""

    out_dir: Path
    counts: dict[str, int]
    hours: dict[str, float]
    rejected: list[Problem]
    notes: list[Problem]
    shards_written: int
    shards_skipped: int
    seconds: float
    items_per_second: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)


def preprocess_hash(cfg: Config) -> str:
    """Hash of the settings that change preprocessing output (audio, text, data splits)."""
    d = cfg.to_dict()
    relevant = {k: d[k] for k in ("audio", "text")}
    if relevant["text"].get("phonemizer") == "none":  # data preprocessed before the option existed stays valid
        relevant["text"] = {k: v for k, v in relevant["text"].items() if k != "phonemizer"}
    relevant["data"] = {k: d["data"][k] for k in ("corpus_format", "databaker_text", "val_size",
                                                  "test_size", "split_seed", "shard_size",
                                                  "max_text_len", "max_frames")}
    relevant["format_version"] = FORMAT_VERSION
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _split(ids: list[str], cfg: Config) -> dict[str, list[str]]:
    """Deterministic split: sorted ids shuffled with data.split_seed; test, then val, then train."""
    order = sorted(ids)
    random.Random(cfg.data.split_seed).shuffle(order)
    n_test = min(cfg.data.test_size, len(order))
    n_val = min(cfg.data.val_size, len(order) - n_test)
    return {
        "test": sorted(order[:n_test]),
        "val": sorted(order[n_test : n_test + n_val]),
        "train": sorted(order[n_test + n_val :]),
    }


def _serialize(item_id: str, text: str, ids: list[int], mel: np.ndarray, duration: float) -> bytes:
    import tensorflow as tf

    def b(v: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    feature = {
        "id": b(item_id.encode()),
        "text": b(text.encode()),
        "ids": tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
        "mel": b(np.ascontiguousarray(mel, dtype="<f4").tobytes()),
        "n_frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[mel.shape[0]])),
        "duration": tf.train.Feature(float_list=tf.train.FloatList(value=[duration])),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)  # byte-identical across processes


def _compute_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Worker (no TensorFlow): load audio and compute log-mels for one shard's items."""
    from ..audio import AudioError, load_audio, log_mel

    cfg = config_from_dict(task["config"])
    a, n_mels = cfg.audio, cfg.audio.n_mels
    summary: dict[str, Any] = {
        "name": task["name"], "split": task["split"], "count": 0, "seconds": 0.0, "frames": 0,
        "mel_sum": np.zeros(n_mels, np.float64), "mel_sumsq": np.zeros(n_mels, np.float64),
        "rejected": [], "frame_lengths": [], "text_lengths": [], "content": task.get("content"),
    }  # fmt: skip
    examples = []
    for item in task["items"]:
        try:
            wav = load_audio(item["audio_path"], a)
        except AudioError as e:
            summary["rejected"].append([item["source"], item["id"], str(e)])
            continue
        mel = log_mel(wav, a)
        if mel.shape[0] > cfg.data.max_frames:
            summary["rejected"].append([item["source"], item["id"],
                                        f"too long: {mel.shape[0]} frames > data.max_frames {cfg.data.max_frames}"])
            continue
        duration = wav.size / a.sample_rate
        examples.append((item["id"], item["text"], item["ids"], mel, duration))
        summary["count"] += 1
        summary["seconds"] += duration
        summary["frames"] += mel.shape[0]
        summary["frame_lengths"].append(mel.shape[0])
        summary["text_lengths"].append(len(item["ids"]))
        mel64 = mel.astype(np.float64)
        summary["mel_sum"] += mel64.sum(axis=0)
        summary["mel_sumsq"] += (mel64**2).sum(axis=0)
    summary["mel_sum"] = summary["mel_sum"].tolist()
    summary["mel_sumsq"] = summary["mel_sumsq"].tolist()
    return {"path": task["path"], "summary": summary, "examples": examples}


def _write_shard(result: dict[str, Any]) -> dict[str, Any]:
    """Parent: write one shard's records to a temporary file, rename it, then its summary."""
    import tensorflow as tf

    out = Path(result["path"])
    with atomic_path(out) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for example in result["examples"]:
            writer.write(_serialize(*example))
    result["summary"]["bytes"], result["summary"]["crc32"] = _file_check(out)
    _write_json(out.with_suffix(".json"), result["summary"])
    return result["summary"]


def _file_check(path: Path) -> tuple[int, int]:
    """Size and CRC-32 of a file (read in 1 MiB blocks)."""
    crc, size = 0, 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc, size = zlib.crc32(block, crc), size + len(block)
    return size, crc


def _content_key(items: list[dict[str, Any]]) -> str:
    """What a shard was made from: each item's id, text and audio file (size, mtime)."""
    h = hashlib.sha256()
    for it in items:
        try:
            st = os.stat(it["audio_path"])
            audio = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            audio = "missing"
        h.update(f"{it['id']}\t{it['text']}\t{audio}\n".encode())
    return h.hexdigest()[:16]


def _process_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Compute and write one shard in this process; returns its summary."""
    return _write_shard(_compute_shard(task))


def _write_json(path: Path, data: Any) -> None:
    write_json(path, data, ensure_ascii=False)


def _strict_fail(problem: Problem) -> PreprocessError:
    return PreprocessError(
        f"--strict: {problem.location}: item {problem.item_id!r}: {problem.reason} "
        "(without --strict it would be skipped and listed in rejected.tsv)"
    )


def _texts(listing, fe: TextFrontEnd, cfg: Config, strict: bool):
    """Text -> ids for every utterance; bad or overlong text becomes a rejection."""
    items, rejected, notes = [], [], []
    fe.prefetch([u.text for u in listing.utterances])  # phonemes (if any) in a few espeak-ng calls
    for u in listing.utterances:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownCharacterWarning)
            try:
                p = fe.process(u.text)
            except ValueError as e:
                rejected.append(Problem(u.source, u.id, f"text: {e}"))
                continue
        for w in caught:
            problem = Problem(u.source, u.id, f"text: {w.message}")
            if strict:
                raise _strict_fail(problem)
            notes.append(problem)
        if len(p.ids) > cfg.data.max_text_len:
            rejected.append(Problem(u.source, u.id, f"text too long: {len(p.ids)} symbols > data.max_text_len {cfg.data.max_text_len}"))
            continue
        items.append({"id": u.id, "text": p.normalized, "ids": p.ids,
                      "audio_path": str(u.audio_path), "source": u.source})
    return items, rejected, notes


def preprocess(
    cfg: Config,
    corpus_dir: str | Path,
    out_dir: str | Path,
    workers: int = 1,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> PreprocessReport:
    """Preprocess a corpus into sharded TFRecords (see the module docstring for the layout).

    Args:
        cfg: audio, text and data settings.
        corpus_dir: an LJSpeech- or DataBaker-layout corpus (``cfg.data.corpus_format``).
        out_dir: the output directory; a re-run resumes.
        workers: processes computing features (each imports TensorFlow once).
        strict: fail on the first bad item instead of skipping it.
        overwrite: start over if ``out_dir`` holds output of a different config or corpus.
        progress: called with the number of items finished since the last call.
        echo: where progress lines go.

    Raises:
        PreprocessError: strict mode met a bad item, or ``out_dir`` was made from another
            config or corpus (and not ``overwrite``).
    """
    from ..runs import DirectoryLock

    with DirectoryLock(out_dir, "preprocess"):
        return _preprocess_locked(cfg, corpus_dir, out_dir, workers, strict, overwrite, progress, echo)


def _preprocess_locked(cfg: Config, corpus_dir: str | Path, out_dir: str | Path, workers: int, strict: bool,
                       overwrite: bool, progress: Callable[[int], None] | None,
                       echo: Callable[[str], None] | None) -> PreprocessReport:
    """:func:`preprocess` with ``out_dir`` locked: usable items, the plan, the shards still
    to write, writing them, the manifest."""
    start = time.perf_counter()
    echo = echo or (lambda s: None)
    files = DataPaths(out_dir)
    files.shards.mkdir(parents=True, exist_ok=True)
    listing = read_corpus(corpus_dir, cfg.data.corpus_format, cfg.data.databaker_text)
    if strict and listing.rejected:
        raise _strict_fail(listing.rejected[0])
    fe = TextFrontEnd.from_config(cfg.text)
    items, text_rejected, text_notes = _texts(listing, fe, cfg, strict)
    if strict and text_rejected:
        raise _strict_fail(text_rejected[0])
    by_id = {it["id"]: it for it in items}
    if not by_id:
        problems = listing.rejected + text_rejected
        first = "; ".join(f"{p.location}: {p.reason}" for p in problems[:3])
        raise PreprocessError(
            f"{corpus_dir}: no usable utterances ({len(problems)} entries rejected"
            + (f", for example {first}" if first else ": the metadata lists none") + ")")
    plan = _plan(files, cfg, by_id, corpus_dir, overwrite)
    cfg.save(files.config)

    summaries, tasks = _shards_to_write(files, plan, by_id, cfg, progress, echo)
    skipped_shards = len(summaries)
    n_todo = sum(len(t["items"]) for t in tasks)
    t0 = time.perf_counter()
    for summary in _run(tasks, workers):
        summaries[summary["name"]] = summary
        if strict and summary["rejected"]:
            raise _strict_fail(Problem(*summary["rejected"][0]))
        if progress:
            progress(summary["count"] + len(summary["rejected"]))
    work_seconds = time.perf_counter() - t0

    audio_rejected = [Problem(*r) for s in summaries.values() for r in s["rejected"]]
    rejected = listing.rejected + text_rejected + audio_rejected
    manifest = _manifest(cfg, fe, plan, summaries, rejected, corpus_dir)
    _write_json(files.manifest, manifest)
    with open(files.rejected, "w", encoding="utf-8") as f:
        f.write("location\titem\treason\n")
        f.writelines(p.tsv() + "\n" for p in rejected)
    return PreprocessReport(
        files.root, manifest["counts"], manifest["hours"], rejected, listing.notes + text_notes,
        len(tasks), skipped_shards, time.perf_counter() - start,
        n_todo / work_seconds if tasks and work_seconds > 0 else 0.0, manifest,
    )


def _plan(files: DataPaths, cfg: Config, by_id: dict[str, dict[str, Any]], corpus_dir: str | Path,
          overwrite: bool) -> dict[str, Any]:
    """Which utterance goes to which shard: fixed on the first run so that a resumed run writes
    the same shards; another config's or corpus' plan is refused unless ``overwrite``."""
    phash = preprocess_hash(cfg)
    corpus_key = hashlib.sha256("\n".join(sorted(by_id)).encode()).hexdigest()[:16]
    if files.plan.is_file():
        plan = json.loads(files.plan.read_text(encoding="utf-8"))
        if (plan["config_hash"], plan["corpus_key"]) == (phash, corpus_key):
            return plan
        if not overwrite:
            raise PreprocessError(
                f"{files.root} holds preprocessing output of a different config or corpus "
                f"(config hash {plan['config_hash']} vs {phash}); use another --out or --overwrite"
            )
        for p in files.shards.glob("*"):
            p.unlink()
        files.plan.unlink()
    splits = _split(list(by_id), cfg)
    shards = []
    for split in SPLITS:
        ids = splits[split]
        for k in range(0, len(ids), cfg.data.shard_size):
            shards.append({"name": f"{split}-{k // cfg.data.shard_size:05d}", "split": split,
                           "items": ids[k : k + cfg.data.shard_size]})
    plan = {"config_hash": phash, "corpus_key": corpus_key, "corpus": str(Path(corpus_dir).resolve()),
            "shards": shards}
    _write_json(files.plan, plan)
    return plan


def _shards_to_write(files: DataPaths, plan: dict[str, Any], by_id: dict[str, dict[str, Any]], cfg: Config,
                     progress: Callable[[int], None] | None, echo: Callable[[str], None]
                     ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The summaries of shards already written and intact, and a task for every other shard
    (missing, made from texts or audio that changed since, or damaged after it was written)."""
    summaries: dict[str, dict[str, Any]] = {}
    tasks = []
    changed, damaged = [], []
    for shard in plan["shards"]:
        summary_path = files.shard_summary(shard["name"])
        record_path = files.shard_record(shard["name"])
        items_of = [by_id[i] for i in shard["items"]]
        content = _content_key(items_of)
        if summary_path.is_file() and record_path.is_file():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            if summary.get("content") != content:  # an edited transcript or a replaced wav
                changed.append(shard["name"])
            elif (summary.get("bytes"), summary.get("crc32")) != _file_check(record_path):
                damaged.append(shard["name"])  # cut short or corrupted after it was written
            else:
                summaries[shard["name"]] = summary
                if progress:
                    progress(len(shard["items"]))
                continue
        tasks.append({"name": shard["name"], "split": shard["split"], "path": str(record_path),
                      "items": items_of, "config": cfg.to_dict(), "content": content})
    if summaries:
        echo(f"resuming: {len(summaries)} of {len(plan['shards'])} shards already done and intact")
    if changed:
        echo(f"redoing {len(changed)} shard(s) whose texts or audio changed since they were made: "
             f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
    if damaged:
        echo(f"redoing {len(damaged)} damaged shard(s) (size or CRC differs from when written): "
             f"{', '.join(damaged[:5])}{' ...' if len(damaged) > 5 else ''}")
    return summaries, tasks


def _run(tasks: list[dict[str, Any]], workers: int):
    """Shard summaries as they finish: in-process for one worker, else a spawn pool.

    Workers compute features only (numpy/librosa, no TensorFlow: importing it costs
    seconds and hundreds of MB per process); this process writes the records. Each
    worker's BLAS runs one thread so that N workers use N cores without oversubscribing.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield _process_shard(task)
        return
    from ..workers import single_thread_pool

    with single_thread_pool(min(workers, len(tasks))) as pool:
        for result in pool.imap_unordered(_compute_shard, tasks):
            yield _write_shard(result)


def _manifest(cfg: Config, fe: TextFrontEnd, plan: dict[str, Any], summaries: dict[str, dict[str, Any]],
              rejected: list[Problem], corpus_dir: str | Path) -> dict[str, Any]:
    from ..audio import MelStats

    counts = {s: 0 for s in SPLITS}
    seconds = {s: 0.0 for s in SPLITS}
    shards: dict[str, list[str]] = {s: [] for s in SPLITS}
    checks: dict[str, list[int | None]] = {}
    frame_lengths: list[int] = []
    text_lengths: list[int] = []
    n_mels = cfg.audio.n_mels
    total, total_sq, frames = np.zeros(n_mels), np.zeros(n_mels), 0
    for shard in plan["shards"]:
        s = summaries[shard["name"]]
        split = s["split"]
        counts[split] += s["count"]
        seconds[split] += s["seconds"]
        if s["count"]:
            rel = DataPaths.shard_relative(s["name"])
            shards[split].append(rel)
            checks[rel] = [s.get("bytes"), s.get("crc32")]
        if split == "train":
            total += np.asarray(s["mel_sum"])
            total_sq += np.asarray(s["mel_sumsq"])
            frames += s["frames"]
            frame_lengths += s["frame_lengths"]
            text_lengths += s["text_lengths"]
    stats = MelStats.from_moments(frames, total, total_sq)
    return {
        "format_version": FORMAT_VERSION,
        "config_hash": plan["config_hash"],
        "corpus": str(Path(corpus_dir).resolve()),
        "counts": counts,
        "hours": {k: round(v / 3600, 4) for k, v in seconds.items()},
        "rejected": len(rejected),
        "shards": shards,
        "shard_checks": checks,  # [bytes, crc32] of each shard file, verified before use
        "train_frames": int(frames),
        # every 5th percentile of the training split: bucket boundaries for batching
        "frame_length_percentiles": _percentiles(frame_lengths),
        "text_length_percentiles": _percentiles(text_lengths),
        "mel_stats": stats.to_dict(),
        "symbols": fe.symbols.to_dict(),
        "text": fe.get_config(),
        "audio": dataclasses.asdict(cfg.audio),
    }


def _percentiles(values: list[int]) -> list[float]:
    """Every 5th percentile (21 values, min to max); empty if there are no values."""
    return [float(v) for v in np.percentile(values, np.arange(0, 101, 5))] if values else []
