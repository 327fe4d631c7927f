"""The judge's network: a small convolutional CTC recogniser (Keras 3) and greedy decoding.

Architecture (QuartzNet-like, all convolutions, so it trains and scores fast on a CPU)::

    log-mel [B, T, 80] -> per-band standardisation (fixed statistics, stored as weights)
    -> Conv1D(channels, 5, stride 2) + LayerNorm + ReLU          [B, ceil(T/2), C], 20 ms
    -> blocks x [DepthwiseConv1D(kernel) -> LayerNorm -> Dense(C) -> ReLU -> Dropout] + residual
    -> Dense(n_classes)                                          CTC logits, class 0 = blank

With 8 blocks of kernel 15 the receptive field is about 2.3 s (1.1 s either side), enough
to spell an English word from its sound; there is no language model and no recurrence, so
a word that was never spoken is not put back from context. Padded frames are zeroed before
every convolution, so an utterance is recognised the same way alone or in a batch.

Example:
    >>> import numpy as np
    >>> m = CTCRecognizer(n_classes=29, channels=32, blocks=2)
    >>> m(np.zeros((1, 50, 80), "float32"), np.array([50])).shape
    TensorShape([1, 25, 29])
    >>> greedy_decode(np.array([[0.1, 0.9, 0.0], [0.1, 0.9, 0.0], [0.9, 0.1, 0.0], [0.1, 0.9, 0.0]]))
    [1, 1]
"""

from __future__ import annotations

import random
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from .frontend import N_MELS

__all__ = ["CTCRecognizer", "greedy_decode", "output_lengths", "transcribe_features", "batches", "pad_batch"]


def output_lengths(lengths):
    """Frames after the stride-2 subsampling: ``ceil(lengths / 2)``."""
    return (lengths + 1) // 2


def greedy_decode(scores: np.ndarray, length: int | None = None) -> list[int]:
    """Best-path CTC decoding: the best class per frame, repeats merged, blanks (0) removed.

    Args:
        scores: ``[T, n_classes]`` logits or probabilities of one utterance.
        length: frames to read (default: all).
    """
    best = np.argmax(np.asarray(scores)[: length if length is not None else len(scores)], axis=-1)
    if best.size == 0:
        return []
    keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != 0)
    return [int(i) for i in best[keep]]


@keras.saving.register_keras_serializable(package="tf_tacokd")
class CTCRecognizer(keras.Model):
    """Convolutional CTC speech recogniser.

    Args:
        n_classes: CTC classes including the blank (``Alphabet.size``).
        n_mels: input bands.
        channels: width of every block.
        blocks: residual depthwise-separable blocks.
        kernel_size: depthwise kernel (frames of 20 ms).
        dropout: dropout after every block while training.
    """

    def __init__(self, n_classes: int, n_mels: int = 80, channels: int = 192, blocks: int = 8,
                 kernel_size: int = 15, dropout: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_classes, self.n_mels, self.channels = n_classes, n_mels, channels
        self.n_blocks, self.kernel_size, self.dropout_rate = blocks, kernel_size, dropout
        self.feature_mean = self.add_weight(shape=(n_mels,), initializer="zeros", trainable=False,
                                            name="feature_mean")
        self.feature_std = self.add_weight(shape=(n_mels,), initializer="ones", trainable=False,
                                           name="feature_std")
        # "valid" after an explicit 2-frame pad: output frame t always covers input frames
        # 2t-2 .. 2t+2 ("same" padding with stride 2 shifts by a frame with the padded length's
        # parity, so an utterance would be heard differently alone and in a batch)
        self.subsample = keras.layers.Conv1D(channels, 5, strides=2, padding="valid", name="subsample")
        self.subsample_norm = keras.layers.LayerNormalization(name="subsample_norm")
        self.depthwise = [keras.layers.DepthwiseConv1D(kernel_size, padding="same", name=f"dw{i}")
                          for i in range(blocks)]
        self.norms = [keras.layers.LayerNormalization(name=f"norm{i}") for i in range(blocks)]
        self.pointwise = [keras.layers.Dense(channels, name=f"pw{i}") for i in range(blocks)]
        self.drop = keras.layers.Dropout(dropout)
        self.classifier = keras.layers.Dense(n_classes, name="classifier")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def get_config(self) -> dict:
        return {"n_classes": self.n_classes, "n_mels": self.n_mels, "channels": self.channels,
                "blocks": self.n_blocks, "kernel_size": self.kernel_size, "dropout": self.dropout_rate,
                "name": self.name}

    @property
    def metrics(self):
        return [self.loss_tracker]

    def set_feature_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Per-band standardisation of the log-mel (from the training corpus)."""
        self.feature_mean.assign(np.asarray(mean, np.float32))
        self.feature_std.assign(np.maximum(np.asarray(std, np.float32), 1e-3))

    def call(self, features, lengths=None, training: bool = False):
        """``[B, T, n_mels]`` log-mel (+ ``[B]`` lengths) -> ``[B, ceil(T/2), n_classes]`` logits."""
        features = tf.convert_to_tensor(features, tf.float32)
        t = tf.shape(features)[1]
        if lengths is None:
            lengths = tf.fill([tf.shape(features)[0]], t)
        lengths = tf.cast(lengths, tf.int32)
        mask_in = tf.sequence_mask(lengths, t, dtype=tf.float32)[..., None]
        x = (features - self.feature_mean) / self.feature_std * mask_in
        x = tf.pad(x, [[0, 0], [2, 2], [0, 0]])
        x = tf.nn.relu(self.subsample_norm(self.subsample(x)))
        mask = tf.sequence_mask(output_lengths(lengths), tf.shape(x)[1], dtype=tf.float32)[..., None]
        for dw, norm, pw in zip(self.depthwise, self.norms, self.pointwise):
            y = tf.nn.relu(pw(norm(dw(x * mask))))
            x = x + self.drop(y, training=training)
        return self.classifier(x * mask)

    def ctc_loss(self, batch: dict, training: bool):
        """CTC loss per label symbol (summed over the batch, divided by its label count)."""
        logits = self(batch["features"], batch["feature_lengths"], training=training)
        labels = tf.sparse.from_dense(tf.cast(batch["labels"], tf.int32))  # 0 is padding (never a label)
        per_utt = tf.nn.ctc_loss(labels, logits, None, output_lengths(tf.cast(batch["feature_lengths"], tf.int32)),
                                 logits_time_major=False, blank_index=0)
        return tf.reduce_sum(per_utt) / tf.cast(tf.maximum(tf.reduce_sum(batch["label_lengths"]), 1), tf.float32)

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            loss = self.ctc_loss(batch, training=True)
        grads = tape.gradient(loss, self.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, batch):
        self.loss_tracker.update_state(self.ctc_loss(batch, training=False))
        return {"loss": self.loss_tracker.result()}


# -- inference on features (the judge's use; training batches the same way) ------------


def batches(lengths: Sequence[int], batch_frames: int, rng: random.Random | None) -> list[list[int]]:
    """Indices grouped into batches of similar length with at most ``batch_frames`` padded
    frames each (sorted by length with a little noise, then the batch order shuffled)."""
    noise = (lambda: rng.uniform(0.9, 1.1)) if rng else (lambda: 1.0)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i] * noise())
    out, current, longest = [], [], 0
    for i in order:
        longest_if = max(longest, lengths[i])
        if current and longest_if * (len(current) + 1) > batch_frames:
            out.append(current)
            current, longest_if = [], lengths[i]
        current.append(i)
        longest = longest_if
    if current:
        out.append(current)
    if rng:
        rng.shuffle(out)
    return out


def pad_batch(feats: Sequence[np.ndarray], labels: Sequence[list[int]]) -> dict[str, np.ndarray]:
    """Zero-padded features and labels of one batch, with their lengths."""
    t = max(len(f) for f in feats)
    x = np.zeros((len(feats), t, N_MELS), np.float32)
    for k, f in enumerate(feats):
        x[k, : len(f)] = f
    lmax = max(1, max(len(y) for y in labels))
    y = np.zeros((len(labels), lmax), np.int32)
    for k, lab in enumerate(labels):
        y[k, : len(lab)] = lab
    return {"features": x, "feature_lengths": np.array([len(f) for f in feats], np.int32),
            "labels": y, "label_lengths": np.array([len(lab) for lab in labels], np.int32)}


def transcribe_features(model: CTCRecognizer, feats: Sequence[np.ndarray], alphabet, batch_frames: int = 24000
                        ) -> list[str]:
    """Greedy transcripts of log-mel features, batched by length."""
    out: list[str] = [""] * len(feats)
    for group in batches([len(f) for f in feats], batch_frames, None):
        b = pad_batch([np.asarray(feats[i], np.float32) for i in group], [[0]] * len(group))
        logits = _infer(model, b["features"], b["feature_lengths"]).numpy()
        for k, i in enumerate(group):
            n = int(output_lengths(b["feature_lengths"][k]))
            out[i] = alphabet.decode(greedy_decode(logits[k], n))
    return out


def _infer(model, x, lengths):
    fn = getattr(model, "_tacokd_infer", None)
    if fn is None:
        fn = tf.function(lambda a, b: model(a, b, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec([None, None, N_MELS], tf.float32),
                                          tf.TensorSpec([None], tf.int32)])
        model._tacokd_infer = fn
    return fn(tf.constant(x), tf.constant(lengths, tf.int32))
