"""`tacokd experiment`: every system from one teacher snapshot, per seed, resumable, evaluated by recipe."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tf_tacokd.cli import main
from tf_tacokd.config import load_config
from tf_tacokd.experiment import RECIPES, ExperimentError, plan_systems, run_experiment
from tf_tacokd.runs import DirectoryLock, RunPaths, load_model
from tf_tacokd.train import TrainResult, TrainingDiverged

from .conftest import tiny_runs


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (run,) = tiny_runs(tmp_path_factory.mktemp("experiment"), ["teacher"])
    return run


def test_plan_runs_every_recipe_per_seed_first_seed_first() -> None:
    assert [s.name for s in plan_systems(["SS", "KD", "FR-ft"], [7, 3])] == \
        ["kd-s7", "ss-s7", "fr-ft-s7", "kd-s3", "ss-s3", "fr-ft-s3"]
    with pytest.raises(ExperimentError, match=r"unknown recipe\(s\) \['FR'\]"):
        plan_systems(["FR"], [1])
    with pytest.raises(ExperimentError, match="must not repeat"):
        plan_systems(["KD"], [1, 1])
    assert [s.name for s in plan_systems(["KD", "SS", "FR-ft", "KD-tuned"], [1, 1234], ["FR-ft", "KD-tuned"])] == \
        ["kd-s1", "ss-s1", "fr-ft-s1", "kd-tuned-s1", "kd-s1234", "ss-s1234"]
    with pytest.raises(ExperimentError, match=r"first-seed-only recipe\(s\) \['SS'\] are not among the systems \['KD'\]"):
        plan_systems(["KD"], [1, 2], ["SS"])


def test_experiment_trains_each_seed_evaluates_by_recipe_and_resumes(teacher: Path, tmp_path: Path) -> None:
    hard = tmp_path / "hard.txt"
    hard.write_text("The cat sat.\nA B C.\n", encoding="utf-8")
    out = tmp_path / "exp"
    args = ["experiment", "--teacher", str(RunPaths(teacher).model), "--data", str(teacher.parent / "data"),
            "--out", str(out), "--steps", "2", "--seeds", "1,2", "--systems", "ss", "--hard", str(hard),
            "--indomain", "1", "--metrics", "attention"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    names = ["ss-s1", "ss-s2"]
    for name in names:
        files = RunPaths(out / "runs" / name)
        assert json.loads(files.state.read_text())["status"] == "finished", name
        cfg = load_config(files.config)
        assert (cfg.train.seed, cfg.train.mode, cfg.train.ss_decay_steps) == (int(name[-1]), "scheduled_sampling", 2)
        assert json.loads(files.init.read_text())["init"] == str(RunPaths(teacher).model.resolve())  # from the snapshot
    w1, w2 = (load_model(out / "runs" / n).get_weights() for n in names)
    assert any(not np.array_equal(a, b) for a, b in zip(w1, w2))  # the seed reached training

    for label, n_sentences in (("hard", 2), ("indomain", 1)):
        res = json.loads((out / "eval" / label / "results.json").read_text())
        assert set(res["systems"]) == {"teacher", *names}
        assert all(s["utterances"] == n_sentences for s in res["systems"].values())
        assert res["info"]["groups"] == {"teacher": ["teacher"], "SS": names}
        assert "seed_comparisons" in res
    assert json.loads((out / "eval" / "indomain" / "results.json").read_text())["metrics"]["mcd"] == "ok"

    stamps = {n: RunPaths(out / "runs" / n).model.stat().st_mtime_ns for n in names}
    again = CliRunner().invoke(main, args + ["--no-eval"])
    assert again.exit_code == 0, again.output
    assert again.output.count(": finished (") == 2  # nothing trained again
    assert {n: RunPaths(out / "runs" / n).model.stat().st_mtime_ns for n in names} == stamps
    more = CliRunner().invoke(main, args + ["--draws", "2"])  # evaluated again, with two readings
    assert more.exit_code == 0, more.output
    res = json.loads((out / "eval" / "hard" / "results.json").read_text())
    assert res["info"]["draws"] == 2 and res["systems"]["ss-s1"]["utterances"] == 4
    assert {n: RunPaths(out / "runs" / n).model.stat().st_mtime_ns for n in names} == stamps

    other = CliRunner().invoke(main, [a if a != "2" else "3" for a in args[:10]] + args[10:])
    assert other.exit_code != 0 and "holds another experiment (steps: 2 there, 3 now)" in other.output


def test_each_recipe_trains_as_documented(teacher: Path, tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.distill
    import tf_tacokd.train
    import tf_tacokd.tune

    calls = []

    def finish(run: Path, steps: int) -> TrainResult:
        run.mkdir(parents=True, exist_ok=True)
        RunPaths(run).state.write_text(json.dumps({"status": "finished", "step": steps}))
        RunPaths(run).model.write_bytes(b"")
        return TrainResult(run, steps, "finished", 0.1, [])

    def fake_distill(cfg, data, teacher, run, lambda_=None, steps=None, **kw):
        calls.append((Path(run).name, "distill", cfg.train.seed, lambda_, steps, Path(teacher).name))
        return finish(Path(run), steps)

    def fake_train(cfg, data, run, mode=None, steps=None, init=None, **kw):
        calls.append((Path(run).name, mode, cfg.train.seed, cfg.train.ss_decay_steps, steps, Path(init).name))
        return finish(Path(run), steps)

    searches = []

    def fake_tune(cfg, data, teacher, out, trials=8, steps=None, **kw):
        searches.append((cfg.train.seed, trials, steps))
        return [type("Trial", (), {"lambda_": 3.5})()]

    monkeypatch.setattr(tf_tacokd.distill, "distill", fake_distill)
    monkeypatch.setattr(tf_tacokd.train, "train", fake_train)
    monkeypatch.setattr(tf_tacokd.tune, "tune_lambda", fake_tune)
    cfg = load_config(RunPaths(teacher).config)
    run = lambda: run_experiment(cfg, teacher.parent / "data", RunPaths(teacher).model, tmp_path / "exp",  # noqa: E731
                                 steps=7, seeds=[5], recipes=list(RECIPES), tune_trials=2, tune_steps=3,
                                 evaluate=False, echo=lambda s: None)
    result = run()
    assert calls == [("kd-s5", "distill", 5, None, 7, "model.keras"),  # lambda from the config
                     ("ss-s5", "ss", 5, 7, 7, "model.keras"),  # natural frames fade over the budget
                     ("fr-ft-s5", "distill", 5, 0.0, 7, "model.keras"),
                     ("kd-tuned-s5", "distill", 5, 3.5, 7, "model.keras"),
                     ("tf-ft-s5", "teacher", 5, cfg.train.ss_decay_steps, 7, "model.keras")]
    assert searches == [(5, 2, 3)] and result.tuned_lambda == 3.5
    assert json.loads((tmp_path / "exp" / "experiment.json").read_text())["tuned_lambda"] == 3.5
    calls.clear()
    assert run().status == {n: "finished" for n in ("kd-s5", "ss-s5", "fr-ft-s5", "kd-tuned-s5", "tf-ft-s5")}
    assert calls == [] and searches == [(5, 2, 3)]  # finished systems and the search are not redone


def test_a_diverged_system_is_reported_and_the_others_go_on(teacher: Path, tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.experiment as experiment

    trained = []

    def fake(system, cfg, data, snapshot, run, steps, lam, echo):
        trained.append(system.name)
        if system.name == "ss-s1":
            raise TrainingDiverged("loss became NaN at step 3; last good checkpoint step 2")
        if system.name == "kd-s2":
            return TrainResult(run, 1, "interrupted", 0.1, [])
        return TrainResult(run, steps, "finished", 0.1, [])

    monkeypatch.setattr(experiment, "_train_system", fake)
    cfg = load_config(RunPaths(teacher).config)
    result = run_experiment(cfg, teacher.parent / "data", teacher, tmp_path / "exp", steps=4, seeds=[1, 2],
                            recipes=["KD", "SS"], echo=lambda s: None)
    assert trained == ["kd-s1", "ss-s1", "kd-s2"]  # stopped at the interruption, the divergence did not stop it
    assert result.status == {"kd-s1": "finished", "ss-s1": "diverged: loss became NaN at step 3; last good "
                             "checkpoint step 2", "kd-s2": "interrupted", "ss-s2": "pending"}
    assert result.interrupted and result.reports == {}


def _fake_training(monkeypatch) -> tuple[list[str], list[list[str]]]:
    """Replace training with a finished run written under the run's lock (as training does) and
    evaluation with a record of who was evaluated; returns (trained names, evaluated lists)."""
    import tf_tacokd.experiment as experiment

    trained: list[str] = []
    evaluated: list[list[str]] = []

    def fake(system, cfg, data, snapshot, run, steps, lam, echo):
        trained.append(system.name)
        with DirectoryLock(run, "train"):
            RunPaths(run).state.write_text(json.dumps({"status": "finished", "step": steps}))
            RunPaths(run).model.write_bytes(b"")
        return TrainResult(run, steps, "finished", 0.1, [])

    monkeypatch.setattr(experiment, "_train_system", fake)
    monkeypatch.setattr(experiment, "_evaluate", lambda files, snapshot, systems, *a, **kw:
                        evaluated.append([s.name for s in systems]) or {})
    return trained, evaluated


def test_systems_train_side_by_side_and_evaluation_waits_for_all(teacher: Path, tmp_path: Path, monkeypatch) -> None:
    trained, evaluated = _fake_training(monkeypatch)
    lines: list[str] = []
    cfg = load_config(RunPaths(teacher).config)
    out = tmp_path / "exp"

    def go(**kw):
        return run_experiment(cfg, teacher.parent / "data", teacher, out, steps=4, seeds=[1, 2], recipes=["KD", "SS"],
                              echo=lines.append, **kw)

    with DirectoryLock(out, "experiment"):  # another process runs the whole plan
        result = go(only=["ss-s2"])
    # nothing left to train here: what is finished is evaluated while the others train
    assert trained == ["ss-s2"] and evaluated == [["ss-s2"]]
    assert result.status == {"kd-s1": "pending", "ss-s1": "pending", "kd-s2": "pending", "ss-s2": "finished"}
    with DirectoryLock(out / "runs" / "kd-s2", "train"):  # another process trains kd-s2
        result = go()
    assert trained == ["ss-s2", "kd-s1", "ss-s1"] and evaluated[1:] == [["kd-s1", "ss-s1", "ss-s2"]]
    assert result.status["kd-s2"] == f"busy (process {os.getpid()})" and result.status["ss-s2"] == "finished"
    assert "evaluating the 3 finished systems while kd-s2 train elsewhere (the final evaluation reuses these " \
           "readings)" in lines
    assert "not fully evaluated yet: kd-s2 still training elsewhere; run the same command again then" in lines
    result = go()
    assert trained[-1] == "kd-s2" and evaluated[2:] == [["kd-s1", "ss-s1", "kd-s2", "ss-s2"]]
    with pytest.raises(ExperimentError, match="--only kd-s3: not a system of this experiment; "
                                              "its systems are kd-s1, ss-s1, kd-s2, ss-s2"):
        go(only=["kd-s3", "kd-s1"])


def test_systems_finished_elsewhere_during_the_meanwhile_evaluation_are_evaluated_at_once(
        teacher: Path, tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.experiment as experiment

    trained, _ = _fake_training(monkeypatch)
    out = tmp_path / "exp"
    other = DirectoryLock(out / "runs" / "ss-s1", "train")  # another process trains ss-s1 ...
    other.__enter__()
    evaluated: list[list[str]] = []

    def evaluate(files, snapshot, systems, *a, **kw):
        evaluated.append([s.name for s in systems])
        if len(evaluated) == 1:  # ... and finishes it while this process evaluates kd-s1
            RunPaths(files.run("ss-s1")).state.write_text(json.dumps({"status": "finished", "step": 4}))
            RunPaths(files.run("ss-s1")).model.write_bytes(b"")
            other.__exit__(None, None, None)
        return {}

    monkeypatch.setattr(experiment, "_evaluate", evaluate)
    lines: list[str] = []
    cfg = load_config(RunPaths(teacher).config)
    result = run_experiment(cfg, teacher.parent / "data", teacher, out, steps=4, seeds=[1], recipes=["KD", "SS"],
                            echo=lines.append)
    assert trained == ["kd-s1"] and evaluated == [["kd-s1"], ["kd-s1", "ss-s1"]]
    assert result.status == {"kd-s1": "finished", "ss-s1": "finished"}
    assert "the systems trained elsewhere have finished meanwhile: the final evaluation" in lines
    assert not any(line.startswith("not fully evaluated yet") for line in lines)


def test_evaluating_meanwhile_gives_way_to_another_evaluation(teacher: Path, tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.experiment as experiment

    trained, _ = _fake_training(monkeypatch)

    def busy(files, *a, **kw):
        with DirectoryLock(files.eval("hard"), "evaluate"), DirectoryLock(files.eval("hard"), "evaluate"):
            pass  # the second lock stands for the other process's: DirectoryBusy

    monkeypatch.setattr(experiment, "_evaluate", busy)
    lines: list[str] = []
    cfg = load_config(RunPaths(teacher).config)
    result = run_experiment(cfg, teacher.parent / "data", teacher, tmp_path / "exp", steps=4, seeds=[1],
                            recipes=["KD", "SS"], echo=lines.append, only=["kd-s1"])
    assert trained == ["kd-s1"] and result.status == {"kd-s1": "finished", "ss-s1": "pending"}
    assert any(line.startswith("not evaluating now: ") and "is in use by process" in line for line in lines)


def test_first_seed_only_recipes_train_once_and_stay_in_the_plan(teacher: Path, tmp_path: Path, monkeypatch) -> None:
    trained, evaluated = _fake_training(monkeypatch)
    cfg = load_config(RunPaths(teacher).config)
    out = tmp_path / "exp"

    def go(**kw):
        return run_experiment(cfg, teacher.parent / "data", teacher, out, steps=3, seeds=[1, 2], recipes=["KD", "FR-ft"],
                              echo=lambda line: None, **kw)

    result = go(first_seed_only=["FR-ft"])
    assert trained == ["kd-s1", "fr-ft-s1", "kd-s2"] and evaluated == [trained]
    assert set(result.status) == set(trained)
    assert json.loads((out / "experiment.json").read_text())["first_seed_only"] == ["FR-ft"]
    with pytest.raises(ExperimentError, match=r"first_seed_only: \['FR-ft'\] there, \[\] now"):
        go()  # resuming without the option would train fr-ft-s2: refused
    plain = tmp_path / "plain"  # a plan written without the option resumes without it
    run_experiment(cfg, teacher.parent / "data", teacher, plain, steps=3, seeds=[1], recipes=["KD"], echo=lambda line: None)
    plan = json.loads((plain / "experiment.json").read_text())
    assert "first_seed_only" not in plan
    run_experiment(cfg, teacher.parent / "data", teacher, plain, steps=3, seeds=[1], recipes=["KD"], echo=lambda line: None)
    with pytest.raises(ExperimentError, match=r"first_seed_only: \[\] there, \['KD'\] now"):
        run_experiment(cfg, teacher.parent / "data", teacher, plain, steps=3, seeds=[1], recipes=["KD"],
                       echo=lambda line: None, first_seed_only=["KD"])


def test_an_interrupted_lambda_search_stops_the_experiment_resumably(teacher: Path, tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.experiment as experiment
    from tf_tacokd.tune import TuneInterrupted

    def stopped(*args, **kwargs):
        raise TuneInterrupted("the lambda search in tune was interrupted (SIGTERM) with 3 of 5 trials finished")

    monkeypatch.setattr(experiment, "_tuned_lambda", stopped)
    monkeypatch.setattr(experiment, "_train_system", lambda *a, **kw: pytest.fail("trained without a lambda"))
    cfg, lines = load_config(RunPaths(teacher).config), []
    result = run_experiment(cfg, teacher.parent / "data", teacher, tmp_path / "exp", steps=3, seeds=[1],
                            recipes=["KD-tuned"], echo=lines.append)
    assert result.status == {"kd-tuned-s1": "interrupted"} and result.interrupted
    assert "    kd-tuned-s1: the lambda search in tune was interrupted (SIGTERM) with 3 of 5 trials finished" in lines
    assert json.loads((tmp_path / "exp" / "experiment.json").read_text())["tuned_lambda"] is None


def test_bad_options_are_named_before_any_work(teacher: Path, tmp_path: Path) -> None:
    base = ["experiment", "--teacher", str(teacher), "--data", str(teacher.parent / "data"), "--out", str(tmp_path / "x")]
    r = CliRunner().invoke(main, base + ["--seeds", "1,two"])
    assert r.exit_code != 0 and "'1,two': expected integers separated by commas" in r.output
    r = CliRunner().invoke(main, base + ["--systems", "KD,FR"])
    assert r.exit_code != 0 and "unknown recipe(s) ['FR']: choose from KD, SS, FR-ft, KD-tuned, TF-ft" in r.output
    r = CliRunner().invoke(main, base + ["--only", "ss-s7"])
    assert r.exit_code != 0 and "--only ss-s7: not a system of this experiment; its systems are kd-s1, ss-s1" in r.output
    r = CliRunner().invoke(main, base + ["--first-seed-only", "FR"])
    assert r.exit_code != 0 and "Invalid value for --first-seed-only: unknown recipe(s) ['FR']" in r.output
    r = CliRunner().invoke(main, base + ["--first-seed-only", "KD-tuned"])
    assert r.exit_code != 0 and "first-seed-only recipe(s) ['KD-tuned'] are not among the systems" in r.output
    r = CliRunner().invoke(main, base + ["--metrics", "attention,wer"])
    assert r.exit_code != 0 and "unknown metric(s) ['wer']" in r.output
    r = CliRunner().invoke(main, ["experiment", "--teacher", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "not in a run directory with a config.toml: give --config" in r.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_the_plan_compares_configs_by_what_they_train(teacher: Path, tmp_path: Path, monkeypatch) -> None:
    trained, _ = _fake_training(monkeypatch)
    out = tmp_path / "exp"

    def go(*overrides: str):
        cfg = load_config(RunPaths(teacher).config, list(overrides))
        return run_experiment(cfg, teacher.parent / "data", teacher, out, steps=4, seeds=[1], recipes=["SS"],
                              evaluate=False, echo=lambda s: None)

    go()
    # another checkpoint interval is the same experiment
    assert go("train.checkpoint_every=7", "train.checkpoint_minutes=10").status == {"ss-s1": "finished"}
    plan = json.loads((out / "experiment.json").read_text())
    del plan["config"]["train"]["checkpoint_minutes"]  # a plan written before the key existed
    (out / "experiment.json").write_text(json.dumps(plan))
    assert go().status == {"ss-s1": "finished"} and trained == ["ss-s1"]
    with pytest.raises(ExperimentError, match=r"holds another experiment \(config train.learning_rate: "):
        go("train.learning_rate=0.5")
