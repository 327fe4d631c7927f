"""The main job: the whole method on the built-in espeak-ng corpus, stage by stage.

Each stage records its completion in ``<workdir>/state.json`` (with the config hash),
so re-running resumes instead of starting over (training resumes from its last
checkpoint); ``force=True`` redoes everything. Teacher and student come from the shipped
pretrained checkpoints when they match the config, unless ``train=True``.

Example:
    >>> from tf_tacokd.pipeline import run_pipeline
    >>> run_pipeline("en", "work/en")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .atomic import write_json
from .config import Config, load_config
from .data.corpora import ESPEAK_VOICES, EspeakMissingError, check_espeak_voice
from .runs import RunPaths
from .text import TextFrontEnd

__all__ = ["run_pipeline", "SAMPLE_SENTENCES", "Stage", "STAGES", "PipelineError"]

#: A few sentences per language, easy and hard (the paper's out-of-domain categories).
SAMPLE_SENTENCES = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "Dr. Smith paid $5.50 at 7:07 on May 3rd, 1977.",
        "A B C D E F G.",
        "Call 555-123-4567, then 555-123-4567 again; 50% of callers hang up.",
    ],
    "zh": [
        "银行行长2026年来了。",
        "卡尔普#2陪外孙#1玩滑梯#4。",
        "吃葡萄不吐葡萄皮，不吃葡萄倒吐葡萄皮。",
        "我有138个苹果，打电话13800138000。",
    ],
}

KEY_CHARS = 16  # a stage key starts with this many hex digits of its config hash
#: Stages whose results come from the models (redone when switching between shipped and trained
#: models, or when other models are shipped).
MODEL_STAGES = ("teacher", "student", "evaluate", "export", "demo")


class PipelineError(RuntimeError):
    """A stage of the main job failed; the message says what to do."""


@dataclass
class Context:
    """What the stages share: language, config, where to write, how to report."""

    lang: str
    config: Config
    workdir: Path
    echo: Callable[[str], None]
    train: bool = False
    done: dict[str, str] = field(default_factory=dict)
    # (length, label) -> a context manager with update(n): the CLI passes click's progress bar
    progress: Callable[[int, str], Any] = field(default=lambda n, label: _Silent())


class _Silent:
    """A progress display that shows nothing (the default outside the CLI)."""

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


@dataclass(frozen=True)
class Stage:
    """One step of the main job: ``run`` returns its one-line summary.

    ``sections``: the config sections its result depends on (with those of the stages
    before it); changing one of them redoes this stage and the ones after it, and no other.
    ``outputs``: what to delete before redoing it (a changed teacher is trained afresh).
    """

    name: str
    description: str
    run: Callable[[Context], str]
    sections: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    always: bool = False  # re-run every time (checks of the machine), never cached


def _stage_check(ctx: Context) -> str:
    try:
        espeak = check_espeak_voice(ctx.lang)
    except EspeakMissingError as e:
        raise PipelineError(str(e)) from None
    tf_version = importlib.metadata.version("tensorflow")
    return f"{espeak}; voice {ESPEAK_VOICES[ctx.lang]}; tensorflow {tf_version}"


def _stage_corpus(ctx: Context) -> str:
    from .data.corpora import make_corpus

    size = ctx.config.data.corpus_size
    with ctx.progress(size, "    espeak-ng") as bar:
        summary = make_corpus(ctx.lang, ctx.workdir / "corpus", size=size,  # type: ignore[arg-type]
                              seed=ctx.config.data.split_seed, progress=bar.update)
    skipped = f", {len(summary.skipped)} sentences skipped" if summary.skipped else ""
    return f"{summary.count} utterances, {summary.hours:.2f} h of audio{skipped}"


def _stage_preprocess(ctx: Context) -> str:
    import os

    from .data.preprocess import preprocess

    size = ctx.config.data.corpus_size
    with ctx.progress(size, "    features") as bar:
        report = preprocess(ctx.config, ctx.workdir / "corpus", ctx.workdir / "data",
                            workers=min(2, os.cpu_count() or 1), overwrite=True, progress=bar.update)
    c = report.counts
    return (f"train {c['train']} / val {c['val']} / test {c['test']} utterances, "
            f"{sum(report.hours.values()):.2f} h, {len(report.rejected)} rejected")


def _stage_config(ctx: Context) -> str:
    path = ctx.config.save(ctx.workdir / "config.toml")
    return f"resolved config saved to {path}"


def _stage_text(ctx: Context) -> str:
    fe = TextFrontEnd.from_config(ctx.config.text)
    lines = ["text\tnormalized\tids"]
    for sentence in SAMPLE_SENTENCES[ctx.lang]:
        p = fe.process(sentence)
        read = f"\n      -> {p.phonemes}" if p.phonemes else ""  # what a phoneme voice reads
        ctx.echo(f"    {sentence}\n      -> {p.normalized}{read}")
        lines.append(f"{sentence}\t{p.normalized}\t{' '.join(map(str, p.ids))}")
    out = ctx.workdir / "text_frontend.tsv"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (ctx.workdir / "symbols.json").write_text(
        json.dumps(fe.symbols.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return f"{len(fe.symbols)} symbols; samples written to {out}"


def _pretrained(ctx: Context, which: str) -> Path | None:
    """The shipped checkpoint for this language, if it matches the job's config (and
    ``--train`` was not given)."""
    if ctx.train:
        return None
    from .pretrained import pretrained_run

    run = pretrained_run(ctx.lang, which, missing_ok=True)
    if run is None:
        return None
    differ = shipped_differences(load_config(RunPaths(run).config), ctx.config)
    if differ:
        ctx.echo(f"    the shipped {ctx.lang} {which} does not fit this config ({'; '.join(differ[:4])}"
                 f"{'; ...' if len(differ) > 4 else ''}): training one here")
        return None
    return run


# The corpus and its split: the main job's in-domain test sentences are held out from a shipped
# model only if its corpus is generated and split the same way as the one the model trained on.
SPLIT_KEYS = ("corpus_format", "databaker_text", "corpus_size", "split_seed", "val_size", "test_size")


def shipped_differences(shipped: Config, cfg: Config) -> list[str]:
    """What keeps a shipped model from standing in for one trained with ``cfg``: every
    ``section.key = value`` of ``[audio]``, ``[text]``, ``[model]`` and the corpus split that
    differs (empty when the model fits).

    Example:
        >>> shipped_differences(load_config("voice_zh"), load_config("quick_zh"))
        []
        >>> shipped_differences(load_config("voice_zh"), load_config("espeak_zh"))[:2]
        ['audio.sample_rate = 22050 (shipped: 16000)', 'audio.fmax = 11025.0 (shipped: 8000.0)']
    """
    out, here, there = [], cfg.to_dict(), shipped.to_dict()
    for section in ("audio", "text", "model", "data"):
        mine, theirs = here[section], there[section]
        keys = SPLIT_KEYS if section == "data" else mine.keys()
        out += [f"{section}.{k} = {mine[k]!r} (shipped: {theirs[k]!r})" for k in keys if mine[k] != theirs[k]]
    return out


def _use_pretrained(ctx: Context, which: str, dest: Path) -> str | None:
    import shutil

    src = _pretrained(ctx, which)
    if src is None:
        return None
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    return f"the shipped pretrained {which} ({src.name}); `tacokd run --train` retrains it here"


def _finished(result, what: str) -> None:
    if result.status != "finished":
        raise PipelineError(f"{what} stopped at step {result.step} ({result.status}); "
                            "run the same command again to resume")


def _stage_teacher(ctx: Context) -> str:
    from .train import train

    run = ctx.workdir / "teacher"
    used = _use_pretrained(ctx, "teacher", run)
    if used:
        return used
    result = train(ctx.config, ctx.workdir / "data", run, mode="teacher", echo=ctx.echo)
    _finished(result, "teacher training")
    return f"teacher trained to step {result.step} in {result.seconds / 60:.1f} min: {run}"


def _stage_student(ctx: Context) -> str:
    from .distill import distill

    run = ctx.workdir / "student"
    if ctx.done.get("teacher", "").startswith("the shipped"):  # a shipped student goes with it
        used = _use_pretrained(ctx, "student", run)
        if used:
            return used
    result = distill(ctx.config, ctx.workdir / "data", ctx.workdir / "teacher", run, echo=ctx.echo)
    _finished(result, "distillation")
    return f"student distilled to step {result.step} in {result.seconds / 60:.1f} min: {run}"


def _stage_evaluate(ctx: Context) -> str:
    from .evaluate.runner import run_evaluation

    runs = [ctx.workdir / "teacher", ctx.workdir / "student"]
    names = ["teacher-FR", "KD-student"]
    # pocketsphinx runs at about real time on this CPU and DNSMOS takes ~2 s a clip: the hard
    # set gets the attention counts (ASR is weak on letters and spellings anyway) and ASR
    # checks the in-domain sentences; `tacokd evaluate` computes everything
    bar = lambda n: ctx.progress(n, "    synthesize + measure")  # noqa: E731
    hard = run_evaluation(runs, ctx.workdir / "eval" / "hard", names=names, sentences="builtin-hard",
                          metrics=["attention", "intelligibility"], progress_factory=bar)
    indomain = run_evaluation(runs, ctx.workdir / "eval" / "indomain", names=names,
                              sentences="builtin-indomain", metrics=["attention", "intelligibility", "asr", "mcd"],
                              limit=min(30, ctx.config.eval.limit or 30),
                              data_dir=ctx.workdir / "data", progress_factory=bar)
    judge_key, judge_name = ("judge_wer", "judge WER") if ctx.lang == "en" else ("judge_ser", "judge syllable error")
    parts = []
    for name in names:
        h = hard["systems"][name]
        parts.append(f"{name}: {h.get('skips', 0)} skips, {h.get('repeats', 0)} repeats, "
                     f"{h.get('incomplete', 0)}/{h['utterances']} incomplete"
                     + (f", {judge_name} {100 * h[judge_key]:.1f}%" if h.get(judge_key) is not None else ""))
    checks = []
    for name in names:
        s = indomain["systems"][name]
        checks.append(f"in-domain {name}: diagonal {s.get('diagonal_score', 0):.2f}"
                      + (f", {judge_name} {100 * s[judge_key]:.1f}%" if s.get(judge_key) is not None else "")
                      + (f", modulation {s['modulation_ratio']:.2f} / GV {s['gv_ratio']:.2f} of natural"
                         if "modulation_ratio" in s else "")
                      + (f", pocketsphinx WER {100 * s['wer']:.1f}%" if "wer" in s else "")
                      + f", MCD {s.get('mcd', float('nan')):.2f} dB")
    from .evaluate.report import held_out_note, paired_judge_note

    hard_note, in_note = (paired_judge_note(r, names[0], names[1], judge_name) for r in (hard, indomain))
    parts += [hard_note] if hard_note else []
    checks += [f"in-domain: {in_note}"] if in_note else []
    held = held_out_note(indomain["info"].get("held_out"))
    if held:  # shipped models: the job's corpus shares sentences with the one they trained on
        checks.append(f"in-domain: {indomain['systems'][names[0]]['utterances']} sentences, {held}")
    check = "; ".join(checks)
    ctx.echo("    hard set — " + "; ".join(parts))
    for c in checks:
        ctx.echo("    " + c)
    return f"hard set: {'; '.join(parts)}. {check}. Reports: {ctx.workdir / 'eval'}/*/report.md"


def _stage_export(ctx: Context) -> str:
    from .export import export_tflite

    out = ctx.workdir / "export" / f"student_{ctx.lang}.tflite"
    result = export_tflite(ctx.workdir / "student", out, quantize="dynamic")
    ctx.echo(result.summary())
    return f"{out} ({result.size_bytes / 1e6:.1f} MB, dynamic int8, builtin ops only) + {out.with_suffix('.json').name}"


def _stage_demo(ctx: Context) -> str:
    import subprocess
    import sys

    model = ctx.workdir / "export" / f"student_{ctx.lang}.tflite"
    wav = ctx.workdir / "demo.wav"
    text = SAMPLE_SENTENCES[ctx.lang][0]
    demo = Path(__file__).resolve().parent.parent / "mobile_demo" / "synthesize.py"
    if demo.is_file():  # a checkout: the demo script itself, in a process without TensorFlow
        # a model that does not stop is reported below, not a reason to lose the demo
        cmd = [sys.executable, str(demo), "--model", str(model), text, "--out", str(wav), "--allow-incomplete"]
    else:  # an installed wheel has no mobile_demo/: the same code from tf_tacokd.lite
        code = ("import sys; from tf_tacokd.lite import LiteSynthesizer, write_wav; "
                "s = LiteSynthesizer(sys.argv[1]); w, ms, info = s.synthesize(sys.argv[2]); "
                "write_wav(sys.argv[3], w, s.sample_rate); "
                "print(f'text->mel {ms[\"text_to_mel\"]:.0f} ms, Griffin-Lim {ms[\"griffin_lim\"]:.0f} ms')")
        cmd = [sys.executable, "-c", code, str(model), text, str(wav)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise PipelineError(f"the TFLite demo failed: {proc.stderr.strip()[-800:]}")
    for line in proc.stdout.strip().splitlines():
        ctx.echo(f"    {line}")
    for line in proc.stderr.strip().splitlines():
        if line.startswith("error: no stop token"):
            ctx.echo(f"    warning: {line[len('error: '):]}")
    return f"{text!r} -> {wav} (TFLite, no TensorFlow in the process)"


STAGES: list[Stage] = [
    Stage("check", "check espeak-ng, its voice and TensorFlow", _stage_check, always=True),
    Stage("config", "resolve the config into the work directory", _stage_config, always=True),
    Stage("text", "text front end on sample and hard sentences", _stage_text, ("text",)),
    Stage("corpus", "build the built-in espeak-ng corpus (tacokd make-corpus)", _stage_corpus,
          ("text", "data"), ("corpus",)),
    Stage("preprocess", "log-mel features and TFRecord shards (tacokd preprocess)", _stage_preprocess,
          ("audio",), ("data",)),
    Stage("teacher", "the teacher Tacotron2, teacher forcing (tacokd train)", _stage_teacher,
          ("model", "train"), ("teacher",)),
    Stage("student", "the free-running KD student, lambda from the config (tacokd distill)", _stage_student,
          ("distill",), ("student",)),
    Stage("evaluate", "teacher (free running) vs student on the hard set + in-domain check (tacokd evaluate)",
          _stage_evaluate, ("eval",), ("eval",)),
    Stage("export", "the student to TFLite, builtin ops, verified against TF (tacokd export)", _stage_export,
          ("export",), ("export",)),
    Stage("demo", "synthesize a sentence with the TFLite model (mobile_demo)", _stage_demo),
]


def _stage_keys(cfg: Config) -> dict[str, str]:
    """Per stage: a hash of the config sections it and the stages before it depend on."""
    import dataclasses
    import hashlib

    keys, seen = {}, set()
    for stage in STAGES:
        seen.update(stage.sections)
        blob = json.dumps({name: dataclasses.asdict(getattr(cfg, name)) for name in sorted(seen)},
                          sort_keys=True, default=str)
        keys[stage.name] = hashlib.sha256(blob.encode()).hexdigest()[:KEY_CHARS]
    return keys


def _models_key(lang: str, cfg: Config, train: bool) -> str:
    """What the model stages' results depend on besides the config: models trained here, or
    which shipped models (each named by its content hash). After an upgrade that ships other
    models, a re-run redoes the model stages instead of reporting the old models' results."""
    if train:
        return "-trained"
    from .pretrained import pretrained_run

    names = []
    for which in ("teacher", "student"):
        run = pretrained_run(lang, which, missing_ok=True)
        fits = run is not None and not shipped_differences(load_config(RunPaths(run).config), cfg)
        names.append(run.name if fits else "none")
    return "-shipped-" + "-".join(names)


def run_pipeline(
    lang: str,
    workdir: str | Path,
    config: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    force: bool = False,
    echo: Callable[[str], None] = print,
    train: bool = False,
    progress: Callable[[int, str], Any] | None = None,
) -> dict[str, str]:
    """Run the main job: corpus, features, teacher, student, evaluation, export, demo.

    Args:
        lang: "en" or "zh".
        workdir: where everything is written; re-running with the same config resumes.
        config: a config path or built-in name (default: ``quick_<lang>``, sized to train
            teacher and student in about 30 minutes on 2 CPU cores).
        overrides: ``section.key=value`` strings.
        force: redo stages that are already done.
        echo: where progress lines go.
        train: train teacher and student here even when shipped pretrained checkpoints
            match the config (they are used otherwise, so the job takes minutes).
        progress: ``(length, label)`` -> a context manager with ``update(n)``, for the long
            stages (the CLI passes ``click.progressbar``; default: nothing shown).

    Returns:
        The summary line of each stage that ran or was already done, by stage name.
    """
    if lang not in ESPEAK_VOICES:
        raise PipelineError(f"unknown language {lang!r}: expected one of {sorted(ESPEAK_VOICES)}")
    cfg = load_config(config or f"quick_{lang}", overrides)
    if cfg.text.language != lang:
        raise PipelineError(
            f"config {cfg.source} is for text.language={cfg.text.language!r}, not {lang!r}"
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    state_path = workdir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() and not force else {}
    suffix = _models_key(lang, cfg, train)
    keys = {k: v + suffix if k in MODEL_STAGES else v for k, v in _stage_keys(cfg).items()}
    done: dict[str, dict[str, str]] = {k: v for k, v in state.get("done", {}).items() if isinstance(v, dict)}
    state["done"] = done
    ctx = Context(lang, cfg, workdir, echo, train, {k: v["summary"] for k, v in done.items()})
    if progress is not None:
        ctx.progress = progress
    results: dict[str, str] = {}
    for i, stage in enumerate(STAGES, 1):
        prefix = f"[{i}/{len(STAGES)}] {stage.name}: {stage.description}"
        entry = done.get(stage.name)
        if entry and entry.get("key") == keys[stage.name] and not stage.always:
            echo(f"{prefix} ... already done ({entry['summary']})")
            results[stage.name] = entry["summary"]
            continue
        if entry and not stage.always:  # keys are cumulative: a change redoes what follows too
            config_key = keys[stage.name][:KEY_CHARS]
            why = ("the config changed for it or an earlier stage" if entry.get("key", "")[:KEY_CHARS] != config_key
                   else "trained here before, or other shipped models" if suffix.startswith("-shipped")
                   else "shipped models used before")
            echo(f"{prefix} ... redoing ({why})")
            for name in stage.outputs:
                shutil.rmtree(workdir / name, ignore_errors=True)
        else:
            echo(f"{prefix} ...")
        start = time.perf_counter()
        summary = stage.run(ctx)
        echo(f"    done in {time.perf_counter() - start:.1f} s: {summary}")
        done[stage.name] = {"summary": summary, "key": keys[stage.name]}
        ctx.done[stage.name] = summary
        results[stage.name] = summary
        write_json(state_path, state, ensure_ascii=False)
    w = workdir.resolve()
    echo(f"\nEverything is in {w}:")
    for what, path in (("wav (TFLite, on-device demo)", w / "demo.wav"),
                       ("report, hard set", w / "eval" / "hard" / "report.md"),
                       ("report, in-domain", w / "eval" / "indomain" / "report.md"),
                       ("plots", w / "eval" / "hard" / "errors.png"),
                       ("alignment plots", w / "eval" / "hard" / "alignments"),
                       ("TFLite model", w / "export" / f"student_{lang}.tflite"),
                       ("runs (TensorBoard: tensorboard --logdir)", w / "teacher")):
        echo(f"  {what}: {path}")
    return results
