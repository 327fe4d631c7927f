"""Search over the distillation weight lambda (and optionally the learning rate) with keras-tuner.

Each trial trains a KD student from the same teacher for a fixed number of steps and
is scored by the student's free-running validation mel loss (``val_fr_mel_loss``),
which is what inference produces. Failed trials are not hidden: they appear in the
table with their error, and if every trial fails the search is an error.

Example:
    >>> from tf_tacokd.config import load_config
    >>> from tf_tacokd.tune import tune_lambda
    >>> table = tune_lambda(load_config("espeak_en"), "data/en", "runs/teacher", "runs/tune", trials=8)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import keras_tuner as kt

from .atomic import write_json
from .config import Config
from .data.dataset import load_manifest, make_dataset
from .distill import Distiller, load_teacher
from .model import Tacotron2
from .train import make_strategy

__all__ = ["LambdaHyperModel", "tune_lambda", "Trial", "TuneError", "TuneInterrupted", "OBJECTIVE"]

OBJECTIVE = "val_fr_mel_loss"


class TuneError(RuntimeError):
    """Every trial failed; the table lists why."""


class TuneInterrupted(Exception):
    """The search was stopped (Ctrl-C, SIGTERM) during a trial. Finished trials are kept in
    keras-tuner's state; the same call resumes, and the interrupted trial starts again (a trial
    keeps no checkpoint: at most ``steps`` steps are lost)."""


@dataclass
class Trial:
    """One row of the search table."""

    trial: str
    lambda_: float
    learning_rate: float | None
    objective: float | None
    steps: int
    seconds: float
    status: str
    message: str = ""


class LambdaHyperModel(kt.HyperModel):
    """Builds a :class:`~tf_tacokd.distill.Distiller` with lambda sampled log-uniformly
    over ``[distill.tune_lambda_min, distill.tune_lambda_max]`` (and the learning rate
    over [1e-4, 3e-3] if ``distill.tune_learning_rate``)."""

    def __init__(self, cfg: Config, teacher: Tacotron2, steps: int,
                 timings_file: str | Path | None = None, echo: Callable[[str], None] | None = None) -> None:
        super().__init__(name="kd_lambda")
        self.cfg, self.teacher, self.steps, self.echo = cfg, teacher, steps, echo
        # seconds and steps per trial, keyed by its hyperparameters; kept in a file so that a
        # resumed search still reports the trials an earlier process ran
        self.timings_file = None if timings_file is None else Path(timings_file)
        self.timings: dict[str, tuple[float, int]] = {}
        if self.timings_file is not None and self.timings_file.exists():
            saved = json.loads(self.timings_file.read_text())
            self.timings = {k: (float(v[0]), int(v[1])) for k, v in saved.items()}

    def build(self, hp: kt.HyperParameters) -> Distiller:
        d = self.cfg.distill
        lam = hp.Float("lambda", d.tune_lambda_min, d.tune_lambda_max, sampling="log")
        d = dataclasses.replace(d, lambda_=lam)
        if d.tune_learning_rate:
            d = dataclasses.replace(d, learning_rate=hp.Float("learning_rate", 1e-4, 3e-3, sampling="log"))
        return Distiller.build_from(self.teacher, d, self.cfg.train)

    def fit(self, hp, model, *args, **kwargs):
        """Train one trial (timed); with ``echo``, one line when it starts and one when it ends."""
        said = ", ".join(f"{k} {v:.4g}" for k, v in hp.values.items())
        if self.echo:
            self.echo(f"trial: {said}, {self.steps} steps ...")
        start = time.perf_counter()
        history = model.fit(*args, **kwargs)
        seconds = time.perf_counter() - start
        self.timings[json.dumps(hp.values, sort_keys=True)] = (seconds, int(model.optimizer.iterations.numpy()))
        if self.timings_file is not None:
            write_json(self.timings_file, self.timings)
        if self.echo:
            score = history.history.get(OBJECTIVE, [float("nan")])[-1]
            self.echo(f"trial: {said}: {OBJECTIVE} {score:.4f} ({seconds:.0f} s)")
        return history


def tune_lambda(
    cfg: Config,
    data_dir: str | Path,
    teacher: str | Path,
    out: str | Path,
    trials: int = 8,
    tuner: str = "random",
    steps: int | None = None,
    strategy: str = "default",
    echo: Callable[[str], None] = print,
) -> list[Trial]:
    """Run the search and write ``out/trials.csv`` and ``out/trials.png``; returns the table (best first).

    Args:
        steps: training steps per trial (default ``distill.steps``).
        tuner: "random" or "bayesian".
        strategy: "default" or "mirrored" (keras-tuner runs each trial's ``model.fit`` under
            it). "multiworker" is refused: Keras 3 ``model.fit`` fails under
            MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Raises:
        TuneError: every trial failed.
        TuneInterrupted: a KeyboardInterrupt (SIGINT, or SIGTERM turned into one) during the
            search; run the same call again to resume.

    Many parameters because each is a ``tacokd tune`` option; all but the first three have
    defaults.
    """
    from .runs import DirectoryLock

    with DirectoryLock(out, "tune"):
        return _tune_locked(cfg, data_dir, teacher, Path(out), trials, tuner, steps, strategy, echo)


def _tune_locked(cfg: Config, data_dir: str | Path, teacher: str | Path, out: Path, trials: int, tuner: str,
                 steps: int | None, strategy: str, echo: Callable[[str], None]):
    """:func:`tune_lambda` with ``out`` locked.

    Many parameters because it is :func:`tune_lambda` with the output directory locked (the same
    parameters).
    """
    steps = steps or cfg.distill.steps
    teacher_model, _ = load_teacher(teacher)
    manifest = load_manifest(data_dir)
    keras.utils.set_random_seed(cfg.train.seed)
    hypermodel = LambdaHyperModel(cfg, teacher_model, steps, out / "timings.json", echo=echo)
    objective = kt.Objective(OBJECTIVE, direction="min")
    if strategy == "multiworker":
        raise ValueError("tune cannot run multi-worker: keras-tuner trains with model.fit, which fails "
                         "under MultiWorkerMirroredStrategy in Keras 3 (keras-team/keras#20585); use "
                         "--strategy mirrored, or run several tuners on one oracle")
    distribution = make_strategy(strategy) if strategy != "default" else None
    common = dict(objective=objective, max_trials=trials, directory=str(out), project_name="keras_tuner",
                  overwrite=False, seed=cfg.train.seed, max_consecutive_failed_trials=trials + 1,
                  distribution_strategy=distribution)
    if tuner == "random":
        search = kt.RandomSearch(hypermodel, **common)
    elif tuner == "bayesian":
        search = kt.BayesianOptimization(hypermodel, **common)
    else:
        raise ValueError(f"unknown tuner {tuner!r}: use random or bayesian")
    train_ds = make_dataset(data_dir, "train", cfg, repeat=True, drop_remainder=True)
    split = "val" if manifest.count("val") else "test"
    val_ds = make_dataset(data_dir, split, cfg, batch_size=min(cfg.train.batch_size, max(1, manifest.count(split))),
                          shuffle=False)
    echo(f"searching lambda in [{cfg.distill.tune_lambda_min:g}, {cfg.distill.tune_lambda_max:g}] "
         f"(log-uniform), {trials} trials x {steps} steps, objective {OBJECTIVE}")
    try:
        search.search(train_ds, steps_per_epoch=steps, epochs=1, validation_data=val_ds, verbose=0)
    except KeyboardInterrupt as e:
        finished = sum(t.status == "COMPLETED" for t in search.oracle.trials.values())
        raise TuneInterrupted(f"the lambda search in {out} was interrupted ({e or 'KeyboardInterrupt'}) with "
                              f"{finished} of {trials} trials finished; run the same command to resume (the "
                              "interrupted trial starts again)") from None
    table = _table(search, hypermodel)
    _write_csv(out / "trials.csv", table)
    done = [t for t in table if t.status == "COMPLETED" and t.objective is not None]
    if done:
        from .plots import figure_to_png, lambda_sweep_figure

        fig = lambda_sweep_figure([t.lambda_ for t in done], [t.objective for t in done], OBJECTIVE,
                                  best=done[0].lambda_)
        (out / "trials.png").write_bytes(figure_to_png(fig))
    if not any(t.status == "COMPLETED" for t in table):
        raise TuneError("every trial failed:\n" + format_table(table))
    return table


def _table(search: kt.Tuner, hypermodel: LambdaHyperModel) -> list[Trial]:
    rows = []
    for trial in search.oracle.trials.values():
        values = trial.hyperparameters.values
        seconds, steps = hypermodel.timings.get(json.dumps(values, sort_keys=True), (0.0, 0))
        rows.append(Trial(trial.trial_id, float(values["lambda"]), values.get("learning_rate"),
                          None if trial.score is None else float(trial.score), steps, seconds,
                          str(trial.status), (trial.message or "").strip().splitlines()[-1:][0]
                          if trial.message else ""))
    return sorted(rows, key=lambda t: (t.objective is None, t.objective or 0.0))


def _write_csv(path: Path, table: list[Trial]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "lambda", "learning_rate", OBJECTIVE, "steps", "seconds", "status", "message"])
        for t in table:
            writer.writerow([t.trial, f"{t.lambda_:.6g}", "" if t.learning_rate is None else f"{t.learning_rate:.6g}",
                             "" if t.objective is None else f"{t.objective:.6g}", t.steps, f"{t.seconds:.1f}",
                             t.status, t.message])


def format_table(table: list[Trial]) -> str:
    """The trials as an aligned text table (best first)."""
    lines = [f"{'trial':>6s} {'lambda':>10s} {'lr':>9s} {OBJECTIVE:>16s} {'steps':>6s} {'time s':>7s}  status"]
    for t in table:
        lr = "" if t.learning_rate is None else f"{t.learning_rate:.2e}"
        obj = "" if t.objective is None else f"{t.objective:.4f}"
        lines.append(f"{t.trial:>6s} {t.lambda_:10.4g} {lr:>9s} {obj:>16s} {t.steps:6d} {t.seconds:7.1f}  "
                     f"{t.status}{'  ' + t.message if t.message else ''}")
    return "\n".join(lines)
