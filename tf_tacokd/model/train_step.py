"""What the custom ``train_step``s share (Tacotron2 and the distiller): clipping the summed
gradient, and reporting global values to the metric trackers."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["SHARED", "apply_clipped", "report"]


SHARED = {"teacher_prob", "fr_correlation"}  # reported values that are not per-replica shares of a mean


def report(trackers: dict, losses: dict[str, tf.Tensor], shared: set[str] = SHARED) -> dict[str, tf.Tensor]:
    """Update the Mean trackers with the global values (a replica's share times N; the
    names in ``shared`` are reported as they are)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    for name, value in losses.items():
        trackers[name].update_state(value if name in shared else value * replicas)
    return {name: trackers[name].result() for name in losses}


def apply_clipped(optimizer, grads, variables, clip_norm: float) -> None:
    """Clip by the global norm of the gradient summed over replicas, then apply.

    Under a distribution strategy each replica holds its part of the gradient (its share
    of the global loss, see ``global_sum``) and Keras sums the parts when applying. To
    clip the *total* gradient, the parts are summed here first, clipped, and divided
    again, so that Keras' sum gives back the clipped total: 1 device and N replicas
    then take the same step.
    """
    if clip_norm:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        # under mixed precision the gradients carry the loss scale: clip the true gradient,
        # then scale back (the LossScaleOptimizer unscales and skips non-finite steps)
        scale = getattr(optimizer, "dynamic_scale", None)
        scale = None if scale is None else tf.cast(scale, tf.float32)
        if scale is not None:
            grads = [g / scale for g in grads]
        grads, _ = tf.clip_by_global_norm(grads, clip_norm)
        if scale is not None:
            grads = [g * scale for g in grads]
        if replicas > 1:
            grads = [g / replicas for g in grads]
    optimizer.apply_gradients(zip(grads, variables))
