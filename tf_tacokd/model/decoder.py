"""Tacotron2 decoder: one pure step function, run by a ``tf.while_loop``.

State carried through the loop (all explicit, nothing on ``self``): a
:class:`DecoderState` — ``(h, c)`` of each LSTM layer, attention weights and their
cumulative sum, the attention context, and the frame fed to the next step.

Per step: prenet(previous frame) -> LSTM 1 ([prenet, context]) -> attention (query:
LSTM 1 output) -> LSTM 2 ([LSTM 1 output, context]) -> linear projection to ``r``
frames and a stop logit (from [LSTM 2 output, context]).

The previous frame fed to the prenet depends on the mode, chosen per call through
``teacher_prob`` (the probability of feeding the natural frame, per step and per
example): 1.0 is teacher forcing, 0.0 free running, anything between scheduled
sampling. The comparison ``uniform[0, 1) < p`` makes p = 1 and p = 0 *exactly*
teacher forcing and free running.

Outputs use fixed-size ``TensorArray``s (training: the target's number of steps;
inference: ``max_steps``, sliced to the steps taken), which TFLite converts with
builtin ops only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import tensorflow as tf

from .attention import LocationSensitiveAttention
from .layers import Linear, Prenet

__all__ = ["Decoder", "DecodeOptions", "DecoderOutput", "DecoderState"]


OUTPUTS = ("frames", "stop_logits", "alignments", "hidden")


class DecoderState(NamedTuple):
    """What one decoder step hands to the next."""

    lstm: list  # [[h, c]] per LSTM layer, each [B, lstm_units]
    weights: tf.Tensor  # [B, T_text] attention weights of the last step
    cumulative: tf.Tensor  # [B, T_text] their sum over the steps so far
    context: tf.Tensor  # [B, memory_dim] the last attention context
    prev_frame: tf.Tensor  # [B, n_mels] the frame fed to the next step's prenet


class DecodeOptions(NamedTuple):
    """How a decoder run is bounded, steered and recorded (everything but its data).

    Attributes:
        max_steps: free running: the longest run in steps (and the output buffers' size).
        min_steps, stop_threshold: free running stops once the stop probability exceeds
            ``stop_threshold`` at step ``min_steps`` or later.
        window: ``(backward, forward)`` token window for inference (ESPnet style), or None.
        stop_gradient: do not backpropagate through fed-back predictions.
        collect: which per-step outputs to keep (a subset of :data:`OUTPUTS`; the others
            come back as None). Export keeps frames and stop logits only: with a static batch
            size their buffers have static element shapes, which TFLite's builtin
            tensor-list lowering needs.
        alignment_width: pad each step's attention weights to this many tokens, so the
            alignment buffer has a static element shape (export); the result is cut back to
            the text length.

    Plain Python values only (Keras does not let a call argument mix tensors and other
    values): the two tensor options of an exported model, ``prenet_masks`` and
    ``step_limit``, are arguments of :meth:`Decoder.call`.
    """

    max_steps: int = 1000
    min_steps: int = 0
    stop_threshold: float = 0.5
    window: tuple[int, int] | None = None
    stop_gradient: bool = False
    collect: tuple[str, ...] = OUTPUTS
    alignment_width: int | None = None

    @property
    def kept(self) -> list[str]:
        """The collected outputs in :data:`OUTPUTS` order (the order of the loop's buffers)."""
        unknown = set(self.collect) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown decoder outputs {sorted(unknown)}: choose from {OUTPUTS}")
        return [name for name in OUTPUTS if name in self.collect]


class _Loop(NamedTuple):
    """The loop-invariant inputs of one decoder run (what :meth:`Decoder._loop_body` reads)."""

    memory: tf.Tensor
    keys: tf.Tensor
    mask: tf.Tensor
    seed: tf.Tensor
    teacher_prob: tf.Tensor
    natural: tf.Tensor | None  # [steps, B, n_mels] frames to feed, or None: free running
    n_steps: tf.Tensor
    size: Any  # the output buffers' length
    t_text: tf.Tensor
    options: DecodeOptions
    prenet_masks: tf.Tensor | None
    prev_shape: Any  # the fed frame's static shape, kept through the loop


class DecoderOutput(NamedTuple):
    """What a decoder run returns (time-major inputs are converted to batch-major)."""

    frames: tf.Tensor  # [B, steps * r, n_mels]
    stop_logits: tf.Tensor  # [B, steps]
    alignments: tf.Tensor  # [B, steps, T_text]
    hidden: tf.Tensor  # [B, steps, sum of LSTM units]: the distillation target
    lengths: tf.Tensor  # [B] decoder steps until stop (inference) or all steps (training)
    finished: tf.Tensor  # [B] bool: the stop token fired (False: max_steps reached)


@keras.saving.register_keras_serializable(package="tf_tacokd")
class Decoder(keras.layers.Layer):
    """Autoregressive attention decoder producing ``r`` mel frames per step.

    Args:
        n_mels: mel bands.
        r: frames per step (reduction factor).
        prenet_units, prenet_dropout: the prenet.
        lstm_units, lstm_layers: decoder LSTMs (the paper: 2 x 1024).
        attention_dim, attention_filters, attention_kernel_size: location-sensitive attention.
    """

    def __init__(self, n_mels: int, r: int = 2, prenet_units: list[int] | None = None,
                 prenet_dropout: float = 0.5, lstm_units: int = 1024, lstm_layers: int = 2,
                 attention_dim: int = 128, attention_filters: int = 32,
                 attention_kernel_size: int = 31, **kwargs) -> None:
        """Many parameters because each is an architecture setting kept in the layer's Keras
        config (:meth:`get_config`)."""
        super().__init__(**kwargs)
        self.n_mels, self.r = n_mels, r
        self.prenet_units = list(prenet_units or [256, 256])
        self.prenet_dropout = prenet_dropout
        self.lstm_units, self.lstm_layers = lstm_units, lstm_layers
        self.attention_dim, self.attention_filters = attention_dim, attention_filters
        self.attention_kernel_size = attention_kernel_size
        self.prenet = Prenet(self.prenet_units, prenet_dropout, name="prenet")
        self.cells = [keras.layers.LSTMCell(lstm_units, name=f"lstm_{i}") for i in range(lstm_layers)]
        self.attention = LocationSensitiveAttention(attention_dim, attention_filters,
                                                    attention_kernel_size, name="attention")
        self.frame_projection = Linear(n_mels * r, name="frame_projection")
        # a negative initial bias: "not yet" is by far the most common stop target
        self.stop_projection = Linear(1, bias_initializer=-3.0, name="stop_projection")

    @property
    def hidden_dim(self) -> int:
        return self.lstm_units * self.lstm_layers

    def build(self, memory_dim: int) -> None:  # type: ignore[override]
        self.prenet.build((None, self.n_mels))
        self.cells[0].build((None, self.prenet_units[-1] + memory_dim))
        for cell in self.cells[1:]:
            cell.build((None, self.lstm_units + memory_dim))
        self.attention.build(self.lstm_units, memory_dim)
        self.frame_projection.build((None, self.lstm_units + memory_dim))
        self.stop_projection.build((None, self.lstm_units + memory_dim))
        self.built = True

    # -- one step ---------------------------------------------------------------

    def step(self, state: DecoderState, memory, keys, mask, seed, window=None):
        """One decoder step as a pure function of explicit state.

        Returns ``(frames [B, r*n_mels], stop_logit [B], hidden [B, H], state)``; the new
        state's ``prev_frame`` is still the input frame (the caller chooses what to feed).
        """
        x = self.prenet(state.prev_frame, seed)
        new_lstm, outputs = [], []
        h, new_cell = self.cells[0](tf.concat([x, state.context], -1), state.lstm[0])
        new_lstm.append(new_cell)
        outputs.append(h)
        context, weights = self.attention(h, keys, memory, mask, state.weights, state.cumulative, window)
        cumulative = state.cumulative + weights
        for cell, cell_state in zip(self.cells[1:], state.lstm[1:]):
            h, new_cell = cell(tf.concat([h, context], -1), cell_state)
            new_lstm.append(new_cell)
            outputs.append(h)
        projection_in = tf.concat([h, context], -1)
        frames = self.frame_projection(projection_in)
        stop = tf.squeeze(self.stop_projection(projection_in), -1)
        return frames, stop, tf.concat(outputs, -1), DecoderState(new_lstm, weights, cumulative, context,
                                                                  state.prev_frame)

    def initial_state(self, memory: tf.Tensor, mask: tf.Tensor) -> DecoderState:
        """Zero LSTM states and context, attention on the first token, the "go" frame (zeros)."""
        batch, t_text = tf.shape(memory)[0], tf.shape(memory)[1]
        zeros = lambda n: tf.zeros([batch, n], memory.dtype)  # noqa: E731
        lstm = [[zeros(self.lstm_units), zeros(self.lstm_units)] for _ in self.cells]
        # start focused on the first token
        weights = tf.one_hot(tf.zeros([batch], tf.int32), t_text, dtype=memory.dtype)
        return DecoderState(lstm, weights, tf.zeros_like(weights), zeros(memory.shape[-1]), zeros(self.n_mels))

    # -- loops ------------------------------------------------------------------

    def call(self, memory, mask, targets=None, teacher_prob=1.0, seed=None, options: DecodeOptions | None = None,
             prenet_masks=None, step_limit=None):
        """Run the decoder.

        Args:
            memory: encoder outputs ``[B, T, D]``; mask: ``[B, T]`` bool.
            targets: ``[B, F, n_mels]`` with F a multiple of r (training/validation): the
                loop runs F / r steps. None: inference until every example has stopped
                (see :class:`DecodeOptions`) or ``options.max_steps``.
            teacher_prob: probability of feeding the natural frame (needs targets).
            seed: int32 ``[2]``: prenet dropout and scheduled-sampling draws.
            options: bounds, attention window, what to record (:class:`DecodeOptions`).
            prenet_masks: ``[max_steps, B, sum(prenet units)]`` dropout masks (0 or
                1 / (1 - rate)) instead of masks drawn from ``seed``: an exported model takes
                them as an input, so TF and TFLite decode identically without random ops.
            step_limit: free running only: an int32 scalar tensor, stop after this many steps
                even if it is below ``max_steps`` (an exported model sizes its buffers by
                ``max_steps`` and takes the bound for each text as an input).
        """
        o = options or DecodeOptions()
        kept = o.kept
        loop = self._loop_inputs(memory, mask, targets, teacher_prob, seed, o, prenet_masks, step_limit)
        state = self.initial_state(memory, mask)
        if loop.natural is not None:  # the first frame fed is the "go" frame (zeros) in every mode
            state = state._replace(prev_frame=tf.gather(loop.natural, 0))
        loop = loop._replace(prev_shape=state.prev_frame.shape)
        b_static = memory.shape[0]  # None in training; 1 in an exported model
        shapes = {"frames": [b_static, self.n_mels * self.r], "stop_logits": [b_static],
                  "alignments": [b_static, o.alignment_width], "hidden": [b_static, self.hidden_dim]}
        tas = tuple(tf.TensorArray(memory.dtype, size=loop.size, element_shape=shapes[name]) for name in kept)
        batch = tf.shape(memory)[0]
        loop_vars = (tf.constant(0), state, tas, tf.zeros([batch], tf.bool), tf.zeros([batch], tf.int32))
        steps, _, tas, finished, lengths = tf.while_loop(
            lambda *v: self._loop_cond(loop, *v), lambda *v: self._loop_body(loop, *v), loop_vars,
            maximum_iterations=loop.size)
        if loop.natural is not None:
            lengths, finished = tf.fill([batch], loop.n_steps), tf.ones([batch], tf.bool)

        def batch_major(ta: tf.TensorArray) -> tf.Tensor:
            x = ta.stack()[:steps]  # fixed-size buffer, sliced to the steps taken
            return tf.transpose(x, [1, 0, *range(2, x.shape.rank)])

        got = {name: batch_major(ta) for name, ta in zip(kept, tas)}
        if o.alignment_width is not None and "alignments" in got:
            got["alignments"] = got["alignments"][:, :, : loop.t_text]
        frames = got.get("frames")
        if frames is not None:
            frames = tf.reshape(frames, [batch, -1, self.n_mels])
        return DecoderOutput(frames, got.get("stop_logits"), got.get("alignments"), got.get("hidden"),
                             lengths, finished)

    def _loop_inputs(self, memory, mask, targets, teacher_prob, seed, o: DecodeOptions, prenet_masks,
                     step_limit) -> "_Loop":
        """What every step of one run reads: the memory, the natural frames to feed (time
        major; None when free running to the stop token) and the step bound."""
        seed = tf.zeros([2], tf.int32) if seed is None else tf.cast(seed, tf.int32)
        if targets is not None:
            n_steps = tf.shape(targets)[1] // self.r
            # natural previous frame of step t: the last frame of step t - 1 (zeros at t = 0)
            last_frames = targets[:, self.r - 1 :: self.r][:, :n_steps]
            natural = tf.concat([tf.zeros_like(last_frames[:, :1]), last_frames[:, :-1]], 1)
            natural = tf.cast(tf.transpose(natural, [1, 0, 2]), memory.dtype)  # time-major
            size = n_steps
        else:
            n_steps = tf.constant(o.max_steps, tf.int32)
            if step_limit is not None:
                n_steps = tf.minimum(n_steps, tf.maximum(tf.cast(step_limit, tf.int32), 1))
            natural = None
            size = o.max_steps
        return _Loop(memory, self.attention.keys(memory), mask, seed, tf.cast(teacher_prob, tf.float32),
                     natural, n_steps, size, tf.shape(memory)[1], o, prenet_masks, None)

    @staticmethod
    def _loop_cond(loop: "_Loop", t, state, tas, finished, lengths):
        if loop.natural is not None:
            return t < loop.n_steps
        return tf.logical_and(t < loop.n_steps, tf.logical_not(tf.reduce_all(finished)))

    def _loop_body(self, loop: "_Loop", t, state: DecoderState, tas, finished, lengths):
        """One iteration: a step, its outputs recorded, and the next frame to feed chosen
        (natural with probability ``teacher_prob`` when there are targets, else predicted)."""
        o = loop.options
        win = None
        if o.window is not None:
            peak = tf.argmax(state.weights, axis=-1, output_type=tf.int32)[:, tf.newaxis]
            pos = tf.range(loop.t_text)[tf.newaxis, :]
            win = tf.logical_and(pos >= peak - o.window[0], pos <= peak + o.window[1])
        noise = loop.seed + tf.stack([0, 1 + 2 * t]) if loop.prenet_masks is None else loop.prenet_masks[t]
        frames, stop, hidden, state = self.step(state, loop.memory, loop.keys, loop.mask, noise, win)
        kept_weights = state.weights
        if o.alignment_width is not None:
            kept_weights = tf.pad(state.weights, [[0, 0], [0, o.alignment_width - loop.t_text]])
            kept_weights.set_shape([loop.memory.shape[0], o.alignment_width])
        values = {"frames": frames, "stop_logits": stop, "alignments": kept_weights, "hidden": hidden}
        tas = tuple(ta.write(t, values[name]) for ta, name in zip(tas, o.kept))
        predicted = frames[:, -self.n_mels :]
        if o.stop_gradient:
            predicted = tf.stop_gradient(predicted)
        batch = tf.shape(loop.memory)[0]
        if loop.natural is not None:
            draw = tf.random.stateless_uniform([batch], seed=loop.seed + tf.stack([1, 2 + 2 * t]))
            use_natural = (draw < loop.teacher_prob)[:, tf.newaxis]
            prev = tf.where(use_natural, tf.gather(loop.natural, tf.minimum(t + 1, loop.n_steps - 1)), predicted)
        else:
            prev = predicted
            stopped = tf.logical_and(tf.sigmoid(stop) > o.stop_threshold, t + 1 >= o.min_steps)
            lengths = tf.where(finished, lengths, t + 1)
            finished = tf.logical_or(finished, stopped)
        prev.set_shape(loop.prev_shape)  # a static batch size must not become unknown in the loop
        return t + 1, state._replace(prev_frame=prev), tas, finished, lengths

    def get_config(self) -> dict:
        return {**super().get_config(), "n_mels": self.n_mels, "r": self.r,
                "prenet_units": self.prenet_units, "prenet_dropout": self.prenet_dropout,
                "lstm_units": self.lstm_units, "lstm_layers": self.lstm_layers,
                "attention_dim": self.attention_dim, "attention_filters": self.attention_filters,
                "attention_kernel_size": self.attention_kernel_size}
