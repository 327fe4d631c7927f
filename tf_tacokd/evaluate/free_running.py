"""How well a model's free-running output follows the natural frames: the number that says
whether an L2-trained free-running student (FR, KD) will keep the speech or flatten it.

For a prediction ``p`` and natural frames ``y`` (each band centred over the utterance) with
correlation ``rho``, ``E|p - y|^2 = s_p^2 + s_y^2 - 2 rho s_p s_y``. For a given ``rho`` the
L2 loss is lowest at ``s_p = rho s_y``: the output's variance shrinks to ``rho^2`` of the
natural one, and a full-variance output beats the utterance's mean frame only if
``rho > 0.5``. Measured (RESULTS.md section 10): teacher forcing ``rho`` 0.89 / variance
ratio 0.79 (``rho^2`` = 0.79); the shipped 1200-step teacher decoding freely ``rho`` 0.19,
and its KD student collapsed to a variance ratio of 0.04 — the drone.

Example:
    >>> free_running_correlation(model, "data/en", cfg)  # doctest: +SKIP
    0.19
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DRONE_RISK", "free_running_correlation", "retimed_steps"]

#: below this free-running correlation, the L2 loss prefers the mean frame to the output
DRONE_RISK = 0.5


def free_running_correlation(model: Any, data_dir: str | Path, cfg: Any, batches: int = 4,
                             batch_size: int = 16, split: str = "val") -> float:
    """Mean :func:`~tf_tacokd.model.losses.frame_correlation` of ``model`` decoding freely for
    the natural number of steps, over ``batches`` x ``batch_size`` utterances of ``split``.

    Args:
        model: a :class:`~tf_tacokd.model.Tacotron2`.
        data_dir: preprocessed data (the model's).
        cfg: the config the data is read with.
    """
    import tensorflow as tf

    from ..data.dataset import make_dataset
    from ..model.losses import frame_correlation

    values = []
    for batch in make_dataset(data_dir, split, cfg, batch_size=batch_size, shuffle=False).take(batches):
        out = model.run(batch["text_ids"], batch["mel"], teacher_prob=0.0, seed=tf.constant([0, 1]))
        values.append(float(frame_correlation(out["mel"], batch["mel"], batch["mel_mask"])))
    if not values:
        raise ValueError(f"{data_dir}: the {split} split is empty")
    return float(np.mean(values))


def retimed_steps(teacher_alignments: Any, student_alignments: Any, step_mask: Any) -> Any:
    """For each step of the free-running student, the teacher-forced step at which the teacher
    had attended as far into the text: ``k[b, t] = min{u : max_{u' <= u} p_T[b, u'] >= p_S[b, t]}``,
    clipped to the utterance's real steps, where ``p[b, t] = sum_n n * alpha[b, t, n]`` is the
    attention's expected token. ``bench/drift.py`` compares a free-running output with the
    natural frame at that step: how much of its distance is timing. (Distilling against
    targets re-timed this way was tried and removed: the student, no longer penalised for
    where it attends, repeated words within 250 steps; RESULTS.md section 10.9.)

    Args:
        teacher_alignments, student_alignments: ``[B, steps, tokens]`` attention weights.
        step_mask: ``[B, steps]`` 1 for real steps.

    Returns:
        ``[B, steps]`` int32 step indices (no gradient).

    Example:
        >>> import tensorflow as tf
        >>> a_t = tf.one_hot([[0, 1, 2, 3]], 4)                # the teacher: one token per step
        >>> a_s = tf.one_hot([[0, 0, 1, 3]], 4)                # the student lags, then jumps
        >>> retimed_steps(a_t, a_s, tf.ones([1, 4])).numpy().tolist()
        [[0, 0, 1, 3]]
    """
    import tensorflow as tf

    tokens = tf.cast(tf.range(tf.shape(teacher_alignments)[-1]), tf.float32)
    p_t = tf.reduce_sum(tf.cast(teacher_alignments, tf.float32) * tokens, -1)
    p_s = tf.reduce_sum(tf.cast(student_alignments, tf.float32) * tokens, -1)
    p_t = tf.where(step_mask > 0, p_t, tf.float32.max)  # padding never precedes a real step
    running = tf.transpose(tf.scan(tf.maximum, tf.transpose(p_t)))  # monotone for searchsorted
    k = tf.searchsorted(running, p_s, side="left", out_type=tf.int32)
    last = tf.maximum(tf.cast(tf.reduce_sum(step_mask, -1, keepdims=True), tf.int32) - 1, 0)
    return tf.stop_gradient(tf.minimum(k, last))
