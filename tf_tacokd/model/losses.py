"""Losses and frame measures on masked, padded batches: one home for each.

Every mean over real frames/steps/examples is a *share* of the global mean under a
distribution strategy (its denominator is summed over replicas: :func:`global_sum`), so the
replicas' gradients add up to the one-device gradient. Measures documented as "a plain mean"
are reported, not differentiated.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["global_sum", "masked_mean", "masked_mse", "masked_mae", "frame_correlation", "guided_attention_loss",
           "dtw_path", "temporal_variance", "gv_loss", "spread_ratio"]


def global_sum(x: tf.Tensor) -> tf.Tensor:
    """``x`` summed over all replicas (itself on one device).

    Loss denominators use it: each replica then computes its *share* of the global
    masked mean, and the shares' gradients, summed by Keras across replicas, are the
    gradient of the global mean, exactly as on one device whatever the lengths in each
    replica's part of the batch.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)
    return x


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``sum(values * mask) / sum(mask)`` with the denominator taken over all replicas."""
    return tf.reduce_sum(values * mask) / tf.maximum(global_sum(tf.reduce_sum(mask)), 1.0)


def masked_mse(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean squared error over real frames: ``mask`` is ``[B, F]``, values ``[B, F, n_mels]``."""
    frames = tf.minimum(tf.shape(pred)[1], tf.shape(target)[1])
    pred = tf.cast(pred, tf.float32)  # float16 under mixed precision
    err = tf.reduce_mean(tf.square(pred[:, :frames] - target[:, :frames]), -1)
    return masked_mean(err, mask[:, :frames])


def frame_correlation(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Pearson correlation of predicted and natural frames, per example over its real frames
    and all bands after removing each band's mean over time; the mean over this replica's
    examples (a plain mean, not a share).

    A free-running output whose correlation is below 0.5 has a larger L2 distance to the
    natural frames than the example's mean frame has, if it varies as much as they do: the
    L2 loss then rewards flattening it (the drone: RESULTS.md section 10).
    """
    frames = tf.minimum(tf.shape(pred)[1], tf.shape(target)[1])
    m = mask[:, :frames, tf.newaxis]
    n = tf.maximum(tf.reduce_sum(m, 1, keepdims=True), 1.0)
    centre = lambda x: (x - tf.reduce_sum(x * m, 1, keepdims=True) / n) * m  # noqa: E731
    p, t = centre(tf.cast(pred[:, :frames], tf.float32)), centre(tf.cast(target[:, :frames], tf.float32))
    num = tf.reduce_sum(p * t, [1, 2])
    den = tf.sqrt(tf.reduce_sum(p * p, [1, 2]) * tf.reduce_sum(t * t, [1, 2]))
    return tf.reduce_mean(num / tf.maximum(den, 1e-8))


def guided_attention_loss(alignments, text_lengths, step_lengths, sigma: float) -> tf.Tensor:
    """Tachibana et al. (2018): penalise attention far from the diagonal.

    ``W[n, t] = 1 - exp(-(n/N - t/T)^2 / (2 sigma^2))`` over the valid region of each
    example. Normalised per decoder step (not per matrix element): each step's weights
    sum to 1, so the loss is the attention mass off the diagonal band, in [0, 1], on the
    same scale as the mel loss. (Per element it is ~1/T of that and barely guides.)
    """
    n = tf.cast(tf.range(tf.shape(alignments)[1]), tf.float32)[tf.newaxis, :, tf.newaxis]
    t = tf.cast(tf.range(tf.shape(alignments)[2]), tf.float32)[tf.newaxis, tf.newaxis, :]
    big_n = tf.cast(step_lengths, tf.float32)[:, tf.newaxis, tf.newaxis]
    big_t = tf.cast(text_lengths, tf.float32)[:, tf.newaxis, tf.newaxis]
    w = 1.0 - tf.exp(-tf.square(n / big_n - t / big_t) / (2.0 * sigma**2))
    mask = tf.cast((n < big_n) & (t < big_t), tf.float32)
    steps = global_sum(tf.reduce_sum(tf.cast(step_lengths, tf.float32)))
    return tf.reduce_sum(alignments * w * mask) / tf.maximum(steps, 1.0)


def masked_mae(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean absolute error over real frames (``mask`` ``[B, F]``, values ``[B, F, n_mels]``)."""
    frames = tf.minimum(tf.shape(pred)[1], tf.shape(target)[1])
    err = tf.reduce_mean(tf.abs(tf.cast(pred, tf.float32)[:, :frames] - target[:, :frames]), -1)
    return masked_mean(err, mask[:, :frames])


def dtw_path(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor, band: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Each example's frames paired along its dynamic-time-warping path (squared Euclidean
    cost; steps (1, 1), (1, 0), (0, 1); ``librosa.sequence.dtw``), for a feature loss that
    small timing offsets do not dominate (RESULTS.md section 10.17). No gradient flows
    through the path; gather frames with it and the distance is differentiable as usual.

    Args:
        pred, target: ``[B, F, D]`` frames.
        mask: ``[B, F]``, 1 for real frames (both sequences have the same length per example).
        band: Sakoe-Chiba radius as a fraction of the length (1.0: unconstrained).

    Returns:
        ``(pairs, path_mask)``: ``[B, P, 2]`` int32 frame indices (pred's, target's) and
        ``[B, P]`` float32, 1 on the path, P = 2F - 1.

    Example:
        >>> pairs, m = dtw_path(x, y, mask, 0.25)  # doctest: +SKIP
        >>> loss = masked_mse(tf.gather(x, pairs[..., 0], batch_dims=1),
        ...                   tf.gather(y, pairs[..., 1], batch_dims=1), m)  # doctest: +SKIP
    """
    frames = tf.minimum(tf.shape(pred)[1], tf.shape(target)[1])
    lengths = tf.cast(tf.reduce_sum(mask[:, :frames], 1), tf.int32)
    pairs, path_mask = tf.numpy_function(
        lambda x, y, n: _dtw_path_numpy(x, y, n, band),
        [tf.stop_gradient(tf.cast(pred[:, :frames], tf.float32)),
         tf.stop_gradient(tf.cast(target[:, :frames], tf.float32)), lengths],
        [tf.int32, tf.float32], stateful=False)
    batch = tf.shape(pred)[0]
    return tf.reshape(pairs, [batch, -1, 2]), tf.reshape(path_mask, [batch, -1])


def _dtw_path_numpy(pred: np.ndarray, target: np.ndarray, lengths: np.ndarray, band: float):
    """:func:`dtw_path`'s paths: ``[B, 2F - 1, 2]`` int32 frame indices (padding points at
    frame 0) and ``[B, 2F - 1]`` float32 masks. librosa's DTW is numba-compiled: about a
    millisecond per 300-frame pair here, against seconds for a loop in Python."""
    import librosa

    b, f = pred.shape[:2]
    size = max(2 * f - 1, 1)
    pairs = np.zeros((b, size, 2), np.int32)
    path_mask = np.zeros((b, size), np.float32)
    for k in range(b):
        n = int(lengths[k])
        if n == 0:
            continue
        constrained = band < 1.0 and n > 1
        _, path = librosa.sequence.dtw(X=pred[k, :n].T.astype(np.float64), Y=target[k, :n].T.astype(np.float64),
                                       metric="sqeuclidean", global_constraints=constrained, band_rad=band)
        pairs[k, : len(path)] = path[::-1]
        path_mask[k, : len(path)] = 1.0
    return pairs, path_mask


def temporal_variance(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Variance over real time steps of each dimension, per example: ``[B, T, D]`` -> ``[B, D]``."""
    x = tf.cast(x, tf.float32)
    m = mask[..., tf.newaxis]
    n = tf.maximum(tf.reduce_sum(m, 1), 1.0)
    mean = tf.reduce_sum(x * m, 1) / n
    return tf.reduce_sum(tf.square(x - mean[:, tf.newaxis]) * m, 1) / n


def gv_loss(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Global-variance matching: mean over examples and dimensions of
    ``(std_t(pred) - std_t(target))^2``, the standard deviations over real time steps.

    Zero for any prediction that varies as much as the target in every dimension, whatever
    its timing; large for a flat output (a drone). The mean over examples is a share of the
    global mean under a distribution strategy (see ``masked_mean``).
    """
    frames = tf.minimum(tf.shape(pred)[1], tf.shape(target)[1])
    mask = mask[:, :frames]
    std = lambda x: tf.sqrt(temporal_variance(x[:, :frames], mask) + 1e-6)  # noqa: E731
    per_example = tf.reduce_mean(tf.square(std(pred) - std(tf.stop_gradient(target))), -1)
    return masked_mean(per_example, tf.cast(tf.reduce_any(mask > 0, -1), tf.float32))


def spread_ratio(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean over examples of ``sum_d var_t(pred) / sum_d var_t(target)`` (this replica's
    examples: a plain mean, not a share)."""
    frames = tf.minimum(tf.shape(pred)[1], tf.shape(target)[1])
    mask = mask[:, :frames]
    ratio = (tf.reduce_sum(temporal_variance(pred[:, :frames], mask), -1)
             / tf.maximum(tf.reduce_sum(temporal_variance(target[:, :frames], mask), -1), 1e-8))
    return tf.reduce_mean(ratio)
