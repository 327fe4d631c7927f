"""Training schedules: the paper's learning rate, and the probability of feeding natural
frames per training mode (teacher forcing, scheduled sampling, free running)."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from ..config import TrainConfig

__all__ = ["PaperSchedule", "teacher_prob_at"]


@keras.saving.register_keras_serializable(package="tf_tacokd")
class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant ``initial`` until ``decay_start``, then exponential decay reaching
    ``final`` after ``decay_steps`` more steps, and constant ``final`` after that.

    ``warmup`` > 0 (not the paper) ramps the rate linearly from ``initial / warmup`` at step 0
    to ``initial`` at step ``warmup - 1``: for a run that starts from trained weights
    (``tacokd train --init``) with a fresh Adam state, whose first updates are otherwise
    full-size steps along the sign of one batch's gradient.

    Example:
        >>> round(float(PaperSchedule(1e-3, 1e-5, 50_000, 100_000, warmup=4)(1)), 8)  # 2/4 of 1e-3
        0.0005
    """

    def __init__(self, initial: float, final: float, decay_start: int, decay_steps: int,
                 warmup: int = 0) -> None:
        self.initial, self.final = initial, final
        self.decay_start, self.decay_steps = decay_start, decay_steps
        self.warmup = warmup

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        progress = tf.clip_by_value((step - self.decay_start) / self.decay_steps, 0.0, 1.0)
        rate = self.initial * tf.pow(self.final / self.initial, progress)
        if self.warmup > 0:
            rate = rate * tf.minimum(1.0, (step + 1.0) / float(self.warmup))
        return rate

    def get_config(self) -> dict:
        return {"initial": self.initial, "final": self.final, "decay_start": self.decay_start,
                "decay_steps": self.decay_steps, "warmup": self.warmup}


def teacher_prob_at(step, train: TrainConfig) -> tf.Tensor:
    """Probability of feeding the natural frame at a training step, for ``train.mode``.

    teacher_forcing: 1; free_running: 0; scheduled_sampling: decays from ``ss_start``
    to ``ss_floor`` over ``ss_decay_steps`` (linear, exponential or inverse sigmoid).
    """
    if train.mode == "teacher_forcing":
        return tf.constant(1.0)
    if train.mode == "free_running":
        return tf.constant(0.0)
    x = tf.cast(step, tf.float32) / float(train.ss_decay_steps)
    if train.ss_schedule == "linear":
        frac = 1.0 - tf.minimum(x, 1.0)
    elif train.ss_schedule == "exponential":  # 1% of the range left at ss_decay_steps
        frac = tf.pow(0.01, x)
    else:  # inverse sigmoid, centred on half the decay, ~1% left at the end
        frac = 1.0 / (1.0 + tf.exp((x - 0.5) * 2.0 * math.log(99.0)))
    return train.ss_floor + (train.ss_start - train.ss_floor) * frac
