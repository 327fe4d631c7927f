"""The paper's experiment (its Table 1) from one teacher snapshot, with training seeds.

Every system continues from the same teacher snapshot for the same number of steps, once per
training seed, and all of them are then evaluated free running on the built-in hard set and
on in-domain test sentences, with the recipes compared over sentences *and* seeds
(``tacokd evaluate --group``). The recipes:

========== =================================================================================
teacher    the snapshot decoding freely, as it is (where every system starts; not trained)
KD         the paper's student: free running, Loss_f + lambda * Loss_d (``tacokd distill``)
SS         scheduled sampling from the snapshot, natural-frame probability decaying over the
           budget (``tacokd train --mode ss --init``; the teacher's optimiser settings)
FR-ft      KD's recipe with lambda = 0: free running from the teacher's weights without the
           teacher's states (what Loss_d adds). The paper's FR trains free running from
           scratch; from a snapshot at a short budget that would be a different budget.
KD-tuned   KD with the lambda ``tacokd tune`` chooses (searched once, with the first seed)
TF-ft      teacher forcing continued from the snapshot with a fresh optimiser: the teacher
           at the systems' budget
========== =================================================================================

Systems train one after another into ``OUT/runs/<recipe>-s<seed>``; re-running the same
command skips finished ones and resumes the rest from their checkpoints, so the experiment
spans sessions. A system that diverges is reported and the others go on.
``OUT/experiment.json`` records the plan; running into the same ``OUT`` with another plan is
refused. :class:`ExperimentPaths` names the folder's files.

Systems can also train side by side: a second process given the same plan and ``only``
(``tacokd experiment … --only ss-s1234``) trains just those systems, without the experiment's
lock; the process that runs the whole plan skips a system another process is training and
evaluates once every system has finished.

Example:
    >>> from tf_tacokd.experiment import plan_systems
    >>> [s.name for s in plan_systems(["KD", "SS"], [1, 1234])]
    ['kd-s1', 'ss-s1', 'kd-s1234', 'ss-s1234']
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .atomic import write_json
from .config import Config, ConfigError, learning_settings
from .runs import DirectoryBusy, DirectoryLock, RunPaths, holder, run_and_model, run_status

__all__ = ["RECIPES", "ExperimentPaths", "System", "ExperimentError", "ExperimentResult", "plan_systems", "run_experiment"]

#: The trainable recipes, in the order they are run for each seed.
RECIPES = ("KD", "SS", "FR-ft", "KD-tuned", "TF-ft")

#: The systems of the paper's Table 1 with the fine-tuned FR.
DEFAULT_RECIPES = ("KD", "SS", "FR-ft")


@dataclass(frozen=True)
class ExperimentPaths:
    """The files of an experiment folder, by name.

    Example:
        >>> ExperimentPaths("exp/zh").run("kd-s1").as_posix()
        'exp/zh/runs/kd-s1'
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def plan(self) -> Path:
        """The plan: teacher, data, steps, seeds, recipes, config, the tuned lambda."""
        return self.root / "experiment.json"

    def run(self, name: str) -> Path:
        """One system's run directory."""
        return self.root / "runs" / name

    @property
    def tune(self) -> Path:
        """The lambda search of KD-tuned (``tacokd tune``'s folder)."""
        return self.root / "tune"

    def eval(self, label: str) -> Path:
        """An evaluation's output (``hard``, ``indomain``)."""
        return self.root / "eval" / label


class ExperimentError(RuntimeError):
    """The experiment cannot go on; the message says what to do."""


@dataclass(frozen=True)
class System:
    """One trained system: a recipe and a training seed."""

    recipe: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.recipe.lower()}-s{self.seed}"


def plan_systems(recipes: Sequence[str], seeds: Sequence[int], first_seed_only: Sequence[str] = ()) -> list[System]:
    """The systems to train, seed by seed (the first seed's systems come first, so a partial
    experiment is a complete one-seed experiment).

    Args:
        recipes: a subset of :data:`RECIPES`.
        seeds: training seeds; every recipe runs once per seed ...
        first_seed_only: ... except these recipes (of ``recipes``), trained with the first seed only.

    Raises:
        ExperimentError: an unknown recipe, a repeated one, no seeds, or a ``first_seed_only``
            recipe that is not in ``recipes``.

    Example:
        >>> [s.name for s in plan_systems(["KD", "FR-ft"], [1, 2], first_seed_only=["FR-ft"])]
        ['kd-s1', 'fr-ft-s1', 'kd-s2']
    """
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise ExperimentError(f"unknown recipe(s) {unknown}: choose from {', '.join(RECIPES)}")
    stray = [r for r in first_seed_only if r not in recipes]
    if stray:
        raise ExperimentError(f"first-seed-only recipe(s) {stray} are not among the systems {list(recipes)}")
    if len(set(recipes)) != len(recipes) or len(set(seeds)) != len(seeds):
        raise ExperimentError(f"recipes and seeds must not repeat (got {list(recipes)}, {list(seeds)})")
    if not recipes or not seeds:
        raise ExperimentError("give at least one recipe and one seed")
    order = [r for r in RECIPES if r in recipes]
    return [System(r, s) for i, s in enumerate(seeds) for r in order if i == 0 or r not in first_seed_only]


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did: per system ``finished`` | ``interrupted`` | an error
    message, the tuned lambda (if KD-tuned ran) and the evaluation output folders."""

    status: dict[str, str]
    tuned_lambda: float | None = None
    reports: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return any(s == "interrupted" for s in self.status.values())

    def waiting(self) -> list[str]:
        """Systems not finished here yet: ``pending``, or ``busy`` (another process trains them)."""
        return [n for n, st in self.status.items() if st == "pending" or st.startswith("busy")]


def _seeded(cfg: Config, seed: int) -> Config:
    return cfg.replace(train=dataclasses.replace(cfg.train, seed=seed))


def _finished(run: Path, steps: int) -> bool:
    files = RunPaths(run)
    if not files.state.is_file() or not files.model.is_file():
        return False
    status = run_status(run)
    return status.status == "finished" and status.step >= steps


def _train_system(system: System, cfg: Config, data: Path, snapshot: Path, run: Path, steps: int,
                  tuned_lambda: float | None, echo: Callable[[str], None]):
    """Train (or resume) one system; returns the :class:`~tf_tacokd.train.TrainResult`."""
    from .distill import distill
    from .train import train

    cfg = _seeded(cfg, system.seed)
    if system.recipe in ("KD", "FR-ft", "KD-tuned"):
        lam = {"KD": None, "FR-ft": 0.0, "KD-tuned": tuned_lambda}[system.recipe]
        return distill(cfg, data, snapshot, run, lambda_=lam, steps=steps, verbose=0, echo=echo)
    if system.recipe == "SS":
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, ss_decay_steps=steps))
        return train(cfg, data, run, mode="ss", steps=steps, init=snapshot, verbose=0, echo=echo)
    return train(cfg, data, run, mode="teacher", steps=steps, init=snapshot, verbose=0, echo=echo)


def _tuned_lambda(cfg: Config, data: Path, snapshot: Path, out: Path, seed: int, trials: int,
                  steps: int, echo: Callable[[str], None]) -> float:
    from .tune import tune_lambda

    echo(f"KD-tuned: searching lambda ({trials} trials x {steps} steps, seed {seed}) in {out}")
    table = tune_lambda(_seeded(cfg, seed), data, snapshot, out, trials=trials, steps=steps, echo=echo)
    return float(table[0].lambda_)


#: plan keys written only when set, and their value when absent
_UNSET: dict[str, Any] = {"first_seed_only": []}


def _check_plan(path: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """The plan on disk (written now if there is none); a different one is refused. Configs
    compare by what they train (:func:`~tf_tacokd.config.learning_settings`): a config key added
    since the plan was written, at its default, or another checkpoint interval is the same plan."""
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        keys = [k for k in dict.fromkeys([*plan, *old]) if k not in ("tuned_lambda", "config")]
        differ = [f"{k}: {old.get(k, _UNSET.get(k))!r} there, {plan.get(k, _UNSET.get(k))!r} now" for k in keys
                  if old.get(k, _UNSET.get(k)) != plan.get(k, _UNSET.get(k))]
        there, now = learning_settings(old["config"], f"{path} (config)"), learning_settings(plan["config"])
        differ += [f"config {section}.{k}: {there[section].get(k)!r} there, {now[section].get(k)!r} now"
                   for section in now for k in dict.fromkeys([*now[section], *there[section]])
                   if there[section].get(k) != now[section].get(k)]
        if differ:
            raise ExperimentError(f"{path.parent} holds another experiment ({'; '.join(differ)}); "
                                  "run the same command to resume it, or give another --out")
        return old
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_plan(path, plan)
    return plan


def run_experiment(
    cfg: Config,
    data: str | Path,
    teacher: str | Path,
    out: str | Path,
    steps: int = 1000,
    seeds: Sequence[int] = (1, 1234),
    recipes: Sequence[str] = DEFAULT_RECIPES,
    tuned_lambda: float | None = None,
    tune_trials: int = 5,
    tune_steps: int = 250,
    evaluate: bool = True,
    hard: str = "builtin-hard",
    indomain_limit: int = 50,
    metrics: Sequence[str] = ("attention", "intelligibility", "dnsmos"),
    echo: Callable[[str], None] = print,
    draws: int = 1,
    only: Sequence[str] | None = None,
    first_seed_only: Sequence[str] = (),
    eval_workers: int = 1,
) -> ExperimentResult:
    """Train every system of the experiment (resuming) and evaluate them on both test sets.

    Args:
        cfg: the teacher's config (the student must have its architecture), with any overrides.
        data: the teacher's preprocessed data.
        teacher: the teacher snapshot every system starts from (a ``.keras`` file in a run or
            its ``snapshots/``, or a run directory).
        out: the experiment's folder (``runs/``, ``tune/``, ``eval/hard``, ``eval/indomain``).
        steps: each system's training steps from the snapshot (equal budgets).
        seeds: training seeds; every trained recipe runs once per seed (but ``first_seed_only``).
        recipes: a subset of :data:`RECIPES`.
        tuned_lambda: KD-tuned's lambda; default: searched with ``tacokd tune`` in ``out/tune``.
        tune_trials, tune_steps: that search's size.
        evaluate: evaluate the finished systems (nothing is evaluated after an interruption).
        hard: the out-of-domain test set: ``builtin-hard`` or a sentence file (as ``tacokd evaluate
            --sentences`` reads it).
        indomain_limit: in-domain test sentences (MCD is added to ``metrics`` there).
        metrics: evaluation metrics (:data:`tf_tacokd.evaluate.runner.METRICS`).
        echo: where progress lines go.
        draws: readings of each test sentence per system (``tacokd evaluate --draws``).
        only: train just these systems (names as ``kd-s1``), beside another process running
            the whole plan. A process with nothing left to train while others still train
            (either one) evaluates the finished systems meanwhile; the final evaluation, by the
            call without ``only`` once every system has finished (right after its meanwhile
            evaluation if the others finished during it), reuses those readings.
        first_seed_only: recipes trained with the first seed only (part of the plan), e.g.
            ``["FR-ft", "KD-tuned"]`` when the seed spread matters most for KD and SS.
        eval_workers: processes evaluating systems side by side (``tacokd evaluate --workers``).

    Returns:
        Each system's status (``finished``, ``interrupted``, ``pending``: not trained by this
        call, ``busy (process N)``: another process is training it, ``diverged: …``); an
        interrupted system (SIGINT/SIGTERM) stops the experiment, and the same call resumes it.

    Many parameters because each is a ``tacokd experiment`` option; all but the first four
    have defaults.
    """
    files = ExperimentPaths(out)
    data = Path(data)
    _, snapshot = run_and_model(teacher)
    if not snapshot.is_file():
        raise ExperimentError(f"{teacher}: no teacher model ({snapshot} is missing)")
    systems = plan_systems(list(recipes), list(seeds), list(first_seed_only))
    if only is not None:
        unknown = sorted(set(only) - {s.name for s in systems})
        if unknown or not only:
            raise ExperimentError(f"--only {', '.join(unknown) or '(nothing)'}: not a system of this experiment; "
                                  f"its systems are {', '.join(s.name for s in systems)}")
    plan = {"teacher": str(snapshot.resolve()), "data": str(data.resolve()), "steps": steps,
            "seeds": list(seeds), "recipes": [s for s in RECIPES if s in recipes],
            "config": cfg.to_dict(), "tuned_lambda": tuned_lambda}
    if first_seed_only:  # only when given, so that plans written before the option still match
        plan["first_seed_only"] = [r for r in RECIPES if r in first_seed_only]
    # evaluation settings are not part of the plan: evaluating again differently is allowed
    plan = json.loads(json.dumps(plan, default=str))  # as it reads back from the plan file
    # the whole plan runs under the experiment's lock; systems picked with `only` train beside it
    # under their own run directories' locks
    lock = DirectoryLock(files.root, "experiment") if only is None else contextlib.nullcontext()
    with lock:
        plan = _check_plan(files.plan, plan)
        lam = tuned_lambda if tuned_lambda is not None else plan.get("tuned_lambda")
        result = ExperimentResult({s.name: "pending" for s in systems})
        for i, system in enumerate(systems, 1):
            run = files.run(system.name)
            if _finished(run, steps):
                result.status[system.name] = "finished"
                echo(f"[{i}/{len(systems)}] {system.name}: finished ({run})")
                continue
            if only is not None and system.name not in only:
                continue
            other = holder(run)
            if other is not None:
                result.status[system.name] = f"busy (process {other.get('pid', '?')})"
                echo(f"[{i}/{len(systems)}] {system.name}: process {other.get('pid', '?')} is training it; going on")
                continue
            if system.recipe == "KD-tuned" and lam is None:
                lam = json.loads(files.plan.read_text(encoding="utf-8")).get("tuned_lambda")  # another process's
                if lam is None:
                    from .tune import TuneInterrupted

                    try:
                        lam = _tuned_lambda(cfg, data, snapshot, files.tune, seeds[0], tune_trials, tune_steps, echo)
                    except TuneInterrupted as e:
                        result.status[system.name] = "interrupted"
                        echo(f"    {system.name}: {e}")
                        return result
                    _write_plan(files.plan, {**plan, "tuned_lambda": lam})
            echo(f"[{i}/{len(systems)}] {system.name}: training {steps} steps from {snapshot.name} -> {run}")
            from .train import TrainingDiverged

            try:
                trained = _train_system(system, cfg, data, snapshot, run, steps, lam, echo)
            except TrainingDiverged as e:  # one bad system does not stop the others
                result.status[system.name] = f"diverged: {e}"
                echo(f"    {system.name} diverged, going on: {e}")
                continue
            result.status[system.name] = trained.status
            if trained.status == "interrupted":
                echo(f"    interrupted at step {trained.step}: run the same command to resume")
                return result
        result.tuned_lambda = lam
        waiting = result.waiting()
        done = [s for s in systems if result.status[s.name] == "finished"]
        # the final evaluation once all have finished; before that, whichever process has nothing
        # left to train evaluates what is finished (the final one reuses those readings)
        while evaluate and done and (waiting or only is None):
            if waiting:
                echo(f"evaluating the {len(done)} finished systems while {', '.join(waiting)} train elsewhere "
                     "(the final evaluation reuses these readings)")
            try:
                result.reports = _evaluate(files, snapshot, done, data, hard, indomain_limit, list(metrics), echo,
                                           draws, eval_workers)
            except DirectoryBusy as e:
                if not waiting:
                    raise
                echo(f"not evaluating now: {e}")  # the other process of this experiment is evaluating
                break
            if not waiting or only is not None:
                break
            # an evaluation takes long: the systems trained elsewhere may have finished meanwhile,
            # and then the whole plan's process goes on to the final evaluation itself
            for s in systems:
                if s.name in waiting and holder(files.run(s.name)) is None and _finished(files.run(s.name), steps):
                    result.status[s.name] = "finished"
            waiting = result.waiting()
            if waiting:
                break
            done = [s for s in systems if result.status[s.name] == "finished"]
            echo("the systems trained elsewhere have finished meanwhile: the final evaluation")
        if only is not None:
            echo("trained " + ", ".join(only) + "; the command without --only evaluates once every system has finished")
        elif waiting:
            echo(f"not fully evaluated yet: {', '.join(waiting)} still training elsewhere; run the same command "
                 "again then")
        return result


def _write_plan(path: Path, plan: dict[str, Any]) -> None:
    """Write the plan atomically (a process training beside this one may be reading it)."""
    write_json(path, plan)


def _evaluate(files: ExperimentPaths, snapshot: Path, systems: list[System], data: Path, hard: str, indomain_limit: int,
              metrics: list[str], echo: Callable[[str], None], draws: int = 1, workers: int = 1) -> dict[str, Path]:
    """Both test sets, every finished system and the teacher, compared by recipe over seeds.
    Evaluation caches per utterance (``tacokd evaluate`` resumes), so a re-run is cheap.

    Many parameters because they are :func:`run_experiment`'s evaluation options.
    """
    from .evaluate.runner import run_evaluation

    runs = [snapshot] + [files.run(s.name) for s in systems]
    names = ["teacher"] + [s.name for s in systems]
    groups: dict[str, list[str]] = {"teacher": ["teacher"]}
    for s in systems:
        groups.setdefault(s.recipe, []).append(s.name)
    reports = {}
    for label, sentences, extra, limit in (("hard", hard, [], 0),
                                           ("indomain", "builtin-indomain", ["mcd"], indomain_limit)):
        dest = files.eval(label)
        echo(f"evaluating {len(runs)} systems on {sentences} -> {dest}")
        run_evaluation(runs, dest, names=names, sentences=sentences, metrics=metrics + extra, limit=limit,
                       data_dir=data, groups=groups if len(groups) >= 2 else None, draws=draws, workers=workers)
        reports[label] = dest
    return reports


def check_recipes(text: str) -> list[str]:
    """``"KD,SS"`` -> ``["KD", "SS"]`` (case-insensitive names of :data:`RECIPES`)."""
    by_lower = {r.lower(): r for r in RECIPES}
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n.lower() not in by_lower]
    if bad:
        raise ConfigError(f"unknown recipe(s) {bad}: choose from {', '.join(RECIPES)}")
    return [by_lower[n.lower()] for n in names]
