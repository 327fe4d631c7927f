"""Tacotron2 as a Keras 3 model with a mode-aware custom ``train_step``.

Example:
    >>> from tf_tacokd.config import load_config
    >>> from tf_tacokd.model import Tacotron2
    >>> cfg = load_config("tiny_en")
    >>> model = Tacotron2.from_settings(cfg.model, n_symbols=37, n_mels=cfg.audio.n_mels)
    >>> model.compile_for_training(cfg.train)  # Adam + schedule + clipping from the config
    >>> # model.fit(make_dataset("data/en", "train", cfg, repeat=True), steps_per_epoch=100)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..config import ModelConfig, TrainConfig
from .decoder import DecodeOptions, Decoder
from .encoder import Encoder
from .layers import Postnet
from .losses import frame_correlation, guided_attention_loss, masked_mean, masked_mse
from .schedules import PaperSchedule, teacher_prob_at
from .train_step import apply_clipped, report

__all__ = ["Tacotron2"]

MODES = {"teacher_forcing", "scheduled_sampling", "free_running"}


@keras.saving.register_keras_serializable(package="tf_tacokd")
class Tacotron2(keras.Model):
    """Tacotron2 (Shen et al. 2018) with teacher-forcing, scheduled-sampling and
    free-running decoding, chosen per call.

    Args:
        n_symbols: size of the text symbol table.
        n_mels: mel bands.
        settings: a :class:`~tf_tacokd.config.ModelConfig` as a dict (``from_settings``
            builds it from the dataclass).

    Calling the model: ``model({"text_ids": ids})`` synthesises (free running until the
    stop token); ``model({"text_ids": ids, "mel": mel})`` runs teacher forcing on ``mel``.
    Both return a dict: ``mel`` (after the postnet), ``mel_before``, ``stop_logits``
    ``[B, steps]``, ``alignments`` ``[B, steps, T]``, ``hidden`` ``[B, steps, H]`` and
    ``lengths`` (frames).
    """

    def __init__(self, n_symbols: int, n_mels: int, settings: dict[str, Any] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_symbols, self.n_mels = int(n_symbols), int(n_mels)
        self.settings = ModelConfig(**(settings or {}))
        m = self.settings
        self.r = m.reduction_factor
        self.encoder = Encoder(n_symbols, m.embedding_dim, m.encoder_conv_layers,
                               m.encoder_conv_channels, m.encoder_kernel_size, m.encoder_dropout,
                               m.encoder_lstm_units, name="encoder")
        self.decoder = Decoder(n_mels, m.reduction_factor, m.prenet_units, m.prenet_dropout,
                               m.decoder_lstm_units, m.decoder_lstm_layers, m.attention_dim,
                               m.attention_filters, m.attention_kernel_size, name="decoder")
        self.postnet = Postnet(n_mels, m.postnet_layers, m.postnet_channels, m.postnet_kernel_size,
                               m.postnet_dropout, name="postnet")
        self.encoder.build((None, None))
        self.decoder.build(self.encoder.output_dim)
        self.postnet.build((None, None, n_mels))
        self.built = True
        self.train_settings: TrainConfig | None = None
        self._infer_fns: dict = {}  # one compiled decoder per (buffer size, window)
        names = ["loss", "mel_loss", "postnet_loss", "stop_loss", "ga_loss", "fr_mel_loss",
                 "fr_postnet_loss", "fr_correlation", "teacher_prob"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    @classmethod
    def from_settings(cls, model: ModelConfig, n_symbols: int, n_mels: int, **kwargs) -> "Tacotron2":
        """Build from the ``[model]`` config section."""
        return cls(n_symbols, n_mels, dataclasses.asdict(model), **kwargs)

    def get_config(self) -> dict:
        return {"n_symbols": self.n_symbols, "n_mels": self.n_mels,
                "settings": dataclasses.asdict(self.settings), "name": self.name}

    # -- running ----------------------------------------------------------------

    def encode(self, text_ids: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Encoder outputs ``[B, T, D]`` and the text mask ``[B, T]`` (0 ids are padding)."""
        text_ids = tf.cast(text_ids, tf.int32)
        mask = tf.not_equal(text_ids, 0)
        return self.encoder(text_ids, mask, training=training), mask

    def decode_options(self, **changes) -> DecodeOptions:
        """The decoder options of this model's settings (step bound, stop rule), with
        ``changes`` (any :class:`~tf_tacokd.model.decoder.DecodeOptions` field; a
        ``max_steps`` of None keeps the default)."""
        m = self.settings
        unknown = set(changes) - set(DecodeOptions._fields)
        if unknown:
            raise TypeError(f"unknown decoder options {sorted(unknown)}: choose from {DecodeOptions._fields}")
        if changes.get("max_steps", 0) is None:
            del changes["max_steps"]
        return DecodeOptions(max_steps=m.max_decoder_steps, min_steps=m.min_decoder_steps,
                             stop_threshold=m.stop_threshold)._replace(**changes)

    def run(self, text_ids, mel=None, teacher_prob=1.0, seed=None, training=False, memory=None,
            **options) -> dict[str, tf.Tensor]:
        """Encoder (unless ``memory=(outputs, mask)`` is given), decoder and postnet.

        Args:
            text_ids: ``[B, T]`` int ids.
            mel: ``[B, F, n_mels]`` targets (F a multiple of r): decode F / r steps feeding
                natural frames with probability ``teacher_prob``. None: free running until
                the stop token or ``max_steps`` (default ``model.max_decoder_steps``).
            seed: int32 ``[2]`` for prenet dropout and scheduled-sampling draws.
            training: dropout in encoder and postnet, batch-norm statistics.
            memory: precomputed ``(encoder_outputs, mask)`` (e.g. a teacher's encoder).
            **options: decoder options by name (:meth:`decode_options`): ``max_steps``,
                ``window``, ``stop_gradient``, and for TFLite export ``collect``,
                ``alignment_width``, and the tensors ``prenet_masks`` and ``step_limit``
                (see :meth:`Decoder.call <tf_tacokd.model.decoder.Decoder.call>`).

        Example:
            >>> out = model.run(ids, max_steps=200, window=(1, 3))  # doctest: +SKIP
        """
        outputs, mask = memory if memory is not None else self.encode(text_ids, training)
        tensors = {name: options.pop(name, None) for name in ("prenet_masks", "step_limit")}
        dec = self.decoder(outputs, mask, targets=mel, teacher_prob=teacher_prob, seed=seed,
                           options=self.decode_options(**options), **tensors)
        mel_after = self.postnet(dec.frames, training=training)
        return {"mel": mel_after, "mel_before": dec.frames, "stop_logits": dec.stop_logits,
                "alignments": dec.alignments, "hidden": dec.hidden, "lengths": dec.lengths * self.r,
                "finished": dec.finished}

    def call(self, inputs, training=False):
        mel = inputs.get("mel") if isinstance(inputs, dict) else None
        text_ids = inputs["text_ids"] if isinstance(inputs, dict) else inputs
        return self.run(text_ids, mel, teacher_prob=1.0, training=training)

    #: Free-running output buffers are sized in multiples of this many decoder steps and the
    #: step bound is a tensor, so one compiled decoder serves every bound up to its size.
    #: Compiling per bound (1) retraced for almost every sentence: on this CPU a trace costs
    #: about 15x a short sentence's inference (``python bench/infer.py``).
    infer_bucket: int = 256

    def infer(self, text_ids, seed: int = 0, max_steps: int | None = None,
              window: bool | None = None) -> dict[str, np.ndarray]:
        """Synthesise mels for a batch of id sequences (free running, compiled once per
        buffer size: see :attr:`infer_bucket`).

        Returns numpy arrays: ``mel [B, F, n_mels]`` (zero past each ``lengths``),
        ``lengths`` (frames), ``stop_probs [B, steps]``, ``alignments``, ``finished``.
        """
        m = self.settings
        use_window = m.attention_window if window is None else window
        bound = max_steps or m.max_decoder_steps
        key = (-(-bound // self.infer_bucket) * self.infer_bucket, use_window)
        if key not in self._infer_fns:
            win = (m.window_backward, m.window_forward) if use_window else None

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32),
                                          tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.int32)])
            def fn(ids, seed_pair, limit):
                out = self.run(ids, seed=seed_pair, max_steps=key[0], window=win, step_limit=limit)
                mask = tf.sequence_mask(out["lengths"], tf.shape(out["mel"])[1], dtype=tf.float32)
                f32 = lambda x: tf.cast(x, tf.float32)  # noqa: E731  (float16 under mixed precision)
                return {"mel": f32(out["mel"]) * mask[..., tf.newaxis], "lengths": out["lengths"],
                        "stop_probs": tf.sigmoid(f32(out["stop_logits"])),
                        "alignments": f32(out["alignments"]), "finished": out["finished"]}

            self._infer_fns[key] = fn
        ids = tf.constant(np.atleast_2d(np.asarray(text_ids, np.int32)))
        out = self._infer_fns[key](ids, tf.constant([seed, 0], tf.int32), tf.constant(bound, tf.int32))
        return {k: v.numpy() for k, v in out.items()}

    # -- training ---------------------------------------------------------------

    def compile_for_training(self, train: TrainConfig, **kwargs) -> None:
        """``compile`` with the paper's optimiser from ``[train]`` (Adam, schedule, clipping)."""
        schedule = PaperSchedule(train.learning_rate, train.final_learning_rate, train.decay_start,
                                 train.decay_steps, warmup=train.warmup_steps)
        # no global_clipnorm here: Keras would clip each replica's gradient before the
        # replicas are summed; apply_clipped clips the summed gradient instead
        optimizer = keras.optimizers.Adam(
            learning_rate=schedule, beta_1=train.adam_beta1, beta_2=train.adam_beta2,
            epsilon=train.adam_epsilon)
        self.compile(optimizer=optimizer, train=train, **kwargs)

    def compile(self, optimizer="adam", train: TrainConfig | None = None, **kwargs) -> None:
        """Keras ``compile`` plus the training settings (mode, loss weights, schedules)."""
        self.train_settings = train or TrainConfig()
        if self.train_settings.mode not in MODES:
            raise ValueError(f"unknown training mode {self.train_settings.mode!r}: {sorted(MODES)}")
        super().compile(optimizer=optimizer, **kwargs)

    def get_compile_config(self) -> dict | None:
        config = super().get_compile_config()
        if config is not None and self.train_settings is not None:
            config = {**config, "train": dataclasses.asdict(self.train_settings)}
        return config

    def compile_from_config(self, config: dict) -> None:
        """Re-compile when a compiled ``.keras`` file is loaded (optimizer state then loads)."""
        config = dict(config)
        train = config.pop("train", None)
        self.compile(train=TrainConfig(**train) if train else None,
                     **keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def losses_for(self, batch: dict[str, tf.Tensor], out: dict[str, tf.Tensor], step) -> dict[str, tf.Tensor]:
        """Masked mel L2 (before and after the postnet), stop BCE and guided attention.

        Computed in float32 (also under mixed precision)."""
        t = self.train_settings or TrainConfig()
        out = {k: tf.cast(v, tf.float32) if v.dtype.is_floating else v for k, v in out.items()}
        mask, target = batch["mel_mask"], batch["mel"]
        mel_loss = masked_mse(out["mel_before"], target, mask)
        post_loss = masked_mse(out["mel"], target, mask)
        r = self.r
        stop_target = batch["stop_targets"][:, r - 1 :: r]
        step_mask = mask[:, ::r]
        bce = tf.nn.weighted_cross_entropy_with_logits(stop_target, out["stop_logits"], t.stop_pos_weight)
        stop_loss = masked_mean(bce, step_mask)
        losses = {"mel_loss": mel_loss, "postnet_loss": post_loss, "stop_loss": stop_loss}
        total = mel_loss + post_loss + stop_loss
        if t.guided_attention and t.ga_weight > 0:
            text_lengths = tf.reduce_sum(tf.cast(tf.not_equal(batch["text_ids"], 0), tf.int32), -1)
            step_lengths = (batch["mel_lengths"] + r - 1) // r
            ga = guided_attention_loss(out["alignments"], text_lengths, step_lengths, t.ga_sigma)
            weight = t.ga_weight * tf.pow(0.5, tf.cast(step, tf.float32) / t.ga_decay_steps)
            losses["ga_loss"] = ga
            total += weight * ga
        losses["loss"] = total
        return losses

    def l2_penalty(self) -> tf.Tensor:
        """``l2_weight`` times the squared norm of trainable kernels and embeddings."""
        t = self.train_settings or TrainConfig()
        weights = [v for v in self.trainable_variables if len(v.shape) >= 2]
        if not t.l2_weight or not weights:
            return tf.constant(0.0)
        return t.l2_weight * tf.add_n([tf.reduce_sum(tf.square(v)) for v in weights])

    def _seed(self, step) -> tf.Tensor:
        t = self.train_settings or TrainConfig()
        return tf.stack([tf.constant(t.seed, tf.int32), tf.cast(step, tf.int32) * 4099])

    def train_step(self, data):
        t = self.train_settings or TrainConfig()
        step = self.optimizer.iterations
        p = teacher_prob_at(step, t)
        with tf.GradientTape() as tape:
            out = self.run(data["text_ids"], data["mel"], teacher_prob=p, seed=self._seed(step),
                           training=True, stop_gradient=t.free_running_stop_gradient)
            losses = self.losses_for(data, out, step)
            # the losses are this replica's share of the global means (see global_sum);
            # the L2 term is the same on every replica, so each adds its 1/N part
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            total = self.optimizer.scale_loss(losses["loss"] + self.l2_penalty() / replicas)
        apply_clipped(self.optimizer, tape.gradient(total, self.trainable_variables),
                      self.trainable_variables, t.grad_clip_norm)
        losses["teacher_prob"] = p
        return self._report(losses)

    def test_step(self, data):
        t = self.train_settings or TrainConfig()
        step = self.optimizer.iterations
        p = teacher_prob_at(step, t)
        seed = tf.constant([t.seed, 1], tf.int32)
        out = self.run(data["text_ids"], data["mel"], teacher_prob=p, seed=seed)
        losses = self.losses_for(data, out, step)
        # always also free running: what inference does
        fr = self.run(data["text_ids"], data["mel"], teacher_prob=0.0, seed=seed)
        losses["fr_mel_loss"] = masked_mse(fr["mel_before"], data["mel"], data["mel_mask"])
        losses["fr_postnet_loss"] = masked_mse(fr["mel"], data["mel"], data["mel_mask"])
        losses["fr_correlation"] = frame_correlation(fr["mel"], data["mel"], data["mel_mask"])
        return self._report(losses)

    def _report(self, losses: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return report(self.trackers, losses)
