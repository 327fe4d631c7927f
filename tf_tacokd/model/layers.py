"""Building blocks of Tacotron2: prenet, convolution blocks, postnet, a 2-D dense.

Layers used inside the decoder's ``tf.while_loop`` avoid ``keras.layers.Dense`` on
3-D tensors (its Tensordot gradient is not XLA-compilable inside a loop) and take
their dropout randomness from an explicit seed, so that a decoder run is a pure
function of its inputs and seed (training, inference and TFLite alike).
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["Linear", "Prenet", "ConvBlock", "Postnet", "stateless_dropout"]


def stateless_dropout(x: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Inverted dropout with a stateless mask drawn from ``seed`` (int32 ``[2]``)."""
    if rate <= 0.0:
        return x
    keep = tf.random.stateless_uniform(tf.shape(x), seed=seed) >= rate
    return tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))


@keras.saving.register_keras_serializable(package="tf_tacokd")
class Linear(keras.layers.Layer):
    """``x @ W (+ b)`` on the last axis of a 2-D or 3-D input, without Tensordot.

    Args:
        units: output size.
        use_bias: add a bias.
        bias_initializer: initial bias (e.g. a negative stop-token bias).
    """

    def __init__(self, units: int, use_bias: bool = True, bias_initializer: str | float = "zeros",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = use_bias
        self.bias_initializer = bias_initializer

    def build(self, input_shape) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units),
                                      initializer="glorot_uniform")
        if self.use_bias:
            init = (keras.initializers.Constant(self.bias_initializer)
                    if isinstance(self.bias_initializer, (int, float)) else self.bias_initializer)
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=init)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        if x.shape.rank == 3:
            shape = tf.shape(x)
            y = tf.reshape(tf.matmul(tf.reshape(x, [-1, shape[-1]]), self.kernel),
                           [shape[0], shape[1], self.units])
        else:
            y = tf.matmul(x, self.kernel)
        return y + self.bias if self.use_bias else y

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "bias_initializer": self.bias_initializer}


@keras.saving.register_keras_serializable(package="tf_tacokd")
class Prenet(keras.layers.Layer):
    """Dense + ReLU layers with dropout that stays on, also at inference (Tacotron2).

    Dropout masks come from ``seed`` (int32 ``[2]``): the same seed gives the same
    output, so TF and TFLite can be compared exactly and synthesis is reproducible.

    Args:
        units: sizes of the dense layers, e.g. ``[256, 256]``.
        rate: dropout rate.
    """

    def __init__(self, units: list[int], rate: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = list(units)
        self.rate = rate
        self.dense = [Linear(u, name=f"dense_{i}") for i, u in enumerate(self.units)]

    def build(self, input_shape) -> None:
        size = int(input_shape[-1])
        for layer, u in zip(self.dense, self.units):
            layer.build((None, size))
            size = u

    def call(self, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """``seed``: int32 ``[2]`` (masks drawn statelessly), or float ``[B, sum(units)]``:
        the masks themselves (0 or 1 / (1 - rate)), as an exported model receives them."""
        given = seed.dtype.is_floating
        offset = 0
        for i, (layer, units) in enumerate(zip(self.dense, self.units)):
            x = tf.nn.relu(layer(x))
            if given:
                x = x * tf.cast(seed[:, offset : offset + units], x.dtype)
                offset += units
            else:
                x = stateless_dropout(x, self.rate, seed + tf.constant([0, 7919], tf.int32) * i)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "rate": self.rate}


@keras.saving.register_keras_serializable(package="tf_tacokd")
class ConvBlock(keras.layers.Layer):
    """Conv1D ('same') -> batch norm -> activation -> dropout (training only)."""

    def __init__(self, channels: int, kernel_size: int, activation: str | None = "relu",
                 dropout: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels, self.kernel_size = channels, kernel_size
        self.activation, self.dropout_rate = activation, dropout
        self.conv = keras.layers.Conv1D(channels, kernel_size, padding="same", name="conv")
        # synchronized: under MirroredStrategy the statistics are those of the global batch
        self.norm = keras.layers.BatchNormalization(synchronized=True, name="norm")
        self.act = keras.layers.Activation(activation) if activation else None
        self.drop = keras.layers.Dropout(dropout)

    def build(self, input_shape) -> None:
        self.conv.build(input_shape)
        self.norm.build((*input_shape[:-1], self.channels))

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = self.norm(self.conv(x), training=training)
        if self.act is not None:
            x = self.act(x)
        return self.drop(x, training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "channels": self.channels, "kernel_size": self.kernel_size,
                "activation": self.activation, "dropout": self.dropout_rate}


@keras.saving.register_keras_serializable(package="tf_tacokd")
class Postnet(keras.layers.Layer):
    """Residual refinement of the mel: ``layers`` conv blocks, tanh except the last (linear)."""

    def __init__(self, n_mels: int, layers: int = 5, channels: int = 512, kernel_size: int = 5,
                 dropout: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_mels, self.n_layers = n_mels, layers
        self.channels, self.kernel_size, self.dropout = channels, kernel_size, dropout
        self.blocks = [
            ConvBlock(channels if i < layers - 1 else n_mels, kernel_size,
                      "tanh" if i < layers - 1 else None, dropout, name=f"block_{i}")
            for i in range(layers)
        ]

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)

    def call(self, mel: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = mel
        for block in self.blocks:
            x = block(x, training=training)
        return mel + x if self.blocks else mel

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "n_mels": self.n_mels, "layers": self.n_layers,
                "channels": self.channels, "kernel_size": self.kernel_size, "dropout": self.dropout}
