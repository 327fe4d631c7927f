"""The main job: the whole method on the built-in espeak-ng corpus, stage by stage.

Each stage records its completion in ``<workdir>/state.json`` (with the config hash),
so re-running resumes instead of starting over; ``force=True`` redoes everything.
Stages that this version of the package does not have yet are listed as next steps
instead of being faked.

Example:
    >>> from tf_tacokd.pipeline import run_pipeline
    >>> run_pipeline("en", "work/en")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import Config, load_config
from .data.corpora import ESPEAK_VOICES, EspeakMissingError, check_espeak_voice
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

class PipelineError(RuntimeError):
    """A stage of the main job failed; the message says what to do."""


@dataclass
class Context:
    """What the stages share: language, config, where to write, how to report."""

    lang: str
    config: Config
    workdir: Path
    echo: Callable[[str], None]


@dataclass(frozen=True)
class Stage:
    """One step of the main job. ``run`` is None for steps not in this version yet."""

    name: str
    description: str
    run: Callable[[Context], str] | None
    always: bool = False  # re-run every time (checks of the machine), never cached
    hint: str = ""  # for a step not in the main job yet: the command that does it by hand


def _stage_check(ctx: Context) -> str:
    try:
        espeak = check_espeak_voice(ctx.lang)
    except EspeakMissingError as e:
        raise PipelineError(str(e)) from None
    tf_version = importlib.metadata.version("tensorflow")
    return f"{espeak}; voice {ESPEAK_VOICES[ctx.lang]}; tensorflow {tf_version}"


def _stage_corpus(ctx: Context) -> str:
    import click

    from .data.corpora import make_corpus

    size = ctx.config.data.corpus_size
    with click.progressbar(length=size, label="    espeak-ng") as bar:
        summary = make_corpus(ctx.lang, ctx.workdir / "corpus", size=size,  # type: ignore[arg-type]
                              seed=ctx.config.data.split_seed, progress=bar.update)
    skipped = f", {len(summary.skipped)} sentences skipped" if summary.skipped else ""
    return f"{summary.count} utterances, {summary.hours:.2f} h of audio{skipped}"


def _stage_preprocess(ctx: Context) -> str:
    import os

    import click

    from .data.preprocess import preprocess

    size = ctx.config.data.corpus_size
    with click.progressbar(length=size, label="    features") as bar:
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
        ctx.echo(f"    {sentence}\n      -> {p.normalized}")
        lines.append(f"{sentence}\t{p.normalized}\t{' '.join(map(str, p.ids))}")
    out = ctx.workdir / "text_frontend.tsv"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (ctx.workdir / "symbols.json").write_text(
        json.dumps(fe.symbols.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return f"{len(fe.symbols)} symbols; samples written to {out}"


STAGES: list[Stage] = [
    Stage("check", "check espeak-ng, its voice and TensorFlow", _stage_check, always=True),
    Stage("config", "resolve the espeak config into the work directory", _stage_config),
    Stage("text", "text front end on sample and hard sentences", _stage_text),
    Stage("corpus", "build the built-in espeak-ng corpus (tacokd make-corpus)", _stage_corpus),
    Stage("preprocess", "log-mel features and TFRecord shards (tacokd preprocess)", _stage_preprocess),
    Stage("teacher", "train the teacher Tacotron2 with teacher forcing (tacokd train)", None,
          hint="tacokd train --config {config} --data {workdir}/data --mode teacher "
               "--out {workdir}/teacher   # hours on 2 CPU cores with the espeak config"),
    Stage("student", "distil the free-running student, lambda = 1.0 (tacokd distill)", None),
    Stage("evaluate", "skips/repeats/WER on the built-in hard set (tacokd evaluate)", None),
    Stage("export", "export the student to TFLite, verified against TF (tacokd export)", None),
    Stage("demo", "synthesize a sentence on the TFLite model (mobile_demo)", None),
]


def run_pipeline(
    lang: str,
    workdir: str | Path,
    config: str | Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run the main job as far as this version of the package goes.

    Args:
        lang: "en" or "zh".
        workdir: where everything is written; re-running with the same config resumes.
        config: a config path or built-in name (default: ``espeak_<lang>``).
        overrides: ``section.key=value`` strings.
        force: redo stages that are already done.
        echo: where progress lines go.

    Returns:
        The summary line of each stage that ran or was already done, by stage name.
    """
    if lang not in ESPEAK_VOICES:
        raise PipelineError(f"unknown language {lang!r}: expected one of {sorted(ESPEAK_VOICES)}")
    cfg = load_config(config or f"espeak_{lang}", overrides)
    if cfg.text.language != lang:
        raise PipelineError(
            f"config {cfg.source} is for text.language={cfg.text.language!r}, not {lang!r}"
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    state_path = workdir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() and not force else {}
    if state.get("config_hash") not in (None, cfg.hash()):
        echo(f"config changed since the last run in {workdir}: redoing every stage")
        state = {}
    state["config_hash"] = cfg.hash()
    done: dict[str, str] = state.setdefault("done", {})
    ctx = Context(lang, cfg, workdir, echo)
    available = [s for s in STAGES if s.run is not None]
    results: dict[str, str] = {}
    for i, stage in enumerate(available, 1):
        prefix = f"[{i}/{len(available)}] {stage.name}: {stage.description}"
        if stage.name in done and not stage.always:
            echo(f"{prefix} ... already done ({done[stage.name]})")
            results[stage.name] = done[stage.name]
            continue
        echo(f"{prefix} ...")
        start = time.perf_counter()
        assert stage.run is not None
        summary = stage.run(ctx)
        echo(f"    done in {time.perf_counter() - start:.1f} s: {summary}")
        done[stage.name] = summary
        results[stage.name] = summary
        state_path.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
    pending = [s for s in STAGES if s.run is None]
    if pending:
        echo("\nNot in this version of tf_tacokd yet (next steps of the main job):")
        for stage in pending:
            echo(f"  - {stage.name}: {stage.description}")
            if stage.hint:
                echo("      by hand: " + stage.hint.format(config=cfg.source.split(" --set")[0],
                                                        workdir=workdir))
    echo(f"\nEverything is in {workdir.resolve()}")
    return results
