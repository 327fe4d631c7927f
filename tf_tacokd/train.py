"""Training runs: ``model.fit`` with checkpoints, resume, NaN guard, TensorBoard.

A run directory is self-describing::

    config.toml        the resolved config (mode and steps included)
    data.json          symbols, text front end, audio parameters and mel statistics
    checkpoints/       tf.train checkpoints (model + optimizer + step), last K kept
    model.keras        the latest weights as an ordinary Keras model (synthesis, export)
    logs/              TensorBoard: losses, learning rate, teacher-forcing ratio,
                       alignment image and Griffin-Lim audio of a validation utterance
    history.csv        per-validation metrics
    state.json         step (the last checkpoint), status (running | finished | interrupted |
                       diverged), the live step ``at`` and the checkpoint's time

Re-running with the same directory resumes from the newest intact checkpoint (step,
optimiser state and schedules) and continues the same batch order (the batches already
trained are skipped), so an interrupted run goes on as if it had not stopped.

Example:
    >>> from tf_tacokd.config import load_config
    >>> from tf_tacokd.train import train
    >>> train(load_config("espeak_en"), "data/en", "runs/teacher", mode="teacher")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from .atomic import atomic_path, write_json
from .config import Config, ConfigError, TrainConfig, load_config
from .data.dataset import Manifest, check_compatible, load_manifest, make_dataset
from .data.seen import INHERITED_KEY, inherited_fingerprints, text_fingerprint
from .model import Tacotron2, teacher_prob_at
from .runs import DirectoryLock, RunPaths, ancestors

__all__ = ["train", "fit_run", "TrainResult", "TrainingDiverged", "MODE_ALIASES", "save_model", "make_strategy"]

#: CLI names of the training modes.
MODE_ALIASES = {"teacher": "teacher_forcing", "ss": "scheduled_sampling", "fr": "free_running",
                "teacher_forcing": "teacher_forcing", "scheduled_sampling": "scheduled_sampling",
                "free_running": "free_running"}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


@dataclass
class TrainResult:
    """How a training run ended."""

    run_dir: Path
    step: int
    status: str
    seconds: float
    history: list[dict[str, float]]


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default`` (one device), ``mirrored`` (all visible GPUs, or the CPU) or
    ``multiworker`` (several processes/machines described by the ``TF_CONFIG`` variable)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable "
                             "(cluster addresses and this worker's task), set on every worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}: use default, mirrored or multiworker")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def save_model(model: Tacotron2, path: str | Path) -> Path:
    """Save the weights as an uncompiled ``.keras`` file, atomically (write, then rename)."""
    path = Path(path)
    clean = Tacotron2.from_config(model.get_config())
    clean.set_weights(model.get_weights())
    with atomic_path(path, keep_suffix=True) as tmp:  # Keras saves only to a name ending in .keras
        clean.save(tmp)
    return path


def training_checkpoint(model) -> tf.train.Checkpoint:
    """Model, optimizer and every non-trainable variable (``state``).

    The optimizer reaches the trainable weights, but a Keras 3 model's batch-norm moving
    statistics and dropout random-generator states are reachable by nothing that
    ``tf.train.Checkpoint`` follows: without ``state`` a resumed run restarts them (moving
    mean 0, variance 1), so its ``model.keras`` is wrong until they re-converge, and it draws
    other dropout masks than an uninterrupted run.
    """
    state = tf.train.Checkpoint(**{f"v{i}": v for i, v in enumerate(model.non_trainable_variables)})
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer, state=state)


def restore_intact(ckpt: tf.train.Checkpoint, manager: tf.train.CheckpointManager,
                   echo: Callable[[str], None] = print) -> str | None:
    """Restore the newest checkpoint that reads back whole; a broken one (cut short by a full
    disk or a killed process) is named and skipped. Returns the restored prefix (None: none).

    A checkpoint written before ``state`` was saved (see :func:`training_checkpoint`)
    restores with a note: batch-norm statistics and dropout states start afresh."""
    for prefix in reversed(manager.checkpoints):
        try:
            status = ckpt.restore(prefix)
            if any(name.startswith("state/") for name, _ in tf.train.list_variables(prefix)):
                status.assert_existing_objects_matched()
            else:
                status.expect_partial()
                echo(f"note: {prefix} is an older checkpoint without batch-norm statistics and dropout "
                     "states; they start afresh")
            return prefix
        except (tf.errors.OpError, ValueError, IndexError, AssertionError) as e:
            echo(f"warning: checkpoint {prefix} is unreadable ({type(e).__name__}: {str(e)[:120]}); "
                 "trying the one before it")
    if manager.checkpoints:
        raise RuntimeError(f"no readable checkpoint in {manager.directory}: every one is damaged; move the "
                           "directory away to start again")
    return None


def _write_state(run_dir: Path, **state: Any) -> None:
    write_json(RunPaths(run_dir).state, state)


def _data_description(manifest: Manifest) -> dict[str, Any]:
    d = manifest.data
    return {"data_dir": str(manifest.root.resolve()), "symbols": d["symbols"], "text": d["text"],
            "audio": d["audio"], "mel_stats": d["mel_stats"], "config_hash": d["config_hash"]}


@contextlib.contextmanager
def _precision(mixed: bool):
    """Build models under the ``mixed_float16`` policy (float16 compute, float32 weights;
    Keras wraps the optimizer in a LossScaleOptimizer). For GPUs: on a CPU it is slower."""
    previous = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _prepare_run_dir(run_dir: Path, cfg: Config, manifest: Manifest) -> None:
    """Create the run directory (refusing another architecture's) and describe the run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    files = RunPaths(run_dir)
    if files.config.is_file():
        _check_same_model(run_dir, cfg)
    cfg.save(files.config)
    description = _data_description(manifest)
    found = ancestors(run_dir)
    if found:
        description[INHERITED_KEY] = _inherited_texts(files, found, manifest)
    write_json(files.data, description, ensure_ascii=False)


def _inherited_texts(files: RunPaths, found: dict[str, dict[str, Any] | None], manifest: Manifest) -> str | None:
    """What the run's ancestors trained on beyond its own train split (``data.json``'s
    ``inherited_texts``, :mod:`tf_tacokd.data.seen`). An ancestor gone since the run started
    (a resume on another machine) keeps the value recorded then."""
    if any(data is None for data in found.values()) and files.data.is_file():
        before = json.loads(files.data.read_text(encoding="utf-8"))
        if before.get(INHERITED_KEY) is not None:
            return before[INHERITED_KEY]
    own = {text_fingerprint(text) for _, text, _ in manifest.texts("train")}
    return inherited_fingerprints(found.values(), own)


def _check_same_model(run_dir: Path, cfg: Config) -> None:
    """Resuming needs the architecture and data the checkpoints were made with."""
    old = load_config(RunPaths(run_dir).config)
    if old.model != cfg.model or old.audio != cfg.audio or old.text != cfg.text:
        raise ConfigError(
            f"{run_dir} holds a run with a different model, audio or text config; resume it with "
            f"its own config ({RunPaths(run_dir).config}) or use a new --out"
        )


# ---------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------


class NaNGuard(keras.callbacks.Callback):
    """Stop at the first non-finite loss (before any checkpoint of the bad weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.bad_step: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_step = int(self.model.optimizer.iterations.numpy())
            self.model.stop_training = True


class StepCheckpoint(keras.callbacks.Callback):
    """Every ``every`` steps, and every ``minutes`` minutes if > 0: a tf.train checkpoint and
    ``model.keras``; stop at ``last``. Every ``snapshot_every`` steps (if > 0) also a permanent
    ``snapshots/model-STEP.keras``."""

    def __init__(self, manager: tf.train.CheckpointManager, run_dir: Path, every: int, last: int,
                 guard: NaNGuard, export: Callable[[Any, Path], Path], snapshot_every: int = 0,
                 saved: tuple[int, float | None] = (0, None), minutes: float = 0.0) -> None:
        """Many parameters because each is a training setting of when and what to save."""
        super().__init__()
        self.manager, self.run_dir, self.every, self.last = manager, run_dir, every, last
        self.guard, self.export, self.snapshot_every, self.minutes = guard, export, snapshot_every, minutes
        self.saved_step, self.saved_time = saved  # the checkpoint a resume would start from
        self.saved_clock = time.monotonic()  # this process's clock at the last save (or start)

    def save(self) -> int:
        step = int(self.model.optimizer.iterations.numpy())
        if self.guard.bad_step is None:
            self.manager.save(checkpoint_number=step)
            self.export(self.model, RunPaths(self.run_dir).model)
            self.saved_step, self.saved_time = step, round(time.time(), 1)
            self.saved_clock = time.monotonic()
            _write_state(self.run_dir, step=step, status="running", saved_time=self.saved_time)
        return step

    def _minutes_passed(self) -> bool:
        return self.minutes > 0 and time.monotonic() - self.saved_clock >= 60 * self.minutes

    def snapshot(self, step: int) -> None:
        files = RunPaths(self.run_dir)
        files.snapshots.mkdir(exist_ok=True)
        shutil.copyfile(files.model, files.snapshot(step))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.guard.bad_step is not None:
            return
        snap = self.snapshot_every > 0 and step % self.snapshot_every == 0
        if step % self.every == 0 or step >= self.last or snap or self._minutes_passed():
            self.save()
        if snap:
            self.snapshot(step)
        if step >= self.last:
            self.model.stop_training = True


class ProgressLog(keras.callbacks.Callback):
    """Every ``every`` steps: the live step in ``state.json`` (next to ``step``, the last
    checkpoint, where a resume starts) for ``tacokd runs status``, and, when ``echo`` is
    given (a run logging to a file, where Keras prints one line per epoch), one line with
    the step, the batch losses and the seconds per step."""

    def __init__(self, run_dir: Path, checkpoints: StepCheckpoint, every: int, total: int,
                 echo: Callable[[str], None] | None) -> None:
        super().__init__()
        self.run_dir, self.checkpoints, self.every, self.total, self.echo = run_dir, checkpoints, every, total, echo
        self.mark: tuple[int, float] | None = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.every <= 0 or step % self.every:
            return
        now = time.perf_counter()
        rate = (now - self.mark[1]) / max(step - self.mark[0], 1) if self.mark else None
        self.mark = (step, now)
        _write_state(self.run_dir, step=self.checkpoints.saved_step, status="running", at=step,
                     saved_time=self.checkpoints.saved_time)
        if self.echo is not None:
            shown = {k: float(v) for k, v in (logs or {}).items()
                     if k in ("loss", "mel_loss", "feature_loss", "distill_loss", "distill_relative")}
            self.echo(f"step {step}/{self.total}  " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items())
                      + (f"  {rate:.2f} s/step" if rate is not None else ""))


class ExampleLogger(keras.callbacks.Callback):
    """TensorBoard extras: learning rate, teacher-forcing ratio, and every ``every`` steps
    the alignment image and Griffin-Lim audio of one fixed validation utterance."""

    def __init__(self, writer, example: dict[str, np.ndarray], cfg: Config, stats, every: int,
                 log_every: int) -> None:
        super().__init__()
        self.writer, self.example, self.cfg, self.stats = writer, example, cfg, stats
        self.every, self.log_every = every, log_every

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            if step % self.log_every == 0:
                lr = self.model.optimizer.learning_rate
                tf.summary.scalar("learning_rate", float(lr(step) if callable(lr) else lr))
                if logs and "teacher_prob" in logs:
                    tf.summary.scalar("teacher_forcing_ratio", float(logs["teacher_prob"]))
            if step % self.every == 0:
                try:
                    self.log_example(step)
                except Exception as e:  # noqa: BLE001  a preview must never end a long run
                    print(f"warning: step {step}: the example preview (TensorBoard audio and alignment) "
                          f"failed and was skipped: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)

    def log_example(self, step: int) -> None:
        from .audio import mel_to_audio
        from .plots import alignment_figure, figure_to_png

        out = self.model.infer(self.example["text_ids"], seed=0)
        n = int(out["lengths"][0])
        png = figure_to_png(alignment_figure(out["alignments"][0], title=f"step {step}"))
        image = tf.io.decode_png(png)[tf.newaxis]
        wav = mel_to_audio(out["mel"][0, :n], self.cfg.audio, self.stats) if n > 1 else np.zeros(1)
        with self.writer.as_default(step=step):
            tf.summary.image("alignment/validation", image)
            tf.summary.audio("audio/validation", wav[np.newaxis, :, np.newaxis].astype(np.float32),
                             self.cfg.audio.sample_rate)
            tf.summary.scalar("validation/decoder_steps", n // self.model.r)
        self.writer.flush()


class History(keras.callbacks.Callback):
    """Append each validation's metrics (with the step) to ``history.csv``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.rows: list[dict[str, float]] = []

    def on_epoch_end(self, epoch, logs=None):
        row = {"step": int(self.model.optimizer.iterations.numpy()), "time": round(time.time(), 1)}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)
        new = not self.path.is_file()
        fields = list(row)
        if not new:
            with open(self.path, encoding="utf-8") as f:
                header = next(csv.reader(f), [])
            if header != fields:  # metrics changed (e.g. another mode): start a new table
                self.path.rename(self.path.with_suffix(f".{int(time.time())}.csv"))
                new = True
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerow(row)


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------


def train(
    cfg: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    mode: str | None = None,
    steps: int | None = None,
    strategy: str | None = None,
    verbose: int | str = "auto",
    echo: Callable[[str], None] = print,
    init: str | Path | None = None,
    new_embedding: bool = False,
) -> TrainResult:
    """Train (or resume) Tacotron2 with ``model.fit``.

    Args:
        cfg: the config; ``train.mode`` and ``train.steps`` unless overridden here.
        data_dir: output of ``tacokd preprocess``.
        run_dir: the run directory; if it holds checkpoints, training resumes.
        mode: "teacher" | "ss" | "fr" (or the long names).
        steps: total steps to reach (a resumed run continues up to this).
        strategy: "default" or "mirrored" (default ``train.strategy``).
        verbose: Keras progress bar setting ("auto": a bar on a terminal, one line per epoch
            when the output goes to a file).
        echo: where status lines go.
        init: fine-tune: start from this model's weights (a run directory, a ``.keras`` file or
            a shipped model's name; same architecture and data) with a fresh optimiser at step
            0, e.g. scheduled sampling from a teacher's snapshot. A run that resumes from its
            own checkpoint ignores it.
        new_embedding: with ``init``: the init model read other symbols (letters, and this
            run's data phonemes): its text embedding is replaced by a fresh one, every other
            weight is kept. Without it, other symbols are a ConfigError.

    Raises:
        TrainingDiverged: the loss became NaN/Inf (the last good checkpoint is kept).

    Many parameters because each is a ``tacokd train`` option; all but the first three have
    defaults.
    """
    if mode is not None:
        if mode not in MODE_ALIASES:
            raise ValueError(f"unknown mode {mode!r}: use teacher, ss or fr")
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, mode=MODE_ALIASES[mode]))
    if steps is not None:
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, steps=steps))
    warning = schedule_warning(cfg.train)
    if warning:
        echo(warning)

    start = None if init is None else initial_weights(init, cfg, run_dir, echo)

    def build(manifest: Manifest) -> Tacotron2:
        model = Tacotron2.from_settings(cfg.model, len(manifest.symbols), manifest.n_mels)
        if start is not None:
            fresh_embedding = _check_init(start, model, init, manifest, new_embedding)
            model.run(np.array([[1, 2, 1]], np.int32), max_steps=2)  # build every layer
            if fresh_embedding:
                keep = [(w, v) for w, v in zip(model.weights, start.weights) if w is not model.encoder.embedding.embeddings]
                for w, v in keep:
                    w.assign(v)
                echo(f"--init {init}: other symbols ({start.n_symbols} -> {model.n_symbols}); the text embedding "
                     f"starts fresh, the other {len(keep)} weights are the init model's (--new-embedding)")
            else:
                model.set_weights(start.get_weights())
        model.compile_for_training(cfg.train)
        return model

    return fit_run(cfg, data_dir, run_dir, build, save_model, cfg.train.steps, cfg.train.mode,
                   strategy, verbose, echo)


def initial_weights(init: str | Path, cfg: Config, run_dir: str | Path, echo: Callable[[str], None]):
    """The model ``tacokd train --init`` starts from (recorded in ``RUN/init.json``: its file,
    and its name when it is a shipped model), or None when the run already has checkpoints
    (resuming: its own weights win)."""
    from .runs import load_model, model_file, shipped_name

    files = RunPaths(run_dir)
    if tf.train.latest_checkpoint(str(files.checkpoints)) is not None:
        echo(f"note: {run_dir} has checkpoints; it resumes from them and --init {init} is not used")
        return None
    model = load_model(init)
    if not isinstance(model, Tacotron2):
        raise ConfigError(f"--init {init}: not a Tacotron2 model ({type(model).__name__})")
    if model.settings != cfg.model:
        differ = [f"{k} = {getattr(cfg.model, k)!r} (init: {getattr(model.settings, k)!r})"
                  for k in dataclasses.asdict(cfg.model) if getattr(cfg.model, k) != getattr(model.settings, k)]
        raise ConfigError(f"--init {init}: the [model] section differs from the config: {'; '.join(differ)}; "
                          "use the config the model was trained with")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    source, name = model_file(init), shipped_name(init)
    record = {"init": str(source.resolve()), **({"pretrained": name} if name else {})}
    write_json(files.init, record, indent=None)
    echo(f"fine-tuning from {f'{name} ({source})' if name else source} (fresh optimiser, step 0)")
    return model


def _check_init(start: Tacotron2, model: Tacotron2, init: str | Path, manifest: Manifest,
                new_embedding: bool) -> bool:
    """Whether the init model fits this run's data; True when its text embedding must start
    fresh (other symbols, allowed by ``new_embedding``). ConfigError otherwise."""
    from .runs import reads_symbols

    if start.n_mels != model.n_mels:
        raise ConfigError(f"--init {init}: trained on other data ({start.n_mels} mels) than this run's "
                          f"({model.n_mels} mels)")
    if reads_symbols(init, start.n_symbols, manifest.symbols.symbols):
        if new_embedding:
            raise ConfigError(f"--init {init}: --new-embedding, but the init model reads this run's symbols; "
                              "drop --new-embedding to keep its embedding")
        return False
    if not new_embedding:
        raise ConfigError(f"--init {init}: trained on other symbols ({start.n_symbols}) than this run's data "
                          f"({model.n_symbols}, e.g. letters vs phonemes); add --new-embedding to start the text "
                          "embedding fresh and keep every other weight")
    return True


def schedule_warning(t: TrainConfig) -> str | None:
    """A warning when scheduled sampling would not get past half its decay within ``t.steps``
    (the paper-scale 50k-step schedule on a short run is teacher forcing in all but name).

    Example:
        >>> from tf_tacokd.config import load_config
        >>> t = load_config("quick_en", ["train.mode='scheduled_sampling'", "train.steps=1600"]).train
        >>> schedule_warning(t)[:58]
        'warning: scheduled sampling reaches teacher_prob 0.984 onl'
        >>> schedule_warning(dataclasses.replace(t, ss_decay_steps=1600)) is None
        True
    """
    if t.mode != "scheduled_sampling":
        return None
    final = float(teacher_prob_at(t.steps, t))
    if final <= t.ss_floor + 0.5 * (t.ss_start - t.ss_floor):
        return None
    return (f"warning: scheduled sampling reaches teacher_prob {final:.3f} only at the last step "
            f"{t.steps} (ss_decay_steps = {t.ss_decay_steps}): this run stays close to teacher forcing; "
            f"scale the schedule to the budget, e.g. --set train.ss_decay_steps={t.steps}")


def fit_run(
    cfg: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    build: Callable[[Manifest], Any],
    export: Callable[[Any, Path], Path],
    total_steps: int,
    label: str,
    strategy: str | None = None,
    verbose: int | str = "auto",
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """The training loop shared by ``train`` and ``distill``.

    Args:
        build: makes the compiled Keras model (called inside the strategy scope). The model
            has ``infer`` and ``r`` (for the TensorBoard example) and an optimizer.
        export: writes the synthesis model (``model.keras``) from the trained model.
        total_steps: steps to reach.
        label: what is trained, for the status line.

    Many parameters because teacher training and distillation share this loop and pass their own
    model builder, export, step budget and label.
    """
    t = cfg.train
    if (strategy or t.strategy) == "multiworker":
        return _fit_multiworker(cfg, data_dir, run_dir, build, export, total_steps, label, echo)
    run_dir = Path(run_dir)
    manifest = load_manifest(data_dir)
    check_compatible(manifest, cfg)  # before anything is written into the run directory
    with DirectoryLock(run_dir, label):
        return _fit_locked(cfg, data_dir, run_dir, manifest, build, export, total_steps, label, strategy,
                           verbose, echo)


def _fit_locked(cfg: Config, data_dir: str | Path, run_dir: Path, manifest: Manifest,
                build: Callable[[Manifest], Any], export: Callable[[Any, Path], Path], total_steps: int,
                label: str, strategy: str | None, verbose: int | str, echo: Callable[[str], None]) -> TrainResult:
    """:func:`fit_run` once the data is checked and the run directory is locked.

    Many parameters because it is :func:`fit_run` with the run directory locked (the same
    parameters, the manifest checked).
    """
    t = cfg.train
    _prepare_run_dir(run_dir, cfg, manifest)
    keras.utils.set_random_seed(t.seed)
    strat = make_strategy(strategy or t.strategy)
    with strat.scope(), _precision(t.mixed_precision):
        model = build(manifest)
        model.optimizer.build(model.trainable_variables)
    ckpt = training_checkpoint(model)
    files = RunPaths(run_dir)
    manager = tf.train.CheckpointManager(ckpt, files.checkpoints, max_to_keep=t.keep_checkpoints)
    restore_intact(ckpt, manager, echo)
    start_step = int(model.optimizer.iterations.numpy())
    if start_step >= total_steps:
        echo(f"{run_dir} is already at step {start_step} >= {total_steps}; nothing to do")
        _write_state(run_dir, step=start_step, status="finished")
        return TrainResult(run_dir, start_step, "finished", 0.0, [])
    echo((f"resuming at step {start_step}" if start_step else "starting at step 0")
         + f": {label}, {total_steps} steps, run directory {run_dir}")

    train_ds, val_ds, example = _fit_datasets(data_dir, cfg, manifest, start_step)
    writer = tf.summary.create_file_writer(str(files.logs / "examples"))
    guard = NaNGuard()
    resumed = manager.latest_checkpoint
    checkpoints = StepCheckpoint(manager, run_dir, t.checkpoint_every, total_steps, guard, export,
                                 t.snapshot_every,
                                 (start_step, round(os.path.getmtime(resumed + ".index"), 1) if resumed else None),
                                 t.checkpoint_minutes)
    history = History(files.history)
    stats = manifest.mel_stats if cfg.audio.normalize_mel else None
    if verbose == "auto" and not sys.stdout.isatty():
        verbose = 2  # a log file (a background run): one line per epoch, not a redrawn progress bar
    callbacks = [
        guard,
        checkpoints,
        ProgressLog(run_dir, checkpoints, t.log_every, total_steps, echo if verbose == 2 else None),
        ExampleLogger(writer, {"text_ids": example["text_ids"].numpy()}, cfg, stats, t.audio_every,
                      t.log_every),
        keras.callbacks.TensorBoard(str(files.logs), update_freq=t.log_every, write_graph=False),
        history,
    ]
    per_epoch = min(t.validate_every, total_steps)
    began = time.perf_counter()
    _write_state(run_dir, step=start_step, status="running", saved_time=checkpoints.saved_time)
    status = "finished"
    try:
        model.fit(train_ds, epochs=math.ceil(total_steps / per_epoch) + 1, steps_per_epoch=per_epoch,
                  initial_epoch=start_step // per_epoch, validation_data=val_ds, callbacks=callbacks,
                  verbose=verbose)
    except KeyboardInterrupt:
        status = "interrupted"
        step = checkpoints.save()
        echo(f"\ninterrupted: saved step {step} to {run_dir}; run the same command to resume")
    step = int(model.optimizer.iterations.numpy())
    if guard.bad_step is not None:
        _diverged(run_dir, step, guard.bad_step, manager.latest_checkpoint)
    if status == "finished":
        checkpoints.save()
    _write_state(run_dir, step=step, status=status, saved_time=checkpoints.saved_time)
    return TrainResult(run_dir, step, status, time.perf_counter() - began, history.rows)


def _fit_datasets(data_dir: str | Path, cfg: Config, manifest: Manifest, start_step: int):
    """Training batches (resumed: the same batch order as an uninterrupted run, the batches
    already trained skipped), validation batches (None without a val or test split), and
    one utterance for the TensorBoard preview."""
    t = cfg.train
    train_ds = make_dataset(data_dir, "train", cfg, repeat=True, drop_remainder=True, seed=t.seed).skip(start_step)
    val_split = "val" if manifest.count("val") else "test"
    n_val = manifest.count(val_split)
    val_ds = (make_dataset(data_dir, val_split, cfg, batch_size=min(t.batch_size, n_val), shuffle=False)
              if n_val else None)
    example = next(iter(make_dataset(data_dir, val_split if n_val else "train", cfg, batch_size=1,
                                     shuffle=False)))
    return train_ds, val_ds, example


def _diverged(run_dir: Path, step: int, bad_step: int, last_checkpoint: str | None) -> None:
    """Record a diverged run and raise :class:`TrainingDiverged` naming its last good checkpoint."""
    _write_state(run_dir, step=step, status="diverged", bad_step=bad_step, last_checkpoint=last_checkpoint)
    raise TrainingDiverged(_diverged_message(bad_step, last_checkpoint))


def _diverged_message(bad_step: int, last_checkpoint: str | None) -> str:
    return (f"the loss became NaN or infinite at step {bad_step}; training stopped. The last "
            f"good checkpoint is {last_checkpoint or '(none: it diverged before the first checkpoint)'}. "
            "Lower train.learning_rate, lower train.grad_clip_norm, or check the data.")


def _fit_multiworker(
    cfg: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    build: Callable[[Manifest], Any],
    export: Callable[[Any, Path], Path],
    total_steps: int,
    label: str,
    echo: Callable[[str], None],
) -> TrainResult:
    """Multi-worker training with a custom loop over ``strategy.run``.

    ``model.fit`` cannot run under MultiWorkerMirroredStrategy with Keras 3
    (keras-team/keras#20585), so each step calls the model's own ``train_step`` through
    ``strategy.run``. Every worker runs this with the same arguments (the run directory
    on a shared file system) and its own ``TF_CONFIG``; the chief writes the run
    directory, the others checkpoint to temporary directories, as TensorFlow requires.

    Long because the custom loop replaces ``model.fit`` for multi-worker training: restore, input
    per worker, steps, checkpoints and divergence in one place.
    """
    t = cfg.train
    strategy = make_strategy("multiworker")
    chief = _is_chief(strategy)
    run_dir = Path(run_dir)
    manifest = load_manifest(data_dir)
    if chief:
        _prepare_run_dir(run_dir, cfg, manifest)
    keras.utils.set_random_seed(t.seed)
    with strategy.scope(), _precision(t.mixed_precision):
        model = build(manifest)
        model.optimizer.build(model.trainable_variables)
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    shared = RunPaths(run_dir).checkpoints
    write_dir = shared if chief else Path(tempfile.mkdtemp(prefix="tacokd-worker-"))
    manager = tf.train.CheckpointManager(ckpt, write_dir, max_to_keep=t.keep_checkpoints)
    latest = tf.train.latest_checkpoint(shared) if shared.is_dir() else None
    if latest:
        ckpt.restore(latest).assert_existing_objects_matched()
    step = int(model.optimizer.iterations.numpy())
    if chief:
        echo((f"resuming at step {step}" if step else "starting at step 0")
             + f": {label}, {total_steps} steps, {strategy.num_replicas_in_sync} replicas, run directory {run_dir}")
    def worker_dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        # each worker reads every N-th example and batches its replicas' part of the
        # global batch: step k of N workers sees what step k of one device would
        return make_dataset(data_dir, "train", cfg, batch_size=context.get_per_replica_batch_size(t.batch_size),
                            repeat=True, drop_remainder=True, seed=t.seed + step,
                            shard=(context.num_input_pipelines, context.input_pipeline_id))

    batches = iter(strategy.distribute_datasets_from_function(worker_dataset))

    @tf.function
    def train_one(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in logs.items()}

    began = time.perf_counter()
    status, bad_step = "finished", None
    while step < total_steps:
        logs = train_one(next(batches))
        step = int(model.optimizer.iterations.numpy())
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            bad_step, status = step, "diverged"
            break
        if chief and (step % t.log_every == 0 or step == total_steps):
            echo(f"step {step}/{total_steps} " + " ".join(f"{k} {float(v):.4f}" for k, v in logs.items()))
        if step % t.checkpoint_every == 0 or step >= total_steps:
            manager.save(checkpoint_number=step)  # every worker saves; only the chief's is kept
            if chief:
                export(model, RunPaths(run_dir).model)
                _write_state(run_dir, step=step, status="running")
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    if bad_step is not None:
        if chief:
            _diverged(run_dir, step, bad_step, manager.latest_checkpoint)
        raise TrainingDiverged(_diverged_message(bad_step, tf.train.latest_checkpoint(shared)))
    if chief:
        _write_state(run_dir, step=step, status=status)
    return TrainResult(run_dir, step, status, time.perf_counter() - began, [])
