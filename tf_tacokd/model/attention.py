"""Location-sensitive attention (Chorowski et al. 2015; Tacotron2).

A pure function of explicit state: ``call(query, keys, memory, mask, weights,
cumulative)`` -> ``(context, new_weights)``; the caller carries the state through
the decoder loop.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .layers import Linear

__all__ = ["LocationSensitiveAttention"]



@keras.saving.register_keras_serializable(package="tf_tacokd")
class LocationSensitiveAttention(keras.layers.Layer):
    """Additive attention whose energies also see the previous and cumulative weights.

    Args:
        units: attention dimension.
        filters: location convolution filters.
        kernel_size: location convolution width (odd).
    """

    def __init__(self, units: int = 128, filters: int = 32, kernel_size: int = 31, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units, self.filters, self.kernel_size = units, filters, kernel_size
        self.memory_layer = Linear(units, use_bias=False, name="memory_layer")
        self.query_layer = Linear(units, use_bias=False, name="query_layer")
        self.location_conv = keras.layers.Conv1D(filters, kernel_size, padding="same", use_bias=False,
                                                 name="location_conv")
        self.location_layer = Linear(units, use_bias=False, name="location_layer")
        self.v = Linear(1, use_bias=True, name="v")

    def build(self, query_dim: int, memory_dim: int) -> None:  # type: ignore[override]
        self.memory_layer.build((None, None, memory_dim))
        self.query_layer.build((None, query_dim))
        self.location_conv.build((None, None, 2))
        self.location_layer.build((None, None, self.filters))
        self.v.build((None, None, self.units))
        self.built = True

    def keys(self, memory: tf.Tensor) -> tf.Tensor:
        """Projected memory ``[B, T, units]``: computed once per utterance, outside the loop."""
        return self.memory_layer(memory)

    def call(self, query, keys, memory, mask, weights, cumulative, window=None):
        """One attention step.

        Args:
            query: ``[B, Q]`` the first decoder LSTM's output.
            keys: ``[B, T, units]`` from :meth:`keys`.
            memory: ``[B, T, D]`` encoder outputs.
            mask: ``[B, T]`` bool, True for real tokens.
            weights, cumulative: ``[B, T]`` previous and summed attention weights.
            window: optional ``[B, T]`` bool, extra restriction (inference windowing).

        Returns:
            ``(context [B, D], weights [B, T])``.
        """
        location = self.location_layer(self.location_conv(tf.stack([weights, cumulative], axis=-1)))
        q = self.query_layer(query)[:, tf.newaxis, :]
        energies = tf.squeeze(self.v(tf.tanh(q + location + keys)), -1)
        allowed = mask if window is None else tf.logical_and(mask, window)
        # the dtype's lowest finite value (float32 or float16 under mixed precision)
        energies = tf.where(allowed, energies, tf.fill(tf.shape(energies), energies.dtype.min))
        new_weights = tf.nn.softmax(energies, axis=-1)
        context = tf.squeeze(tf.matmul(new_weights[:, tf.newaxis, :], memory), 1)
        return context, new_weights

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "filters": self.filters,
                "kernel_size": self.kernel_size}
