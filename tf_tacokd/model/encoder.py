"""Tacotron2 encoder: embedding -> conv blocks (BN, ReLU, dropout) -> bidirectional LSTM."""

from __future__ import annotations

import keras
import tensorflow as tf

from .layers import ConvBlock

__all__ = ["Encoder"]


@keras.saving.register_keras_serializable(package="tf_tacokd")
class Encoder(keras.layers.Layer):
    """Symbol ids ``[B, T]`` (0 = padding) -> encoder outputs ``[B, T, 2 * lstm_units]``.

    Args:
        n_symbols: size of the symbol table.
        embedding_dim: embedding size.
        conv_layers, conv_channels, kernel_size, dropout: the convolution stack.
        lstm_units: units per direction of the BiLSTM.
    """

    def __init__(self, n_symbols: int, embedding_dim: int = 512, conv_layers: int = 3,
                 conv_channels: int = 512, kernel_size: int = 5, dropout: float = 0.5,
                 lstm_units: int = 256, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_symbols, self.embedding_dim = n_symbols, embedding_dim
        self.conv_layers, self.conv_channels = conv_layers, conv_channels
        self.kernel_size, self.dropout, self.lstm_units = kernel_size, dropout, lstm_units
        self.embedding = keras.layers.Embedding(n_symbols, embedding_dim, name="embedding")
        self.convs = [ConvBlock(conv_channels, kernel_size, "relu", dropout, name=f"conv_{i}")
                      for i in range(conv_layers)]
        self.lstm = keras.layers.Bidirectional(
            keras.layers.LSTM(lstm_units, return_sequences=True), name="bilstm")

    @property
    def output_dim(self) -> int:
        return 2 * self.lstm_units

    def build(self, input_shape) -> None:
        self.embedding.build(input_shape)
        shape = (*input_shape, self.embedding_dim)
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.lstm.build(shape)

    def call(self, ids: tf.Tensor, mask: tf.Tensor, training: bool = False) -> tf.Tensor:
        x = self.embedding(ids)
        zero = tf.cast(mask, x.dtype)[..., tf.newaxis]
        for conv in self.convs:
            x = conv(x * zero, training=training)  # padding stays silent through the convs
        return self.lstm(x * zero, mask=mask, training=training) * zero

    def get_config(self) -> dict:
        return {**super().get_config(), "n_symbols": self.n_symbols,
                "embedding_dim": self.embedding_dim, "conv_layers": self.conv_layers,
                "conv_channels": self.conv_channels, "kernel_size": self.kernel_size,
                "dropout": self.dropout, "lstm_units": self.lstm_units}
