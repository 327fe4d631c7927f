"""The ``tacokd`` command line: a thin layer over the Python API.

Every command takes ``--config`` (a TOML path or a built-in name such as
``espeak_en``) and ``--set section.key=value`` overrides where it uses a config.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .config import ConfigError, list_builtin_configs, load_config
from .data.layout import DataPaths
from .runs import DirectoryBusy, RunPaths
from .evaluate.runner import METRICS as METRIC_NAMES

CONFIG_HELP = (
    "Config: a .toml path or a built-in name ("
    + ", ".join(list_builtin_configs())
    + ")."
)
#: --strategy of train and distill
TRAINING_STRATEGY = click.option(
    "--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default=None,
    help="default: one device; mirrored: all visible GPUs; multiworker: several processes/machines, "
         "each run with its own TF_CONFIG  [default: train.strategy].")
#: upper bound of every integer option (steps, sizes, seeds are int32 inside the graphs)
INT32_MAX = 2**31 - 1
SET_HELP = "Override a config value, e.g. --set train.batch_size=16 (repeatable; TOML syntax)."


def model_source_options(command):
    """--run / --model / --pretrained: where a trained model comes from (exactly one)."""
    for option in reversed([
        click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     default=None, help="Run directory (its model.keras, config and mel statistics)."),
        click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, help="A .keras file inside its run directory or the run's snapshots/."),
        click.option("--pretrained", type=click.Choice(["en", "zh"]), default=None,
                     help="The shipped pretrained KD student of this language."),
    ]):
        command = option(command)
    return command


def _one_model_source(run_dir: Path | None, model_path: Path | None, pretrained: str | None) -> Path | None:
    """Exactly one of --run, --model, --pretrained; returns the run directory (None for --model)."""
    if sum(x is not None for x in (run_dir, model_path, pretrained)) != 1:
        raise click.UsageError("give exactly one of --run RUN_DIR, --model FILE.keras or --pretrained LANG")
    if pretrained:
        from .pretrained import pretrained_run

        try:
            return pretrained_run(pretrained, "student")
        except FileNotFoundError as e:
            raise click.ClickException(str(e)) from None
    return run_dir


def _exit_if_interrupted(status: str, caught: dict[str, int]) -> None:
    """A run that saved and stopped on a signal exits 128 + the signal (130 for Ctrl-C, 143
    for SIGTERM), so shells and schedulers see the interruption."""
    if status == "interrupted":
        sys.exit(128 + caught.get("signal", signal.SIGINT))


def _train_and_report(run: Callable[[], Any], out: Path, what: str) -> None:
    """Run a training function (teacher or student) that saves and stops on SIGINT/SIGTERM;
    errors become one-line messages, an interruption exits 128 + the signal."""
    from .train import TrainingDiverged

    try:
        with _stop_signals_save() as caught:
            result = run()
    except (TrainingDiverged, ConfigError, FileNotFoundError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{result.status} at step {result.step} ({result.seconds:.0f} s); {what}: {RunPaths(out).model}")
    _exit_if_interrupted(result.status, caught)


@contextlib.contextmanager
def _stop_signals_save():
    """SIGINT (Ctrl-C) and SIGTERM raise KeyboardInterrupt, so training saves and exits.

    Shells start background jobs with SIGINT ignored (``nohup cmd &``); training installs
    the handler itself so that ``kill -INT`` or a scheduler's SIGTERM still save a checkpoint.
    """
    caught: dict[str, int] = {}

    def interrupt(signum, frame):
        caught["signal"] = signum
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _output_file(path: Path, suffix: str, option: str = "--out") -> Path:
    """Check an output file path before any work starts: the right extension, a parent that
    is (or can be made) a writable folder, and not a folder itself."""
    if path.suffix.lower() != suffix:
        raise click.BadParameter(f"{path}: the file name must end in {suffix}", param_hint=option)
    if path.is_dir():
        raise click.BadParameter(f"{path} is a folder; give a file name ending in {suffix}", param_hint=option)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.BadParameter(f"cannot create the folder {parent}: {e.strerror or e}", param_hint=option) from None
    if not os.access(parent, os.W_OK) or not os.access(parent, os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"{path}: not writable (check the folder's permissions)", param_hint=option)
    return path


def _load(config: str, overrides: tuple[str, ...]):
    try:
        return load_config(config, overrides)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _metric_list(metrics: str) -> list[str]:
    """``--metrics a,b`` -> ``["a", "b"]``; an unknown name is a usage error naming the choices."""
    metric_list = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = sorted(set(metric_list) - set(METRIC_NAMES))
    if unknown:
        raise click.BadParameter(f"unknown metric(s) {unknown}; choose from {', '.join(METRIC_NAMES)}",
                                 param_hint="--metrics")
    return metric_list


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tacokd")
def main() -> None:
    """tf_tacokd: robust Tacotron2 TTS by teacher-student knowledge distillation.

    A teacher Tacotron2 is trained with teacher forcing; a student of the same
    architecture runs its decoder free-running (as at inference) and is trained on
    the feature loss plus lambda times the distance between its decoder hidden
    states and the teacher's (Liu et al., ICASSP 2020). The student is exported to
    TFLite for devices.

    Start with `tacokd run --lang en`: the whole method on the built-in corpus.
    """


@main.command("text")
@click.argument("text")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the front end (default: the config's text.language, else en).")
@click.option("--config", "config", default=None, help=CONFIG_HELP)
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
@click.option("--strict", is_flag=True, help="Fail on unknown characters instead of dropping them.")
def text_cmd(text: str, lang: str | None, config: str | None, overrides: tuple[str, ...],
             strict: bool) -> None:
    """Show how TEXT will be read: normalised text, symbols and ids.

    \b
    Examples:
      tacokd text "Dr. Smith paid $5.50 on May 3rd, 1977." --lang en
      tacokd text "银行行长2026年来了。" --lang zh
    """
    from .text import TextFrontEnd

    if config is None:
        cfg = _load(f"espeak_{lang or 'en'}", overrides)
    else:
        cfg = _load(config, overrides)
    text_cfg = dataclasses.replace(
        cfg.text, language=lang or cfg.text.language, strict=cfg.text.strict or strict
    )
    fe = TextFrontEnd.from_config(text_cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            p = fe.process(text)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    click.echo(f"language:   {fe.language}")
    click.echo(f"input:      {p.text}")
    click.echo(f"normalized: {p.normalized}")
    click.echo(f"symbols:    {' '.join(repr(t) if t == ' ' else t for t in p.tokens)} <eos>")
    click.echo(f"ids:        {' '.join(map(str, p.ids))}")


@main.group("config")
def config_grp() -> None:
    """List, show and check configs."""


@config_grp.command("list")
def config_list() -> None:
    """List the built-in configs (usable as --config NAME)."""
    from .config import resolve_config_path

    for name in list_builtin_configs():
        path = resolve_config_path(name)
        first = next((ln[2:] for ln in path.read_text(encoding="utf-8").splitlines()
                      if ln.startswith("# ")), "")
        click.echo(f"{name:14s} {first}")


@config_grp.command("show")
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the resolved config to this file.")
def config_show(config: str, overrides: tuple[str, ...], out: Path | None) -> None:
    """Validate CONFIG (path or built-in name) and print it fully resolved."""
    cfg = _load(config, overrides)
    click.echo(cfg.to_toml(), nl=False)
    if out is not None:
        cfg.save(out)
        click.echo(f"# written to {out}", err=True)


@main.command("make-corpus")
@click.option("--lang", type=click.Choice(["en", "zh"]), required=True,
              help="en: LJSpeech layout, voice en-us; zh: DataBaker layout, voice cmn-latn-pinyin.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Corpus directory to write (re-running resumes).")
@click.option("--size", type=click.IntRange(min=1, max=INT32_MAX), default=3000, show_default=True,
              help="Number of utterances.")
@click.option("--seed", type=click.IntRange(min=0, max=INT32_MAX), default=0, show_default=True,
              help="Sentence selection seed; the corpus is deterministic for a seed.")
@click.option("--workers", type=click.IntRange(min=1, max=INT32_MAX), default=2, show_default=True,
              help="Parallel espeak-ng processes.")
def make_corpus_cmd(lang: str, out: Path, size: int, seed: int, workers: int) -> None:
    """Synthesise the built-in zero-download corpus with espeak-ng.

    Sentences come from the Debian fortunes packages (fortunes, fortunes-zh) plus
    templates with numbers, dates, times and money. English is written in the
    LJSpeech layout (metadata.csv, wavs/), Mandarin in the DataBaker layout
    (ProsodyLabeling/, Wave/), so the real corpus readers are exercised.
    """
    from .data.corpora import EspeakMissingError, make_corpus

    try:
        with click.progressbar(length=size, label=f"espeak-ng {lang}") as bar:
            summary = make_corpus(lang, out, size=size, seed=seed, workers=workers,  # type: ignore[arg-type]
                                  progress=bar.update)
    except EspeakMissingError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{summary.count} utterances, {summary.hours:.2f} h of audio in {out}")
    for p in summary.skipped:
        click.echo(f"skipped {p.item_id}: {p.reason}", err=True)


@main.command("preprocess")
@click.option("--config", "config", required=True, help=CONFIG_HELP)
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Corpus directory (LJSpeech or DataBaker layout, per data.corpus_format).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output directory for shards and manifest (re-running resumes).")
@click.option("--workers", type=click.IntRange(min=1, max=INT32_MAX), default=1, show_default=True,
              help="Feature processes (each imports TensorFlow once).")
@click.option("--strict", is_flag=True, help="Fail on the first bad item instead of skipping it.")
@click.option("--overwrite", is_flag=True,
              help="Start over if --out holds output of another config or corpus.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
def preprocess_cmd(config: str, corpus: Path, out: Path, workers: int, strict: bool,
                   overwrite: bool, overrides: tuple[str, ...]) -> None:
    """Text to ids and audio to log-mels, written as sharded TFRecords with a manifest.

    Bad items (missing, corrupt, silent, too long or wrongly sampled audio; empty or
    unreadable text; malformed metadata lines) are skipped and listed with the
    reason in OUT/rejected.tsv; --strict fails on the first one instead.
    """
    from .data.corpora import read_corpus
    from .data.preprocess import PreprocessError, preprocess

    cfg = _load(config, overrides)
    try:
        total = len(read_corpus(corpus, cfg.data.corpus_format, cfg.data.databaker_text).utterances)
        with click.progressbar(length=total, label="preprocess") as bar:
            report = preprocess(cfg, corpus, out, workers=workers, strict=strict,
                                overwrite=overwrite, progress=bar.update, echo=click.echo)
    except (PreprocessError, FileNotFoundError, DirectoryBusy) as e:
        raise click.ClickException(str(e)) from None
    _print_preprocess_report(report)


def _print_preprocess_report(report) -> None:
    c, h = report.counts, report.hours
    click.echo(f"train {c['train']} ({h['train']:.2f} h), val {c['val']}, test {c['test']} "
               f"in {report.out_dir}")
    click.echo(f"shards written {report.shards_written}, already done {report.shards_skipped}; "
               f"{report.seconds:.1f} s" + (f", {report.items_per_second:.1f} clips/s"
                                            if report.items_per_second else ""))
    if report.rejected:
        click.echo(f"{len(report.rejected)} items rejected, listed in {DataPaths(report.out_dir).rejected}:")
        for p in report.rejected[:5]:
            click.echo(f"  {p.location} {p.item_id}: {p.reason}")
    if report.notes:
        click.echo(f"{len(report.notes)} irregular items kept (first: {report.notes[0].location} "
                   f"{report.notes[0].reason})")


@main.command("train")
@click.option("--config", "config", required=True, help=CONFIG_HELP)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Preprocessed data directory (tacokd preprocess).")
@click.option("--mode", type=click.Choice(["teacher", "ss", "fr"]), default=None,
              help="teacher: teacher forcing (the teacher); ss: scheduled sampling; fr: free "
                   "running from step 0 (baselines)  [default: the config's train.mode].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run directory; if it holds checkpoints, training resumes.")
@click.option("--steps", type=click.IntRange(min=1, max=INT32_MAX), default=None,
              help="Total steps to reach  [default: train.steps].")
@TRAINING_STRATEGY
@click.option("--init", "init", default=None, metavar="MODEL",
              help="Fine-tune: start from this model's weights (a run directory, a .keras file such as a "
                   "snapshot, or a shipped name like zh_teacher) with a fresh optimiser at step 0; "
                   "ignored when OUT already has checkpoints.")
@click.option("--new-embedding", is_flag=True,
              help="With --init from a model that read other symbols (e.g. letters, and this data is "
                   "phonemes): start the text embedding fresh, keep every other weight.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
def train_cmd(config: str, data: Path, mode: str | None, out: Path, steps: int | None,
              strategy: str | None, init: str | None, new_embedding: bool, overrides: tuple[str, ...]) -> None:
    """Train Tacotron2 (the teacher, or the SS / FR baselines) with model.fit.

    Checkpoints every train.checkpoint_every steps and, if train.checkpoint_minutes > 0,
    whenever that many minutes have passed (last train.keep_checkpoints kept), and
    writes OUT/model.keras for synthesis; re-running the same command resumes.
    TensorBoard logs go to OUT/logs. A NaN/Inf loss stops the run and keeps the last
    good checkpoint; Ctrl-C (or SIGTERM) saves and exits. Free running from step 0 (--mode fr) is
    expected to train poorly: the paper's baseline, not a bug.
    """
    from .train import train

    cfg = _load(config, overrides)
    if new_embedding and init is None:
        raise click.UsageError("--new-embedding needs --init MODEL (the model whose other weights to keep)")
    _train_and_report(lambda: train(cfg, data, out, mode=mode, steps=steps, strategy=strategy, echo=click.echo,
                                    init=init, new_embedding=new_embedding),
                      out, "model")


@main.command("distill")
@click.option("--config", "config", required=True, help=CONFIG_HELP)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Preprocessed data directory (the teacher's).")
@click.option("--teacher", type=click.Path(exists=True, path_type=Path), required=True,
              help="The teacher's run directory (or its .keras file).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The student's run directory; if it holds checkpoints, training resumes.")
@click.option("--lambda", "lambda_", type=click.FloatRange(min=0.0), default=None,
              help="Weight of the distillation loss  [default: distill.lambda, 1.0 in the paper].")
@click.option("--steps", type=click.IntRange(min=1, max=INT32_MAX), default=None,
              help="Total steps to reach  [default: distill.steps].")
@TRAINING_STRATEGY
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
def distill_cmd(config: str, data: Path, teacher: Path, out: Path, lambda_: float | None,
                steps: int | None, strategy: str | None, overrides: tuple[str, ...]) -> None:
    """Train the knowledge-distillation student (the paper's method).

    The frozen teacher decodes with teacher forcing; the student, which uses the
    teacher's encoder and starts from its decoder, decodes free running and learns
    Loss_f + lambda * Loss_d, where Loss_d is the squared distance between the two
    decoders' hidden states. OUT/model.keras is the student alone, used by
    synthesize, evaluate and export like any Tacotron2. Checkpoints, resume, NaN
    guard and TensorBoard work as in `tacokd train`.
    """
    from .distill import distill

    cfg = _load(config, overrides)
    _train_and_report(lambda: distill(cfg, data, teacher, out, lambda_=lambda_, steps=steps, strategy=strategy,
                                      echo=click.echo), out, "student")


@main.command("tune")
@click.option("--config", "config", required=True, help=CONFIG_HELP)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Preprocessed data directory (the teacher's).")
@click.option("--teacher", type=click.Path(exists=True, path_type=Path), required=True,
              help="The teacher's run directory (or its .keras file).")
@click.option("--trials", type=click.IntRange(min=1, max=INT32_MAX), default=8, show_default=True,
              help="Number of trials.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Search directory: keras-tuner state and trials.csv (re-running resumes).")
@click.option("--tuner", type=click.Choice(["random", "bayesian"]), default="random", show_default=True,
              help="keras-tuner search algorithm.")
@click.option("--steps", type=click.IntRange(min=1, max=INT32_MAX), default=None,
              help="Training steps per trial  [default: distill.steps].")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default="default",
              show_default=True, help="Strategy for each trial's model.fit. multiworker is refused: "
                                      "Keras 3 model.fit fails under it (keras-team/keras#20585).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
def tune_cmd(config: str, data: Path, teacher: Path, trials: int, out: Path, tuner: str,
             steps: int | None, strategy: str, overrides: tuple[str, ...]) -> None:
    """Search the distillation weight lambda with keras-tuner.

    lambda is sampled log-uniformly over [distill.tune_lambda_min, tune_lambda_max]
    (the learning rate too with distill.tune_learning_rate = true); each trial
    trains a student for --steps and is scored by its free-running validation mel
    loss. Prints the trials (failed ones included, with the error) and writes
    OUT/trials.csv and OUT/trials.png; exits non-zero if every trial failed.
    """
    from .tune import TuneError, TuneInterrupted, format_table, tune_lambda

    cfg = _load(config, overrides)
    try:
        with _stop_signals_save() as caught:
            table = tune_lambda(cfg, data, teacher, out, trials=trials, tuner=tuner, steps=steps,
                                strategy=strategy, echo=click.echo)
    except TuneInterrupted as e:
        click.echo(str(e))
        _exit_if_interrupted("interrupted", caught)
    except (TuneError, FileNotFoundError, ValueError, DirectoryBusy) as e:
        raise click.ClickException(str(e)) from None
    click.echo(format_table(table))
    click.echo(f"best lambda {table[0].lambda_:.4g}; table in {out / 'trials.csv'}, plot in {out / 'trials.png'}")


@main.command("experiment")
@click.option("--teacher", type=click.Path(exists=True, path_type=Path), required=True,
              help="The teacher snapshot every system starts from (a .keras file in a run or its "
                   "snapshots/, or a run directory).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The teacher's preprocessed data directory.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The experiment's folder; re-running the same command resumes.")
@click.option("--config", "config", default=None,
              help=CONFIG_HELP[:-1] + "  [default: the teacher run's config.toml].")
@click.option("--steps", type=click.IntRange(min=1, max=INT32_MAX), default=1000, show_default=True,
              help="Training steps of every system from the snapshot (equal budgets).")
@click.option("--seeds", default="1,1234", show_default=True, help="Training seeds, comma-separated.")
@click.option("--systems", "recipes", default="KD,SS,FR-ft", show_default=True,
              help="Recipes, comma-separated: KD, SS, FR-ft (KD with lambda 0), KD-tuned, TF-ft "
                   "(teacher forcing continued).")
@click.option("--first-seed-only", default="", metavar="RECIPES",
              help="Recipes (of --systems) trained with the first seed only, e.g. FR-ft,KD-tuned "
                   "(when the seed spread matters most for KD and SS).")
@click.option("--tuned-lambda", type=click.FloatRange(min=0.0), default=None,
              help="KD-tuned's lambda  [default: searched with tacokd tune in OUT/tune].")
@click.option("--tune-trials", type=click.IntRange(min=1, max=INT32_MAX), default=5, show_default=True,
              help="Trials of that search.")
@click.option("--tune-steps", type=click.IntRange(min=1, max=INT32_MAX), default=250, show_default=True,
              help="Steps per trial of that search.")
@click.option("--hard", default="builtin-hard", show_default=True,
              help="The out-of-domain test set: builtin-hard or a sentence file (as tacokd evaluate --sentences).")
@click.option("--indomain", "indomain_limit", type=click.IntRange(min=1, max=INT32_MAX), default=50,
              show_default=True, help="In-domain test sentences to evaluate.")
@click.option("--draws", type=click.IntRange(min=1, max=100), default=1, show_default=True,
              help="Readings of each test sentence per system (as tacokd evaluate --draws); not part of "
                   "the plan, so a finished experiment can be evaluated again with more.")
@click.option("--metrics", default="attention,intelligibility,dnsmos", show_default=True,
              help="Evaluation metrics, comma-separated (mcd is added in domain).")
@click.option("--eval-workers", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Processes evaluating systems side by side (as tacokd evaluate --workers).")
@click.option("--no-eval", is_flag=True, help="Train only; evaluate later with the same command.")
@click.option("--only", default=None, metavar="NAMES",
              help="Train just these systems (comma-separated, as kd-s1234) in this process, beside "
                   "the command without --only; that one skips them while they train and evaluates "
                   "once every system has finished. Either process, with nothing left to train, "
                   "evaluates the finished systems meanwhile.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
def experiment_cmd(teacher: Path, data: Path, out: Path, config: str | None, steps: int, seeds: str,
                   recipes: str, first_seed_only: str, tuned_lambda: float | None, tune_trials: int, tune_steps: int,
                   hard: str, indomain_limit: int, draws: int, metrics: str, eval_workers: int, no_eval: bool,
                   only: str | None, overrides: tuple[str, ...]) -> None:
    """The paper's experiment from one teacher snapshot, with training seeds.

    KD, SS and FR-ft (and optionally KD-tuned and TF-ft) each train --steps from the
    snapshot, once per seed, one after another into OUT/runs/<recipe>-s<seed>; then the
    snapshot and every system are evaluated free running on the built-in hard set and
    on in-domain test sentences, recipes compared over sentences and seeds
    (OUT/eval/hard/report.md, OUT/eval/indomain/report.md). Re-running resumes: finished
    systems are skipped, the others continue from their checkpoints, evaluation from its
    cache. Ctrl-C or SIGTERM saves the running system and stops. With two cores or GPUs,
    a second process with the same options and --only trains some systems side by side.
    """
    from .experiment import ExperimentError, check_recipes, run_experiment
    from .runs import run_and_model
    from .train import TrainingDiverged

    if config is None:
        run_dir, _ = run_and_model(teacher)
        if not RunPaths(run_dir).config.is_file():
            raise click.UsageError(f"{teacher} is not in a run directory with a config.toml: give --config")
        config = str(RunPaths(run_dir).config)
    cfg = _load(config, overrides)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{seeds!r}: expected integers separated by commas", param_hint="--seeds") from None
    metric_list = _metric_list(metrics)
    try:
        recipe_list = check_recipes(recipes)
        try:
            first_list = check_recipes(first_seed_only)
        except ConfigError as e:
            raise click.BadParameter(str(e), param_hint="--first-seed-only") from None
        with _stop_signals_save() as caught:
            result = run_experiment(cfg, data, teacher, out, steps=steps, seeds=seed_list, recipes=recipe_list,
                                    tuned_lambda=tuned_lambda, tune_trials=tune_trials, tune_steps=tune_steps,
                                    evaluate=not no_eval, hard=hard, indomain_limit=indomain_limit, metrics=metric_list,
                                    echo=click.echo, draws=draws, first_seed_only=first_list, eval_workers=eval_workers,
                                    only=None if only is None else [n.strip() for n in only.split(",") if n.strip()])
    except (ExperimentError, ConfigError, TrainingDiverged, DirectoryBusy, FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    for name, status in result.status.items():
        click.echo(f"  {name}: {status}")
    if result.tuned_lambda is not None:
        click.echo(f"  KD-tuned lambda: {result.tuned_lambda:.4g}")
    for label, path in result.reports.items():
        click.echo(f"report ({label}): {path / 'report.md'}")
    if result.interrupted:
        _exit_if_interrupted("interrupted", caught)
    failed = [n for n, s in result.status.items() if s.startswith("diverged")]
    if failed:
        raise click.ClickException(f"{len(failed)} system(s) did not finish: {', '.join(failed)}")


@main.command("synthesize")
@click.argument("text")
@model_source_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("out.wav"),
              show_default=True, help="Output wav.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the attention alignment plot (PNG).")
@click.option("--max-steps", type=click.IntRange(min=1, max=100_000), default=None,
              help="Decoder step bound per utterance  [default: scaled to its length].")
@click.option("--seed", type=click.IntRange(min=0, max=INT32_MAX), default=0, show_default=True,
              help="Prenet dropout and Griffin-Lim seed: same seed, same audio.")
@click.option("--window/--no-window", default=None,
              help="Constrain attention to a window around its last peak (ESPnet style).")
@click.option("--allow-incomplete", is_flag=True,
              help="Write the wav and exit 0 even if an utterance was cut at its decoder bound.")
def synthesize_cmd(text: str, run_dir: Path | None, model_path: Path | None, pretrained: str | None,
                   out: Path, plot: Path | None, max_steps: int | None, seed: int, window: bool | None,
                   allow_incomplete: bool) -> None:
    """Synthesise TEXT to a wav with a trained model (Griffin-Lim vocoder).

    The text is normalised first (numbers, abbreviations), then split into utterances at
    sentence ends and, for long sentences, at clauses and words (about 150 characters in
    English, 40 syllables in Mandarin), and the pieces are joined. Each utterance may take
    about 4x the time espeak-ng would need to say it (--max-steps overrides); one that
    reaches that bound without a stop token is an error (exit 1) naming the sentence,
    unless --allow-incomplete.
    """
    from .synthesize import Synthesizer

    _output_file(out, ".wav")
    if plot:
        _output_file(plot, ".png", "--plot")
    run_dir = _one_model_source(run_dir, model_path, pretrained)
    try:
        synth = Synthesizer.from_run(run_dir) if run_dir else Synthesizer.from_model(model_path)
        result = synth.synthesize(text, seed=seed, max_steps=max_steps, window=window)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise click.ClickException(str(e)) from None
    for note in result.warnings:
        click.echo(f"warning: {note}", err=True)
    result.save(out)
    click.echo(f"{out}: {result.seconds:.2f} s of audio, {len(result.sentences)} utterance(s)")
    if plot:
        for p in result.plot(plot):
            click.echo(f"alignment: {p}")
    cut = result.incomplete()
    for sentence in cut:
        click.echo(f"{'warning' if allow_incomplete else 'error'}: no stop token within the decoder bound; "
                   f"this utterance was cut off: {sentence[:80]!r}", err=True)
    if cut and not allow_incomplete:
        raise click.ClickException(f"{len(cut)} of {len(result.normalized)} utterance(s) incomplete; the wav "
                                   f"was written to {out} (--allow-incomplete to accept it)")


def runs_options(run_help: str, model_files: bool = False):
    """``--run`` (repeatable, existing directories; with ``model_files`` also ``.keras`` files)
    and ``--names`` for commands comparing runs."""

    def decorate(command):
        command = click.option("--names", default=None, help="Comma-separated names, one per --run  "
                               "[default: the run directory names].")(command)
        return click.option("--run", "runs", multiple=True, required=True,
                            type=click.Path(exists=True, file_okay=model_files, path_type=Path),
                            help=run_help)(command)

    return decorate


@main.command("evaluate")
@runs_options("A trained run directory, or a .keras file in one or in its snapshots/ (repeat for each "
              "system, e.g. SS, FR, KD).", model_files=True)
@click.option("--sentences", default="builtin-hard", show_default=True,
              help="builtin-hard (the package's hard set), builtin-indomain (the test split of the "
                   "run's data, with natural audio for MCD) or a file: one sentence per line, or "
                   "category<TAB>text (a new category declared first in a '# categories: NAME ...' line).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="Expected language (checked against the runs)  [default: the runs' language].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output directory (report.md, results.json, utterances.csv, wavs, plots).")
@click.option("--seed", type=click.IntRange(min=0, max=INT32_MAX), default=None, help="Base seed: sentence i uses seed+i in every "
              "system  [default: eval.seed].")
@click.option("--draws", type=click.IntRange(min=1, max=100), default=1, show_default=True,
              help="Readings of each sentence per system (prenet dropout stays on at inference, so each "
                   "reading is a random draw); comparisons use each sentence's mean over its draws. "
                   "Draw 0 is the one-draw evaluation, so raising --draws reuses it.")
@click.option("--metrics", default=",".join(METRIC_NAMES), show_default=True,
              help="Comma-separated subset of the metrics.")
@click.option("--limit", type=click.IntRange(min=1, max=INT32_MAX), default=None, help="Only the first N sentences.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Preprocessed data for builtin-indomain  [default: the first run's].")
@click.option("--max-steps", type=click.IntRange(min=1, max=INT32_MAX), default=None,
              help="Decoder step bound  [default: model.max_decoder_steps].")
@click.option("--strict", is_flag=True, help="Stop at the first failing utterance instead of listing it.")
@click.option("--workers", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Processes evaluating systems side by side, one thread each (one per core); the "
                   "report is the same as with one.")
@click.option("--judge", "judge_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Judge directory for the intelligibility metrics  [default: the shipped judge].")
@click.option("--group", "group_specs", multiple=True, metavar="NAME=SYS,SYS",
              help="Systems that are one recipe trained with different seeds (names from --names), "
                   "e.g. --group KD=kd-s1,kd-s2 --group SS=ss-s1,ss-s2: the report compares the groups "
                   "with intervals over sentences and seeds. Repeat for each group (at least two).")
def evaluate_cmd(runs: tuple[Path, ...], names: str | None, sentences: str, lang: str | None, out: Path,
                 seed: int | None, draws: int, metrics: str, limit: int | None, data_dir: Path | None,
                 max_steps: int | None, strict: bool, workers: int, judge_dir: Path | None,
                 group_specs: tuple[str, ...]) -> None:
    """Synthesise a test set with each run and write a Table-1-style robustness report.

    Per utterance: skips, repeats and incomplete synthesis counted from the attention,
    focus rate, diagonal score, duration ratio; intelligibility from the judge (WER, CER,
    (insertions + deletions) per word and per character in English; tone-syllable error
    with and without tones in Mandarin); English ASR (pocketsphinx) WER, CER and
    (insertions + deletions) / words; DNSMOS; MCD against the natural recording in domain
    and against espeak-ng's rendering of the text otherwise.
    Systems are compared pairwise per utterance with bootstrap confidence intervals, and
    seed groups (--group) with intervals that also resample the training seeds.
    Re-running the same command resumes from OUT/.cache.
    """
    from .evaluate.runner import run_evaluation

    groups: dict[str, list[str]] = {}
    for spec in group_specs:
        name, sep, members = spec.partition("=")
        if not sep or not name.strip() or name.strip() in groups:
            raise click.BadParameter(f"{spec!r}: expected NAME=SYSTEM,SYSTEM with a new NAME",
                                     param_hint="--group")
        groups[name.strip()] = [m.strip() for m in members.split(",") if m.strip()]

    name_list = [n.strip() for n in names.split(",")] if names else None
    metric_list = _metric_list(metrics)
    try:
        results = run_evaluation(
            runs, out, names=name_list, sentences=sentences, lang=lang, seed=seed, metrics=metric_list,
            limit=limit, data_dir=data_dir, max_steps=max_steps, strict=strict,
            progress_factory=lambda n: click.progressbar(length=n, label="evaluate"), judge_dir=judge_dir,
            groups=groups or None, draws=draws, workers=workers)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    failed = sum(s.get("failed", 0) for s in results["systems"].values())
    if failed:
        click.echo(f"warning: {failed} utterance(s) failed; listed in {out / 'report.md'}", err=True)
    click.echo(f"report: {out / 'report.md'}  results: {out / 'results.json'}  "
               f"utterances: {out / 'utterances.csv'}  chart: {out / 'errors.png'}")


@main.command("curves")
@runs_options("A run directory with history.csv (repeat for each system).")
@click.option("--metric", "metrics", multiple=True, default=("val_fr_mel_loss",), show_default=True,
              help="history.csv column to plot (repeatable: one panel each).")
@click.option("--no-budget", is_flag=True, help="Plot a student from its own step 0 instead of after "
              "its teacher's steps.")
@click.option("--title", default="", help="Figure title.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
def curves_cmd(runs: tuple[Path, ...], names: str | None, metrics: tuple[str, ...], no_budget: bool,
               title: str, out: Path) -> None:
    """Plot validation curves of several runs on one step axis (PNG).

    By default a distilled student is drawn after its teacher's steps, so systems
    compare at equal total training budgets. val_fr_mel_loss (free-running
    validation mel loss) is logged by every mode.
    """
    from .plots import figure_to_png, training_curves

    name_list = [n.strip() for n in names.split(",")] if names else [r.name for r in runs]
    if len(name_list) != len(runs):
        raise click.BadParameter(f"{len(name_list)} names for {len(runs)} runs", param_hint="--names")
    try:
        fig = training_curves(list(zip(name_list, runs)), metrics, budget=not no_budget, title=title)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise click.ClickException(str(e)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(figure_to_png(fig))
    click.echo(f"wrote {out}")


@main.command("export")
@model_source_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .tflite file; the JSON sidecar goes next to it (NAME.json).")
@click.option("--quantize", type=click.Choice(["none", "dynamic", "float16"]), default=None,
              help="none: float32 (verified to export.tolerance); dynamic: int8 weights; float16  "
                   "[default: export.quantize].")
@click.option("--max-steps", type=click.IntRange(min=1, max=INT32_MAX), default=None,
              help="Decoder step bound baked into the graph  [default: export.max_steps].")
@click.option("--alignments/--no-alignments", default=None,
              help="Also output attention weights  [default: export.alignments].")
@click.option("--text", "texts", multiple=True, help="Verification text (repeatable)  "
              "[default: three texts of different lengths].")
@click.option("--threads", type=click.IntRange(min=1, max=INT32_MAX), default=None, help="Interpreter threads.")
def export_cmd(run_dir: Path | None, model_path: Path | None, pretrained: str | None, out: Path,
               quantize: str | None,
               max_steps: int | None, alignments: bool | None, texts: tuple[str, ...],
               threads: int | None) -> None:
    """Export a trained model to TFLite (builtin ops only) with its JSON sidecar, verified against TF.

    Fails, writing nothing, if Select TF ops would be needed (the ops are named) or if the
    float32 model's mel differs from TensorFlow's by more than export.tolerance or stops at a
    different step. Quantised exports print their differences.
    """
    from .export import ExportError, export_tflite

    _output_file(out, ".tflite")
    run_dir = _one_model_source(run_dir, model_path, pretrained)
    try:
        result = export_tflite(run_dir or model_path, out, quantize=quantize, max_steps=max_steps,
                               alignments=alignments, texts=texts or None, threads=threads)
    except (FileNotFoundError, ValueError, ExportError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(result.summary())
    click.echo(f"sidecar: {result.sidecar}")


@main.group("runs")
def runs_grp() -> None:
    """Training runs: what each is doing (for long runs across sessions)."""


@runs_grp.command("status")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--depth", type=click.IntRange(min=0, max=6), default=3, show_default=True,
              help="How deep to look for run directories under each folder.")
def runs_status_cmd(folders: tuple[Path, ...], depth: int) -> None:
    """Every run under FOLDERS (default: the current folder): step reached, target, state,
    its last checkpoint (step and age) and its last validation figures.

    "running" means a live process holds the run's lock; "stopped" means its state says
    running but no process holds it (killed, or the session ended): re-run the same
    command to resume it from its last checkpoint.
    """
    import time as _time

    from .runs import find_runs, run_status

    runs = [r for f in (folders or (Path("."),)) for r in find_runs(f, depth)]
    if not runs:
        raise click.ClickException(f"no run directories (with state.json) under {', '.join(map(str, folders or ('.',)))}")
    click.echo(f"{'run':40} {'step':>13} {'state':24} {'checkpoint':>18}  last validation")
    for path in runs:
        try:
            s = run_status(path)
        except (OSError, ValueError) as e:
            click.echo(f"{str(path):40} unreadable: {e}")
            continue
        if s.updated is None:
            saved = "none yet"
        else:
            age = _time.time() - s.updated
            saved = f"{s.step}, " + (f"{age / 60:.0f} min" if age < 7200 else f"{age / 3600:.0f} h") + " ago"
        figures = "  ".join(f"{k} {float(v):.3f}" for k, v in s.last.items()
                            if k.startswith("val_") and k.endswith(("mel_loss", "loss")) and v not in ("", None))
        target = f"{s.trained}/{s.steps}" if s.steps else str(s.trained)
        click.echo(f"{str(path):40} {target:>13} {s.state:24} {saved:>18}  "
                   f"{('@' + s.last.get('step', '?') + ' ' + figures) if figures else '-'}")


@main.group("judge")
def judge_grp() -> None:
    """The intelligibility judge: a CTC recogniser for the built-in espeak-ng voices.

    It listens to audio through its own front end and writes English as espeak-ng phonemes
    (one token per word) or Mandarin as toned pinyin, with greedy decoding and no language
    model, so a skipped word stays a deletion.
    `tacokd evaluate` uses the shipped judges for its intelligibility metrics.
    """


@judge_grp.command("train")
@click.option("--lang", type=click.Choice(["en", "zh"]), required=True, help="Which voice's judge.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Judge directory (corpus, checkpoints, logs, judge.keras); re-running resumes.")
@click.option("--size", type=click.IntRange(min=10, max=INT32_MAX), default=12000, show_default=True,
              help="Training utterances (plus --val-size held out).")
@click.option("--val-size", type=click.IntRange(min=1, max=INT32_MAX), default=300, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1, max=INT32_MAX), default=8, show_default=True)
@click.option("--seed", type=click.IntRange(min=0, max=INT32_MAX), default=7, show_default=True,
              help="Corpus and training seed (the TTS corpora use data.split_seed, 1234).")
@click.option("--workers", type=click.IntRange(min=1, max=INT32_MAX), default=1, show_default=True,
              help="Processes rendering the corpus.")
@click.option("--exclude", "exclude_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A sentence file whose sentences the judge must never hear in training (repeatable; "
                   "give every file you will pass to `tacokd evaluate --sentences`).")
@click.option("--exclude-data", "exclude_data", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A preprocessed TTS data directory whose val and test sentences to exclude (repeatable).")
def judge_train_cmd(lang: str, out: Path, size: int, val_size: int, epochs: int, seed: int, workers: int,
                    exclude_files: tuple[Path, ...], exclude_data: tuple[Path, ...]) -> None:
    """Build the judge's espeak-ng corpus and train the judge (resumable).

    The corpus (another seed than the TTS corpora, rate and pitch variation, Griffin-Lim
    resynthesis, light noise) never contains a sentence of the built-in hard set, of the
    built-in TTS corpora's validation and test splits, or of the --exclude files.
    TensorBoard logs go to OUT/logs.
    """
    from .judge.corpus import build_corpus, excluded_labels
    from .judge.training import JudgeSettings, train_judge

    try:
        exclude = excluded_labels(lang, exclude_files, exclude_data)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{len(exclude)} sentences excluded from the judge's corpus")
    settings = JudgeSettings(size=size, val_size=val_size, seed=seed, epochs=epochs)
    with click.progressbar(length=size + val_size, label=f"rendering the {lang} judge corpus") as bar:
        build_corpus(lang, out / "corpus", size, val_size, seed, workers=workers, exclude=exclude,
                     progress=bar.update)
    with _stop_signals_save():
        try:
            summary = train_judge(lang, out, settings, workers=workers, exclude=exclude, echo=click.echo)
        except KeyboardInterrupt:
            raise click.ClickException(f"interrupted; the last finished epoch is in {RunPaths(out).checkpoints}: "
                                       "run the same command to resume") from None
    main_key = "val_wer" if lang == "en" else "val_ser"
    click.echo(f"judge {lang}: validation {main_key[4:].upper()} {summary[main_key]:.2%}, "
               f"CER {summary['val_cer']:.2%}; {out / 'judge.keras'}")


@judge_grp.command("score")
@click.argument("wavs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lang", type=click.Choice(["en", "zh"]), required=True)
@click.option("--text", "texts", multiple=True,
              help="What each wav should say (once per wav, in order); adds the error rates.")
@click.option("--judge", "judge_path", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A judge directory from `tacokd judge train`  [default: the shipped judge].")
def judge_score_cmd(wavs: tuple[Path, ...], lang: str, texts: tuple[str, ...], judge_path: Path | None) -> None:
    """Transcribe WAVs with the judge; with --text, score them (WER/CER or syllable errors).

    A text is normalised by the TTS front end first (numbers, abbreviations, Hanzi to
    pinyin), so give what was synthesised.
    """
    from .evaluate.intelligibility import label_scores
    from .judge import Judge, label_text
    from .text import TextFrontEnd

    if texts and len(texts) != len(wavs):
        raise click.UsageError(f"give --text once per wav: {len(wavs)} wavs, {len(texts)} texts")
    try:
        judge = Judge.load(lang, judge_path)
        hyps = judge.transcribe_files(wavs)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    fe = TextFrontEnd(lang)
    for k, (wav, hyp) in enumerate(zip(wavs, hyps)):
        click.echo(f"{wav}\t{hyp}")
        if texts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = fe.normalize(texts[k])
            s = label_scores(label_text(reference, lang), hyp, lang)
            if lang == "en":
                click.echo(f"  reference: {reference} ({label_text(reference, lang)})\n  WER {s['wer']:.1%}  "
                           f"phoneme error {s['cer']:.1%}  "
                           f"(ins+del)/words {s['insdel_word']:.1%}  ins {s['word_ins']} del {s['word_del']} "
                           f"sub {s['word_sub']}")
            else:
                click.echo(f"  reference: {reference}\n  syllable error {s['ser']:.1%}  without tones "
                           f"{s['ser_toneless']:.1%}  (ins+del)/syllables {s['insdel_syllable']:.1%}")


@main.command("run")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True,
              help="Which built-in corpus and front end.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where everything is written  [default: work/<lang>].")
@click.option("--config", "config", default=None,
              help="Config path or name  [default: quick_<lang>].")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)
@click.option("--force", is_flag=True, help="Redo stages that are already done.")
@click.option("--train", is_flag=True, help="Train teacher and student here (about 30 minutes on 2 CPU "
              "cores with quick_<lang>) instead of using the shipped pretrained checkpoints.")
def run_cmd(lang: str, workdir: Path | None, config: str | None, overrides: tuple[str, ...],
            force: bool, train: bool) -> None:
    """The main job: the whole method on the built-in espeak-ng corpus.

    Builds the corpus, preprocesses it, trains the teacher (teacher forcing) and distils
    the free-running student (or takes the shipped pretrained pair unless --train),
    evaluates teacher and student on the hard sentences and in-domain test sentences,
    exports the student to TFLite (verified against TF) and synthesizes a sentence with the
    TFLite demo. Prints where the wav, the reports and the plots are. Re-running resumes;
    Ctrl-C during training saves a checkpoint.
    """
    from .export import ExportError
    from .pipeline import PipelineError, run_pipeline
    from .train import TrainingDiverged

    try:
        with _stop_signals_save():
            run_pipeline(lang, workdir or Path("work") / lang, config, overrides, force=force,
                         echo=click.echo, train=train,
                         progress=lambda n, label: click.progressbar(length=n, label=label))
    except (PipelineError, ConfigError, ExportError, TrainingDiverged, DirectoryBusy) as e:
        raise click.ClickException(str(e)) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
