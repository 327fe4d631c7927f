"""The paper's method (section 3): a free-running student distilled from a teacher.

The teacher (a Tacotron2 trained with teacher forcing) is frozen. The student has the
same architecture, uses the teacher's encoder (frozen unless ``distill.train_encoder``)
and starts from the teacher's decoder and postnet (``distill.student_init``). Per
batch, the teacher decodes with teacher forcing and yields its decoder hidden states
``s`` (no gradient); the student decodes **free running** over the same number of
steps and yields ``s_hat`` and the mel ``y_hat``::

    Loss_f     = masked L2 mel loss (before and after the postnet) + stop BCE     (eq. 6)
                 (options, not the paper: distill.feature_target = "teacher" takes the
                 teacher's teacher-forced output as the target, feature_loss = "l1+l2",
                 feature_weight scales the mel terms, feature_alignment = "dtw" pairs the
                 student's frames with the target's along each utterance's DTW path)
    Loss_d     = mean over real steps of ||s_t - s_hat_t||^2  (chosen LSTM layers) (eq. 7)
                 (option, not the paper: state_alignment = "dtw" pairs the steps along the
                 same DTW path, frame pairs (i, j) giving step pairs (i // r, j // r))
    Loss_total = Loss_f + lambda * Loss_d                                          (eq. 8)
                 (options, not the paper: + gv_weight * GV(mel) + state_gv_weight * GV(s),
                 GV(x) = mean over utterances and dimensions of (std_t(x̂) - std_t(x))^2,
                 the standard deviation over real time steps; see ``gv_loss``;
                 + attention_weight * A, A = mean over real steps of ||a_t - â_t||^2, the
                 teacher's teacher-forced and the student's attention weights; see
                 ``attention_distance``; + teacher_forced_weight * the student's own
                 teacher-forced loss, a second student pass with natural frames fed back)

Reported besides the losses, to see a collapse while it happens (1 = no collapse):
``mel_spread`` is the variance over time of the student's mel relative to the natural
mel's (per utterance, summed over bands, averaged over utterances); ``state_spread`` the
same for the distilled decoder states relative to the teacher's.

Example:
    >>> from tf_tacokd.config import load_config
    >>> from tf_tacokd.distill import distill
    >>> distill(load_config("espeak_en"), "data/en", "runs/teacher", "runs/student")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import keras
import tensorflow as tf

from .atomic import write_json
from .config import Config, ConfigError, DistillConfig, TrainConfig
from .model import Tacotron2
from .model.losses import dtw_path, frame_correlation, gv_loss, masked_mae, masked_mean, masked_mse, spread_ratio
from .model.train_step import apply_clipped, report
from .runs import RunPaths, load_model, load_run, reads_symbols, run_of_model
from .train import TrainResult, fit_run, save_model

__all__ = ["Distiller", "distill", "distillation_loss", "load_teacher", "teacher_readiness"]


def distillation_loss(teacher_hidden, student_hidden, step_mask, units: int, layers: list[int],
                      reduction: str = "mean") -> tf.Tensor:
    """Equation 7: mean over real decoder steps of the squared distance between hidden states.

    Args:
        teacher_hidden, student_hidden: ``[B, steps, n_layers * units]`` (layer outputs
            concatenated in order).
        step_mask: ``[B, steps]`` 1 for real steps.
        units: units per LSTM layer.
        layers: which layers take part (0-based).
        reduction: over the hidden units, "mean" (an MSE, on the scale of our per-element
            feature loss) or "sum" (``|s - ŝ|²`` read literally: ``units × layers`` times larger).
    """
    parts = [slice(i * units, (i + 1) * units) for i in layers]
    diff = tf.concat([teacher_hidden[..., p] - student_hidden[..., p] for p in parts], -1)
    per_step = tf.reduce_mean(tf.square(diff), -1) if reduction == "mean" else tf.reduce_sum(tf.square(diff), -1)
    return masked_mean(per_step, step_mask)


def attention_distance(teacher_alignments, student_alignments, step_mask) -> tf.Tensor:
    """Not the paper: mean over real decoder steps of the squared distance between two
    attention distributions, summed over text positions (0 when the student attends where
    the teacher does, 2 at most: all weight on two different positions).

    Args:
        teacher_alignments, student_alignments: ``[B, steps, T]``, each step summing to 1.
        step_mask: ``[B, steps]`` 1 for real steps.

    Example:
        >>> a = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])
        >>> float(attention_distance(a, a[:, ::-1], tf.ones([1, 2])))
        2.0
    """
    per_step = tf.reduce_sum(tf.square(teacher_alignments - student_alignments), -1)
    return masked_mean(per_step, step_mask)


def _step_mean(hidden: tf.Tensor, step_mask: tf.Tensor) -> tf.Tensor:
    """The masked mean state over real steps, broadcast to every step ``[B, steps, units]``."""
    m = step_mask[..., tf.newaxis]
    mean = tf.reduce_sum(hidden * m, [0, 1], keepdims=True) / tf.maximum(tf.reduce_sum(m), 1.0)
    return tf.broadcast_to(mean, tf.shape(hidden))


class Distiller(keras.Model):
    """Frozen teacher + free-running student, trained with ``Loss_f + lambda * Loss_d``.

    Args:
        teacher: a trained :class:`~tf_tacokd.model.Tacotron2` (frozen here).
        student: a Tacotron2 of the same architecture (see :meth:`student_from`).
        settings: the ``[distill]`` config section.
    """

    def __init__(self, teacher: Tacotron2, student: Tacotron2, settings: DistillConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        if teacher.get_config()["settings"] != student.get_config()["settings"]:
            raise ValueError("the student must have the teacher's architecture ([model] section)")
        self.teacher, self.student, self.settings = teacher, student, settings
        self.teacher.trainable = False
        self.student.encoder.trainable = settings.train_encoder
        self.r = student.r
        names = ["loss", "feature_loss", "distill_loss", "distill_relative", "mel_spread", "state_spread",
                 "gv_loss", "state_gv_loss", "attention_loss", "mel_loss", "postnet_loss", "stop_loss", "ga_loss",
                 "forced_loss", "fr_mel_loss", "fr_postnet_loss", "fr_correlation"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.built = True

    @staticmethod
    def student_from(teacher: Tacotron2, init: str = "teacher") -> Tacotron2:
        """A student of the teacher's architecture: the teacher's weights ("teacher"), or
        the teacher's encoder with a freshly initialised decoder and postnet ("random")."""
        student = Tacotron2.from_config({**teacher.get_config(), "name": "student"})
        if init == "teacher":
            student.set_weights(teacher.get_weights())
        else:
            student.encoder.set_weights(teacher.encoder.get_weights())
        return student

    @classmethod
    def build_from(cls, teacher: Tacotron2, settings: DistillConfig, train: TrainConfig) -> "Distiller":
        """A compiled distiller from a trained teacher: a frozen copy of it, and a student made
        by :meth:`student_from` (``settings.student_init``). The only place one is built (the
        ``distill`` command and every trial of the lambda search)."""
        teacher_copy = Tacotron2.from_config({**teacher.get_config(), "name": "teacher"})
        teacher_copy.set_weights(teacher.get_weights())
        model = cls(teacher_copy, cls.student_from(teacher_copy, settings.student_init), settings)
        model.compile_for_training(student_training(train, settings))
        return model

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile_for_training(self, train: TrainConfig, **kwargs) -> None:
        """The student's optimiser: the teacher's (Adam, schedule, clipping) from ``train``;
        :meth:`build_from` passes :func:`student_training`'s copy with the student's learning rate."""
        self.student.compile_for_training(train)
        self.compile(optimizer=self.student.optimizer, **kwargs)

    def infer(self, *args, **kwargs):
        """Synthesis with the student."""
        return self.student.infer(*args, **kwargs)

    def _forward(self, data, step, training: bool):
        train = self.student.train_settings or TrainConfig()
        seed = tf.stack([tf.constant(train.seed, tf.int32), tf.cast(step, tf.int32) * 4099])
        memory, mask = self.teacher.encode(data["text_ids"], training=False)
        teacher = self.teacher.run(data["text_ids"], data["mel"], teacher_prob=1.0, seed=seed,
                                   training=False, memory=(memory, mask))
        target_hidden = tf.stop_gradient(teacher["hidden"])
        student_memory = (self.student.encode(data["text_ids"], training=training)
                          if self.settings.train_encoder else (memory, mask))
        out = self.student.run(data["text_ids"], data["mel"], teacher_prob=0.0, seed=seed,
                               training=training, memory=student_memory,
                               stop_gradient=train.free_running_stop_gradient)
        d = self.settings
        targets = data
        if d.feature_target == "teacher":  # time-locked to the hidden states Loss_d targets
            targets = {**data, "mel": tf.stop_gradient(tf.cast(teacher["mel"], tf.float32))}
        losses = self.student.losses_for(targets, out, step)
        losses["feature_loss"] = losses["loss"]
        path = None
        if d.feature_alignment == "dtw" or d.state_alignment == "dtw":  # one path for both
            path = dtw_path(out["mel"], targets["mel"], data["mel_mask"], d.dtw_band)
        if d.feature_loss != "l2" or d.feature_weight != 1.0 or d.feature_alignment != "step":
            mel_terms = self._mel_terms(out, targets["mel"], data["mel_mask"],
                                        path if d.feature_alignment == "dtw" else None)
            losses["feature_loss"] = (losses["loss"] - losses["mel_loss"] - losses["postnet_loss"]
                                      + d.feature_weight * mel_terms)
        step_mask = data["mel_mask"][:, :: self.r]
        units = self.student.settings.decoder_lstm_units
        s, s_hat = tf.cast(target_hidden, tf.float32), tf.cast(out["hidden"], tf.float32)
        losses["distill_loss"], losses["distill_relative"] = self._state_terms(
            s, s_hat, step_mask, path if d.state_alignment == "dtw" else None)
        losses["loss"] = losses["feature_loss"] + d.lambda_ * losses["distill_loss"]
        chosen = lambda h: tf.concat([h[..., i * units:(i + 1) * units] for i in d.layers], -1)  # noqa: E731
        s_sel, s_hat_sel = chosen(s), chosen(s_hat)
        losses["mel_spread"] = spread_ratio(out["mel"], data["mel"], data["mel_mask"])
        losses["state_spread"] = spread_ratio(s_hat_sel, s_sel, step_mask)
        if d.gv_weight > 0:
            losses["gv_loss"] = (gv_loss(out["mel_before"], data["mel"], data["mel_mask"])
                                 + gv_loss(out["mel"], data["mel"], data["mel_mask"]))
            losses["loss"] += d.gv_weight * losses["gv_loss"]
        if d.state_gv_weight > 0:
            losses["state_gv_loss"] = gv_loss(s_hat_sel, s_sel, step_mask)
            losses["loss"] += d.state_gv_weight * losses["state_gv_loss"]
        if d.attention_weight > 0:
            losses["attention_loss"] = attention_distance(
                tf.stop_gradient(tf.cast(teacher["alignments"], tf.float32)),
                tf.cast(out["alignments"], tf.float32), step_mask)
            losses["loss"] += d.attention_weight * losses["attention_loss"]
        if d.teacher_forced_weight > 0:
            forced = self.student.run(data["text_ids"], data["mel"], teacher_prob=1.0, seed=seed,
                                      training=training, memory=student_memory)
            losses["forced_loss"] = self.student.losses_for(data, forced, step)["loss"]
            losses["loss"] += d.teacher_forced_weight * losses["forced_loss"]
        return losses, out

    def _state_terms(self, s, s_hat, step_mask, path=None) -> tuple[tf.Tensor, tf.Tensor]:
        """Loss_d (equation 7) with the steps paired at the same index or, given ``path``
        (:func:`dtw_path` of the mel), at frame pair (i, j)'s steps (i // r, j // r); and Loss_d
        as an MSE over the spread of the teacher's own states (1: the student's state is no
        nearer the teacher's than a random other step of the teacher would be)."""
        d = self.settings
        units = self.student.settings.decoder_lstm_units
        paired, paired_hat, paired_mask = s, s_hat, step_mask
        if path is not None:
            steps = path[0] // self.r
            paired = tf.gather(s, steps[..., 1], batch_dims=1)
            paired_hat, paired_mask = tf.gather(s_hat, steps[..., 0], batch_dims=1), path[1]
        loss = distillation_loss(paired, paired_hat, paired_mask, units, d.layers, d.loss_reduction)
        spread = distillation_loss(s, _step_mean(s, step_mask), step_mask, units, d.layers, "mean")
        mse = (loss if d.loss_reduction == "mean"  # the same value: computed once
               else distillation_loss(paired, paired_hat, paired_mask, units, d.layers, "mean"))
        return loss, mse / tf.maximum(spread, 1e-8)

    def _mel_terms(self, out, target, mask, path=None) -> tf.Tensor:
        """Loss_f's mel terms (before and after the postnet): L2, or L1 + L2, with frames paired
        at the same step or, given ``path`` (:func:`dtw_path` of the postnet output), along it
        (one path for both)."""
        d = self.settings
        before, after = out["mel_before"], out["mel"]
        if path is not None:
            pairs, mask = path
            along = lambda x, k: tf.gather(tf.cast(x, tf.float32), pairs[..., k], batch_dims=1)  # noqa: E731
            before, after, target = along(before, 0), along(after, 0), along(target, 1)
        terms = masked_mse(before, target, mask) + masked_mse(after, target, mask)
        if d.feature_loss == "l1+l2":
            terms += masked_mae(before, target, mask) + masked_mae(after, target, mask)
        return terms

    def train_step(self, data):
        step = self.optimizer.iterations
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            losses, _ = self._forward(data, step, training=True)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            total = self.optimizer.scale_loss(  # shares of the global means, see global_sum
                losses["loss"] + self.student.l2_penalty() / replicas)
        apply_clipped(self.optimizer, tape.gradient(total, variables), variables,
                      (self.student.train_settings or TrainConfig()).grad_clip_norm)
        return self._report(losses)

    def test_step(self, data):
        losses, out = self._forward(data, self.optimizer.iterations, training=False)
        # the student's training mode is free running: its validation is what inference does
        losses["fr_mel_loss"] = masked_mse(out["mel_before"], data["mel"], data["mel_mask"])
        losses["fr_postnet_loss"] = masked_mse(out["mel"], data["mel"], data["mel_mask"])
        losses["fr_correlation"] = frame_correlation(out["mel"], data["mel"], data["mel_mask"])
        return self._report(losses)

    def _report(self, losses):
        # ratios computed on this replica's examples, not shares of a global mean
        return report(self.trackers, losses, shared={"distill_relative", "mel_spread", "state_spread",
                                                           "fr_correlation"})


def teacher_readiness(teacher: Tacotron2, data_dir: str | Path, cfg: Config,
                      echo: Callable[[str], None] = print, measured: float | None = None) -> float | None:
    """The teacher's free-running frame correlation on the validation split (the same 4 batches
    of 16 as ``bench/curve.py`` and ``bench/collapse.py`` use: with 2 batches the
    figure for one teacher differed by 0.10), and a warning when it is below
    :data:`~tf_tacokd.evaluate.free_running.DRONE_RISK`: the L2 feature loss then prefers a
    flat output, and the student collapses to a drone (RESULTS.md section 10). None if the data
    has no validation split. ``measured``: the figure from an earlier measurement of the same
    teacher file on the same data (see :func:`_readiness_key`); reported, not measured again."""
    from .evaluate.free_running import DRONE_RISK, free_running_correlation

    if measured is None:
        try:
            rho = free_running_correlation(teacher, data_dir, cfg)
        except (ValueError, FileNotFoundError):
            return None
    else:
        rho = measured
    echo(f"teacher decoding freely: frame correlation {rho:.2f} with the natural mel (validation split, "
         f"up to 64 utterances{'' if measured is None else '; measured before'})")
    if rho < DRONE_RISK:
        echo(f"warning: below {DRONE_RISK}: the feature loss of a free-running student is then lowest for a flat "
             "output, and the student is expected to collapse to a drone (RESULTS.md section 10); "
             "train the teacher longer first")
    return rho


# teacher readiness figures measured in this process, by json.dumps(_readiness_key(...)): an
# experiment distils several students from one snapshot and measures it once (about 2 minutes
# for the English teacher on this CPU)
_READINESS: dict[str, float] = {}


def _readiness_key(teacher: str | Path, data_dir: str | Path, cfg: Config) -> list[Any]:
    """What the teacher's readiness figure depends on: the teacher file (path, size,
    modification time), the data directory and the ``[data]`` settings it is read with."""
    path = Path(teacher).resolve()
    file = RunPaths(path).model if path.is_dir() else path
    stat = file.stat()
    key = [str(file), stat.st_size, stat.st_mtime_ns, str(Path(data_dir).resolve()), cfg.to_dict()["data"]]
    return json.loads(json.dumps(key))  # as teacher.json holds it (tuples become lists)


def _measured_readiness(key: list[Any], run_dir: Path) -> float | None:
    """The readiness figure already measured for ``key``: in this process, or by the run being
    resumed (its ``teacher.json``). None if it must be measured."""
    found = _READINESS.get(json.dumps(key))
    if found is not None:
        return found
    try:
        record = json.loads(RunPaths(run_dir).teacher.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and record.get("readiness_key") == key:
        value = record.get("free_running_correlation")
        return float(value) if isinstance(value, (int, float)) else None
    return None


def load_teacher(path: str | Path) -> tuple[Tacotron2, Config | None]:
    """A teacher from a run directory (its ``model.keras``) or a ``.keras`` file, with the
    config of the run it belongs to (``RUN/`` or ``RUN/snapshots/``; None for a file outside a run)."""
    path = Path(path)
    if path.is_dir():
        info = load_run(path)
        if not info.model_path.is_file():
            raise FileNotFoundError(f"{info.model_path}: the teacher run has no model yet")
        return load_model(info.model_path), info.config
    if path.suffix == ".keras" and path.is_file():
        run = RunPaths(run_of_model(path))
        config = load_run(run.root).config if run.config.is_file() and run.data.is_file() else None
        return load_model(path), config
    raise FileNotFoundError(f"{path}: not a teacher run directory or .keras file")


def student_training(train: TrainConfig, settings: DistillConfig) -> TrainConfig:
    """``[train]`` as the student uses it: the learning rate is ``distill.learning_rate``, the
    final rate is capped by it, and everything else (schedule, Adam, clipping) is the teacher's.

    Example:
        >>> from tf_tacokd.config import load_config
        >>> cfg = load_config("espeak_en")
        >>> t = student_training(cfg.train, cfg.distill)
        >>> (t.learning_rate, t.final_learning_rate, cfg.train.learning_rate)
        (0.0001, 1e-05, 0.001)
    """
    return dataclasses.replace(train, learning_rate=settings.learning_rate,
                               final_learning_rate=min(train.final_learning_rate, settings.learning_rate))


def distill(
    cfg: Config,
    data_dir: str | Path,
    teacher: str | Path,
    run_dir: str | Path,
    lambda_: float | None = None,
    steps: int | None = None,
    strategy: str | None = None,
    verbose: int | str = "auto",
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Train (or resume) a KD student; ``run_dir/model.keras`` is the student alone.

    Args:
        cfg: the config (``[distill]`` for lambda, layers, encoder, init and steps; ``[train]``
            for the optimiser, checkpoints and logging).
        data_dir: preprocessed data (the teacher's).
        teacher: the teacher's run directory or ``.keras`` file.
        run_dir: the student's run directory (resumes if it holds checkpoints).
        lambda_: overrides ``distill.lambda``.
        steps: overrides ``distill.steps``.

    Many parameters because each is a ``tacokd distill`` option; all but the first three have
    defaults.
    """
    if lambda_ is not None:
        cfg = cfg.replace(distill=dataclasses.replace(cfg.distill, lambda_=lambda_))
    if steps is not None:
        cfg = cfg.replace(distill=dataclasses.replace(cfg.distill, steps=steps))
    teacher_model, teacher_cfg = load_teacher(teacher)
    if teacher_cfg is not None and teacher_cfg.model != cfg.model:
        differ = [f"{k} = {v!r} (teacher: {getattr(teacher_cfg.model, k)!r})"
                  for k, v in dataclasses.asdict(cfg.model).items() if getattr(teacher_cfg.model, k) != v]
        raise ConfigError(f"the [model] section differs from the teacher's ({teacher}): {'; '.join(differ)}. "
                          "The student must have the teacher's architecture: use the teacher's config "
                          f"({teacher_cfg.source})")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = _readiness_key(teacher, data_dir, cfg)
    record = {"teacher": str(Path(teacher).resolve()), "readiness_key": key}
    rho = teacher_readiness(teacher_model, data_dir, cfg, echo, measured=_measured_readiness(key, run_dir))
    if rho is not None:
        record["free_running_correlation"] = round(rho, 4)
        _READINESS[json.dumps(key)] = record["free_running_correlation"]
    write_json(RunPaths(run_dir).teacher, record, indent=None)

    def build(manifest) -> Distiller:
        same_symbols = reads_symbols(teacher, teacher_model.n_symbols, manifest.symbols.symbols)
        if not same_symbols or teacher_model.n_mels != manifest.n_mels:
            other_table = ", another symbol table" if teacher_model.n_symbols == len(manifest.symbols) \
                and not same_symbols else ""
            raise ConfigError(f"the teacher was trained on other data ({teacher_model.n_symbols} symbols, "
                              f"{teacher_model.n_mels} mels) than {data_dir} ({len(manifest.symbols)} symbols, "
                              f"{manifest.n_mels} mels{other_table})")
        return Distiller.build_from(teacher_model, cfg.distill, cfg.train)

    d = cfg.distill
    label = f"KD student (lambda = {d.lambda_:g}, layers {d.layers}, encoder {'trained' if d.train_encoder else 'frozen'})"
    return fit_run(cfg, data_dir, run_dir, build, lambda m, p: save_model(m.student, p), d.steps,
                   label, strategy, verbose, echo)


