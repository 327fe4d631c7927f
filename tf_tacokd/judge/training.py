"""Training the judge: ``model.fit`` over its espeak-ng corpus, resumable, with TensorBoard.

A judge directory holds::

    corpus/            the rendered corpus (judge.corpus.build_corpus), resumable
    checkpoints/       tf.train checkpoints (model + optimizer), one per epoch
    logs/              TensorBoard (CTC loss, validation CER/WER, learning rate)
    judge.keras        the trained recogniser
    judge.json         language, alphabet, training summary and validation figures
    history.csv        per-epoch metrics

Re-running ``train_judge`` on the same directory resumes from the last epoch.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..runs import RunPaths
from .frontend import ALPHABETS, N_MELS
from .model import CTCRecognizer, batches, output_lengths, pad_batch, transcribe_features

__all__ = ["JudgeSettings", "train_judge", "WarmupCosine"]


@dataclass
class JudgeSettings:
    """Training settings (defaults measured to fit the 60-minute budget on 2 CPU cores)."""

    size: int = 12000
    val_size: int = 300
    seed: int = 7
    epochs: int = 8
    batch_frames: int = 12000
    learning_rate: float = 2e-3
    warmup_steps: int = 300
    channels: int = 192
    blocks: int = 8
    kernel_size: int = 15
    dropout: float = 0.1
    freq_masks: int = 2
    freq_mask_width: int = 8

    def to_dict(self) -> dict:
        return asdict(self)


@keras.saving.register_keras_serializable(package="tf_tacokd")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``peak / 100``."""

    def __init__(self, peak: float, warmup: int, total: int) -> None:
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1) / max(self.warmup, 1)
        progress = tf.clip_by_value((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        cosine = self.peak * (0.01 + 0.99 * 0.5 * (1 + tf.cos(math.pi * progress)))
        return tf.where(step < self.warmup, warm, cosine)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def _dataset(feats, labels, settings: JudgeSettings, train: bool, epoch_seed: int) -> tf.data.Dataset:
    lengths = [len(f) for f in feats]
    spec = {"features": tf.TensorSpec([None, None, N_MELS], tf.float32),
            "feature_lengths": tf.TensorSpec([None], tf.int32),
            "labels": tf.TensorSpec([None, None], tf.int32),
            "label_lengths": tf.TensorSpec([None], tf.int32)}

    def gen():
        epoch = epoch_seed
        while True:
            rng = random.Random(settings.seed * 7919 + epoch) if train else None
            np_rng = np.random.default_rng(settings.seed * 7919 + epoch)
            for group in batches(lengths, settings.batch_frames, rng):
                fs = [feats[i].astype(np.float32) for i in group]
                if train:  # frequency masks only (no time masks: see judge.corpus)
                    for f in fs:
                        for _ in range(settings.freq_masks):
                            w = int(np_rng.integers(0, settings.freq_mask_width + 1))
                            lo = int(np_rng.integers(0, N_MELS - w + 1))
                            f[:, lo:lo + w] = f.mean()
                yield pad_batch(fs, [labels[i] for i in group])
            if not train:
                return
            epoch += 1

    return tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(2)


class _Validate(keras.callbacks.Callback):
    """Greedy-decoded validation CER and WER after every epoch (logged and kept)."""

    def __init__(self, feats, texts, alphabet, lang: str, writer) -> None:
        super().__init__()
        self.feats, self.texts, self.alphabet, self.lang, self.writer = feats, texts, alphabet, lang, writer

    def on_epoch_end(self, epoch, logs=None):
        from ..evaluate.intelligibility import label_scores

        hyps = transcribe_features(self.model, self.feats, self.alphabet)
        scores = [label_scores(r, h, self.lang) for r, h in zip(self.texts, hyps)]
        unit = "words" if self.lang == "en" else "syllables"
        main = "wer" if self.lang == "en" else "ser"
        n = sum(s[unit] for s in scores)
        rate = sum(s[main] * s[unit] for s in scores) / max(n, 1)
        cer = float(np.mean([s["cer"] for s in scores]))
        if logs is not None:
            logs[f"val_{main}"] = rate
            logs["val_cer"] = cer
        with self.writer.as_default(step=epoch + 1):
            tf.summary.scalar(f"validation/{main}", rate)
            tf.summary.scalar("validation/cer", cer)
        self.writer.flush()


def _history(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def train_judge(lang: str, out: str | Path, settings: JudgeSettings | None = None, workers: int = 1,
                exclude: set[str] | None = None, corpus: str | Path | None = None,
                echo: Callable[[str], None] = print, verbose: int | str = "auto") -> dict:
    """Build the corpus (if needed) and train (or resume) the judge of ``lang`` in ``out``.

    Args:
        lang: "en" or "zh".
        out: the judge directory.
        settings: corpus size, epochs, model size, optimiser.
        workers: processes rendering the corpus.
        exclude: labels never to train on (default :func:`~.corpus.excluded_labels`).
        corpus: an already rendered corpus directory (default ``out/corpus``).
        echo: where status lines go.

    Returns:
        The judge's summary (also written to ``out/judge.json``).

    Long because it is one recipe read top to bottom: corpus, features, model, resume, fit, the
    validation record.
    """
    from .corpus import build_corpus, load_corpus

    s = settings or JudgeSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    alphabet = ALPHABETS[lang]
    corpus = Path(corpus) if corpus else out / "corpus"
    began = time.perf_counter()
    if not (corpus / "items.json").is_file() or len(list(corpus.glob("*.npz"))) < math.ceil(s.size / 250) + math.ceil(s.val_size / 250):
        echo(f"rendering the judge corpus ({s.size} + {s.val_size} utterances) into {corpus}")
        build_corpus(lang, corpus, s.size, s.val_size, s.seed, workers=workers, exclude=exclude)
    feats, texts, _ = load_corpus(corpus, "train")
    val_feats, val_texts, _ = load_corpus(corpus, "val")
    labels = [alphabet.encode(t) for t in texts]
    keep = [i for i, (f, y) in enumerate(zip(feats, labels)) if 0 < len(y) and len(y) < output_lengths(len(f))]
    if len(keep) < len(feats):
        echo(f"left out {len(feats) - len(keep)} utterances whose label is longer than their frames allow")
    feats, labels = [feats[i] for i in keep], [labels[i] for i in keep]
    steps_per_epoch = len(batches([len(f) for f in feats], s.batch_frames, random.Random(0)))
    total = steps_per_epoch * s.epochs
    echo(f"judge {lang}: {len(feats)} training / {len(val_feats)} validation utterances, "
         f"{steps_per_epoch} steps per epoch, {s.epochs} epochs")

    keras.utils.set_random_seed(s.seed)
    model = CTCRecognizer(alphabet.size, N_MELS, s.channels, s.blocks, s.kernel_size, s.dropout)
    stacked = np.concatenate([f.astype(np.float32) for f in feats[:3000]])
    model.set_feature_stats(stacked.mean(0), stacked.std(0))
    model(np.zeros((1, 20, N_MELS), np.float32), np.array([20]))
    model.compile(optimizer=keras.optimizers.Adam(WarmupCosine(s.learning_rate, s.warmup_steps, total)))
    model.optimizer.build(model.trainable_variables)
    from ..train import restore_intact, training_checkpoint

    ckpt = training_checkpoint(model)
    files = RunPaths(out)  # a judge's training directory has a run's layout
    manager = tf.train.CheckpointManager(ckpt, files.checkpoints, max_to_keep=2)
    restore_intact(ckpt, manager, echo)
    done_epochs = int(model.optimizer.iterations.numpy()) // steps_per_epoch
    if done_epochs:
        echo(f"resuming after epoch {done_epochs}")

    class _Save(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            manager.save(checkpoint_number=epoch + 1)
            _history(files.history, {"epoch": epoch + 1, "step": int(self.model.optimizer.iterations.numpy()),
                                     "time": round(time.time(), 1),
                                     **{k: float(v) for k, v in (logs or {}).items()}})

    writer = tf.summary.create_file_writer(str(files.logs / "validation"))
    val_ds = _dataset(val_feats, [alphabet.encode(t) for t in val_texts], s, train=False, epoch_seed=0)
    if done_epochs < s.epochs:
        model.fit(_dataset(feats, labels, s, train=True, epoch_seed=done_epochs), epochs=s.epochs,
                  initial_epoch=done_epochs, steps_per_epoch=steps_per_epoch, validation_data=val_ds,
                  callbacks=[_Validate(val_feats, val_texts, alphabet, lang, writer), _Save(),
                             keras.callbacks.TensorBoard(str(files.logs), write_graph=False)],
                  verbose=verbose)
    hyps = transcribe_features(model, val_feats, alphabet)
    from ..evaluate.intelligibility import label_scores

    scores = [label_scores(r, h, lang) for r, h in zip(val_texts, hyps)]
    main, unit = ("wer", "words") if lang == "en" else ("ser", "syllables")
    rate = sum(x[main] * x[unit] for x in scores) / max(sum(x[unit] for x in scores), 1)
    model.save(out / "judge.keras")
    summary = {"lang": lang, "alphabet": alphabet.symbols, "settings": s.to_dict(),
               "train_utterances": len(feats), "val_utterances": len(val_feats),
               f"val_{main}": rate, "val_cer": float(np.mean([x["cer"] for x in scores])),
               "parameters": int(model.count_params()), "seconds_this_run": round(time.perf_counter() - began, 1)}
    (out / "judge.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
