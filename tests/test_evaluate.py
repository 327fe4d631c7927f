"""`tacokd evaluate` end to end on two tiny trained runs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from tf_tacokd.cli import main
from tf_tacokd.evaluate import run_evaluation
from tf_tacokd.synthesize import Synthesizer

from .conftest import tiny_runs


def _no_model_load(*args, **kwargs):
    raise AssertionError("a model was loaded")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    teacher, fr = tiny_runs(tmp_path_factory.mktemp("evaluate"), ["teacher", "fr"])
    return teacher, fr


def test_report_for_two_runs_resumes_and_lists_failures(runs: tuple[Path, Path], tmp_path: Path) -> None:
    sentences = tmp_path / "s.txt"
    sentences.write_text("# categories: letters long odd\nletters\tA B C.\nletters\tX Y Z.\nlong\tThe cat sat on the mat.\nodd\t...\n",
                         encoding="utf-8")
    out = tmp_path / "eval"
    args = ["evaluate", "--run", str(runs[0]), "--run", str(runs[1]), "--names", "TF,FR",
            "--sentences", str(sentences), "--lang", "en", "--out", str(out), "--max-steps", "8",
            "--seed", "5", "--metrics", "attention,asr,dnsmos"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "| TF | en |" in md and "| FR | en |" in md and "| FR vs TF | attention errors | 3 |" in md
    assert "## Failed utterances" in md and "odd-001" in md  # "..." has nothing to say: listed, not fatal
    assert "mcd: not requested" not in md
    res = json.loads((out / "results.json").read_text())
    assert res["systems"]["TF"]["utterances"] == 3 and res["systems"]["TF"]["failed"] == 1
    assert res["metrics"] == {"attention": "ok", "asr": "ok", "dnsmos": "ok"}
    rows = list(csv.DictReader((out / "utterances.csv").open()))
    assert len(rows) == 8 and {r["system"] for r in rows} == {"TF", "FR"}
    ok = [r for r in rows if r["status"] == "ok"]
    # untrained models run to the step bound: incomplete, and the seed is sentence-indexed
    assert all(r["finished"] == "False" and r["incomplete"] == "True" and int(r["steps"]) == 8 for r in ok)
    assert [r["seed"] for r in ok if r["system"] == "TF"] == ["5", "6", "7"]
    assert all(r["dnsmos_ovrl"] and r["reference_words"] for r in ok)
    for r in ok:
        assert (out / r["wav"]).is_file() and (out / r["alignment_png"]).is_file()
    assert (out / "errors.png").is_file()

    # same command again: everything comes from the cache (no wav rewritten), same numbers
    stamps = {p: p.stat().st_mtime_ns for p in (out / "wavs").rglob("*.wav")}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in (out / "wavs").rglob("*.wav")} == stamps
    assert json.loads((out / "results.json").read_text())["systems"] == res["systems"]

    strict = CliRunner().invoke(main, args + ["--strict", "--out", str(tmp_path / "strict")])
    assert strict.exit_code != 0 and "odd-001" in strict.output


def test_more_draws_reuse_the_first_and_compare_sentence_means(runs: tuple[Path, Path], tmp_path: Path) -> None:
    from tf_tacokd.evaluate.runner import DRAW_STRIDE

    sentences = tmp_path / "s.txt"
    sentences.write_text("A B C.\nThe cat sat on the mat.\n", encoding="utf-8")
    out = tmp_path / "eval"
    args = ["evaluate", "--run", str(runs[0]), "--run", str(runs[1]), "--names", "TF,FR", "--sentences",
            str(sentences), "--out", str(out), "--max-steps", "6", "--seed", "3", "--metrics", "attention"]
    one = CliRunner().invoke(main, args)
    assert one.exit_code == 0, one.output
    stamps = {p: p.stat().st_mtime_ns for p in (out / "wavs").rglob("*.wav")}
    three = CliRunner().invoke(main, args + ["--draws", "3"])
    assert three.exit_code == 0, three.output
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # draw 0 is the one-draw run
    rows = list(csv.DictReader((out / "utterances.csv").open()))
    assert len(rows) == 2 * 2 * 3
    tf = sorted((int(r["draw"]), int(r["seed"]), r["wav"]) for r in rows if r["system"] == "TF")
    assert [(d, s) for d, s, _ in tf] == [(0, 3), (0, 4), (1, 3 + DRAW_STRIDE), (1, 4 + DRAW_STRIDE),
                                          (2, 3 + 2 * DRAW_STRIDE), (2, 4 + 2 * DRAW_STRIDE)]
    assert len({w for _, _, w in tf}) == 6 and all((out / w).is_file() for _, _, w in tf)
    res = json.loads((out / "results.json").read_text())
    assert res["info"]["draws"] == 3 and res["systems"]["TF"]["utterances"] == 6
    assert res["comparisons"][0]["attention_errors"]["n"] == 2  # sentences, not readings
    md = (out / "report.md").read_text()
    assert "2 sentences × 3 draws" in md and "per sentence, mean of 3 draws" in md
    assert "4 of 12 utterances were reused" in md
    bad = CliRunner().invoke(main, args + ["--draws", "0"])
    assert bad.exit_code != 0 and "--draws" in bad.output


def test_a_sentence_moved_in_its_file_is_read_again_with_the_seed_it_gets_now(runs: tuple[Path, Path],
                                                                              tmp_path: Path) -> None:
    sentences = tmp_path / "s.txt"
    out = tmp_path / "eval"

    def args(where: Path) -> list[str]:
        return ["evaluate", "--run", str(runs[0]), "--names", "TF", "--sentences", str(sentences), "--out",
                str(where), "--max-steps", "6", "--seed", "3", "--metrics", "attention"]

    sentences.write_text("# categories: a b\nb\tA B C.\nb\tThe cat sat on the mat.\n", encoding="utf-8")
    assert (first := CliRunner().invoke(main, args(out))).exit_code == 0, first.output
    # a sentence added in front: b-001 and b-002 keep their ids and texts but move to indices 1, 2,
    # where a fresh evaluation reads them with seeds 4, 5; the cache (seeds 3, 4) must not stand in
    sentences.write_text("# categories: a b\na\tX Y Z.\nb\tA B C.\nb\tThe cat sat on the mat.\n", encoding="utf-8")
    assert (again := CliRunner().invoke(main, args(out))).exit_code == 0, again.output
    assert (fresh := CliRunner().invoke(main, args(tmp_path / "fresh"))).exit_code == 0, fresh.output
    rows = {r["id"]: r for r in csv.DictReader((out / "utterances.csv").open())}
    want = {r["id"]: r for r in csv.DictReader((tmp_path / "fresh" / "utterances.csv").open())}
    assert {i: r["seed"] for i, r in rows.items()} == {"a-001": "3", "b-001": "4", "b-002": "5"}
    assert {i: r["seed"] for i, r in want.items()} == {i: r["seed"] for i, r in rows.items()}
    assert "reused" not in (out / "report.md").read_text()


def test_workers_fill_the_caches_and_the_report_is_the_same(runs: tuple[Path, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sentences = tmp_path / "s.txt"
    sentences.write_text("A B C.\nThe cat sat on the mat.\nX Y.\n", encoding="utf-8")
    common = dict(names=["TF", "FR"], sentences=str(sentences), seed=3, metrics=["attention", "dnsmos"],
                  max_steps=6, draws=2)
    serial = run_evaluation(list(runs), tmp_path / "one", **common)
    with monkeypatch.context() as m:  # this process only reads caches: the workers load the models
        m.setattr(Synthesizer, "from_run", _no_model_load)
        parallel = run_evaluation(list(runs), tmp_path / "two", workers=2, **common)
        again = run_evaluation(list(runs), tmp_path / "one", **common)  # all cached: no model needed
    assert again["systems"] == serial["systems"]

    def close(a, b) -> bool:  # one thread per worker: equal up to float rounding
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-5)
        except (TypeError, ValueError):
            return a == b

    def table(folder: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "synth_ms"}  # the wall-clock time of a reading
                for r in csv.DictReader((folder / "utterances.csv").open())]

    assert len(table(tmp_path / "one")) == 2 * 3 * 2
    assert all(close(a, b) for a, b in zip(table(tmp_path / "two"), table(tmp_path / "one"), strict=True))
    assert close(parallel["systems"], serial["systems"])
    assert "reused" not in (tmp_path / "two" / "report.md").read_text()  # measured by the workers, now
    assert sorted(p.name for p in (tmp_path / "two" / ".cache").iterdir()) == ["FR.jsonl", "TF.jsonl"]
    with pytest.raises(ValueError, match="workers must be at least 1"):
        run_evaluation(list(runs), tmp_path / "three", workers=0, **common)


def test_indomain_with_natural_audio_gives_mcd(runs: tuple[Path, Path], tmp_path: Path) -> None:
    res = run_evaluation([runs[0]], tmp_path / "in", sentences="builtin-indomain", seed=0,
                         metrics=["attention", "mcd"], max_steps=6)
    s = res["systems"]["teacher"]
    assert s["utterances"] >= 1 and s["mcd"] > 0 and res["metrics"]["mcd"] == "ok"
    assert s["duration_ratio_median"] > 0  # natural frames known in-domain


def test_a_snapshot_file_is_evaluated_with_its_runs_config(runs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "teacher"
    shutil.copytree(runs[0], run, ignore=shutil.ignore_patterns("checkpoints", "logs", ".lock"))
    snap = run / "snapshots" / "model-0000002.keras"
    snap.parent.mkdir(exist_ok=True)
    shutil.copy(run / "model.keras", snap)
    sentences = tmp_path / "s.txt"
    sentences.write_text("The cat sat.\nA B C.\n", encoding="utf-8")
    res = run_evaluation([run, snap], tmp_path / "eval", sentences=str(sentences), seed=2,
                         metrics=["attention"], max_steps=6)
    a, b = res["systems"]["teacher"], res["systems"]["teacher-model-0000002"]
    assert a["utterances"] == b["utterances"] == 2
    assert {k: a[k] for k in ("focus_rate", "diagonal_score", "skips")} == \
        {k: b[k] for k in ("focus_rate", "diagonal_score", "skips")}  # the same weights, the same run
    assert res["info"]["runs"]["teacher-model-0000002"] == str(snap)


def test_bad_arguments_are_clear(runs: tuple[Path, Path], tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["evaluate", "--run", str(runs[0]), "--lang", "zh", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "is a 'en' model but --lang zh" in r.output
    r = CliRunner().invoke(main, ["evaluate", "--run", str(runs[0]), "--names", "A,B", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "2 names for 1 runs" in r.output
    r = CliRunner().invoke(main, ["evaluate", "--run", str(runs[0]), "--metrics", "attention,wer",
                                  "--out", str(tmp_path)])
    assert r.exit_code != 0 and "unknown metric(s) ['wer']" in r.output
    two = ["evaluate", "--run", str(runs[0]), "--run", str(runs[1]), "--names", "A,B", "--out", str(tmp_path)]
    r = CliRunner().invoke(main, two + ["--group", "KD=A", "--group", "SS=C"])
    assert r.exit_code != 0 and "group 'SS': unknown system(s) ['C']; the systems are ['A', 'B']" in r.output
    r = CliRunner().invoke(main, two + ["--group", "KD=A,B"])
    assert r.exit_code != 0 and "at least two groups" in r.output
    r = CliRunner().invoke(main, two + ["--group", "KD=A", "--group", "SS=A"])
    assert r.exit_code != 0 and "system 'A' is in group 'KD' and 'SS'" in r.output
    r = CliRunner().invoke(main, two + ["--group", "KD"])
    assert r.exit_code != 0 and "--group" in r.output and "expected NAME=SYSTEM,SYSTEM" in r.output


def test_a_damaged_model_stops_the_evaluation_naming_its_file(runs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "damaged"
    shutil.copytree(runs[0], run)
    model = run / "model.keras"
    model.write_bytes(model.read_bytes()[:1000])  # cut short, as by a full disk
    sentences = tmp_path / "s.txt"
    sentences.write_text("A B C.\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--sentences", str(sentences), "--max-steps", "4",
                                  "--metrics", "attention", "--out", str(tmp_path / "eval")])
    assert r.exit_code != 0 and f"{model}: not a readable .keras model" in r.output  # not an error row per reading


def test_indomain_leaves_out_sentences_a_system_was_trained_on(runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A shipped model's corpus is another draw from the same sentence pool: an in-domain test
    split may hold sentences it trained on. They are left out, and the report says so."""
    import shutil

    from tf_tacokd.data.dataset import load_manifest
    from tf_tacokd.data.seen import TRAINING_TEXTS_KEY, encode_fingerprints
    from tf_tacokd.runs import RunPaths

    data_dir = json.loads(RunPaths(runs[0]).data.read_text())["data_dir"]
    (test_id, test_text, _), = load_manifest(data_dir).texts("test")  # the fixture's one test sentence
    shipped = tmp_path / "shipped"  # as pack() leaves it: no data dir, the fingerprints of its training text
    shutil.copytree(runs[0], shipped, ignore=shutil.ignore_patterns("checkpoints", "logs", ".lock"))
    data = json.loads(RunPaths(shipped).data.read_text())

    def ship(training: list[str] | None) -> None:
        data["data_dir"] = None
        data.pop(TRAINING_TEXTS_KEY, None)
        if training is not None:
            data[TRAINING_TEXTS_KEY] = encode_fingerprints(training)
        RunPaths(shipped).data.write_text(json.dumps(data))

    def evaluate(out: str) -> dict:
        return run_evaluation([runs[0], shipped], tmp_path / out, names=["here", "shipped"],
                              sentences="builtin-indomain", data_dir=data_dir, seed=0, metrics=["attention"],
                              max_steps=4)

    ship(["Some other sentence."])
    res = evaluate("clean")
    assert res["info"]["held_out"] == {"left_out": 0, "seen_by": {"here": 0, "shipped": 0}, "unknown": []}
    assert res["systems"]["shipped"]["utterances"] == 1
    assert "left out" not in (tmp_path / "clean" / "report.md").read_text()

    ship(["Some other sentence.", test_text.upper() + "  "])  # case and spacing do not hide it
    with pytest.raises(ValueError, match="every test sentence of .* was in a system's training text"):
        evaluate("seen")

    ship(None)  # neither fingerprints nor its data here: unknown, said, nothing dropped
    res = evaluate("unknown")
    assert res["info"]["held_out"]["unknown"] == ["shipped"] and res["systems"]["shipped"]["utterances"] == 1
    assert "Training text unknown for shipped (not checked)." in (tmp_path / "unknown" / "report.md").read_text()
    assert test_id in (tmp_path / "unknown" / "utterances.csv").read_text()
