"""Synthesise a test set with one or more trained systems and measure every utterance.

Each system (a run directory) reads every sentence as one utterance with seed ``seed + i``
for sentence ``i`` (prenet dropout and Griffin-Lim phase), so the systems are compared on the
same noise; ASR hears the same seeded noise floor. Prenet dropout stays on at inference
(Tacotron 2), so one reading is one random draw: with ``draws = D`` every sentence is read
``D`` times, draw ``k`` with seed ``seed + i + k * DRAW_STRIDE`` (draw 0 is the single reading,
so a one-draw evaluation is the first draw of a longer one), and the report compares systems
on each sentence's mean over its draws. Per utterance: the attention metrics
(:mod:`.alignment`), the intelligibility judge's transcript and error rates
(:mod:`tf_tacokd.judge`, :mod:`.intelligibility`), English pocketsphinx ASR errors
(:mod:`.asr`), DNSMOS and MCD against a reference recording (:mod:`.quality`). The
reference is the natural recording in domain; for any other sentence (hard sets, files)
espeak-ng renders the normalised text into ``OUT/reference/``, so MCD and the duration
ratio exist out of domain too (for the built-in espeak-ng voices that rendering *is* the
natural voice). Metrics whose package or judge is missing are reported as "not installed";
the others still run.

Finished utterances are cached in ``OUT/.cache/<system>.jsonl`` (keyed by the model file's
hash, the seed, the metrics, the judge's weights and the sentence's text): an interrupted
evaluation resumes, the report says how many utterances were reused, and a failing utterance is recorded
with its error instead of stopping the job (``strict=True`` stops).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..atomic import atomic_path
from .alignment import analyze_alignment
from .asr import SpeechRecognizer, asr_available, word_errors
from .quality import dnsmos, dnsmos_available, mcd, mcd_available, speech_structure
from .testsets import TestSentence

__all__ = ["DRAW_STRIDE", "METRICS", "System", "draw_seed", "evaluate_systems", "metric_status"]

METRICS = ("attention", "intelligibility", "asr", "dnsmos", "mcd")

#: seed distance between two draws of one sentence (larger than any test set, so no two
#: readings of a set share a seed)
DRAW_STRIDE = 100_003


def draw_seed(seed: int, index: int, draw: int) -> int:
    """The seed of draw ``draw`` of sentence ``index``: ``seed + index + draw * DRAW_STRIDE``.

    Example:
        >>> draw_seed(1234, 5, 0), draw_seed(1234, 5, 2)
        (1239, 201245)
    """
    return seed + index + draw * DRAW_STRIDE


def draw_name(sentence_id: str, draw: int) -> str:
    """File stem of one reading: the sentence id for draw 0, ``<id>.d<k>`` after it."""
    return sentence_id if draw == 0 else f"{sentence_id}.d{draw}"


@dataclass
class System:
    """A trained model under evaluation; its model is loaded on first use (``synthesizer``), so
    a process that only reads cached readings (``run_evaluation`` with workers) never loads it."""

    name: str
    run_dir: Path
    model_path: Path
    model_hash: str
    language: str
    frames_per_token: float | None = None  # the training data's speaking rate (duration ratio)

    @classmethod
    def load(cls, name: str, source: str | Path) -> "System":
        """``source``: a run directory (its ``model.keras``) or a ``.keras`` file in a run
        directory or its ``snapshots/`` (read with that run's config and data)."""
        from ..runs import load_run, run_and_model

        run_dir, model = run_and_model(source)
        digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
        language = load_run(run_dir).config.text.language
        return cls(name, run_dir, model, digest, language, _frames_per_token(run_dir))

    @functools.cached_property
    def synthesizer(self):  # -> tf_tacokd.synthesize.Synthesizer
        from ..synthesize import Synthesizer

        return Synthesizer.from_run(self.run_dir, self.model_path)


def _frames_per_token(run_dir: Path) -> float | None:
    """Median mel frames per text token of the run's training data (None if unknown)."""
    from ..data.dataset import load_manifest
    from ..runs import load_run

    try:
        manifest = load_manifest(load_run(run_dir).data["data_dir"]).data
        frames = manifest["frame_length_percentiles"][10]
        tokens = manifest["text_length_percentiles"][10]
        return float(frames) / float(tokens) if tokens else None
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return None


def metric_status(names: Sequence[str], language: str, sentences: Sequence[TestSentence],
                  judge_dir: str | Path | None = None) -> dict[str, str]:
    """"ok", or why a metric column stays empty ("not installed", "not applicable ...")."""
    from ..judge import available_judges

    status = {}
    for name in names:
        if name == "attention":
            status[name] = "ok"
        elif name == "intelligibility":
            import shutil

            if language == "en" and shutil.which("espeak-ng") is None:
                status[name] = "not installed (the English judge's references need espeak-ng)"
            else:
                status[name] = ("ok" if judge_dir is not None or language in available_judges() else
                                f"not installed (no {language} judge: `tacokd judge train --lang {language}` "
                                "and pass --judge)")
        elif name == "asr":
            status[name] = ("not applicable (no offline Mandarin ASR)" if language != "en"
                            else "ok" if asr_available() else "not installed")
        elif name == "dnsmos":
            status[name] = "ok" if dnsmos_available() else "not installed"
        elif name == "mcd":
            status[name] = "ok" if mcd_available() else "not installed"
        else:
            raise ValueError(f"unknown metric {name!r}: choose from {', '.join(METRICS)}")
    return status


@dataclass
class _Tools:
    status: dict[str, str]
    asr: SpeechRecognizer | None = None
    noise_dbfs: float = -50.0
    eval_cfg: Any = None
    judge: Any = None  # tf_tacokd.judge.Judge


def render_references(sentences: Sequence[TestSentence], lang: str, out: Path) -> list[TestSentence]:
    """Give every sentence without a recording espeak-ng's rendering of its normalised text
    (``out/reference/<id>-<hash>.wav``, reused while the text is unchanged)."""
    import dataclasses

    from ..data.corpora import EspeakMissingError, check_espeak_voice, espeak_render, spoken_text
    from ..text import TextFrontEnd

    if all(s.audio is not None for s in sentences):
        return list(sentences)
    try:
        check_espeak_voice(lang)
    except EspeakMissingError:
        return list(sentences)
    import soundfile as sf

    fe = TextFrontEnd(lang)
    folder = out / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    for s in sentences:
        if s.audio is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    spoken = spoken_text(fe, s.text, lang)
                except ValueError:
                    done.append(s)
                    continue
            digest = hashlib.sha256(spoken.encode()).hexdigest()[:10]
            path = folder / f"{s.id}-{digest}.wav"
            if not path.is_file():
                wav, sr = espeak_render(spoken, lang)
                with atomic_path(path) as tmp:
                    sf.write(str(tmp), wav, sr, format="WAV")
            s = dataclasses.replace(s, audio=path)
        done.append(s)
    return done


@functools.lru_cache(maxsize=4096)
def _reference_structure(path: str) -> tuple[float, float]:
    import soundfile as sf

    wav, sr = sf.read(path, dtype="float32")
    return speech_structure(wav, sr)


@functools.lru_cache(maxsize=4096)
def _reference_frames(path: str, audio_cfg) -> int:
    """Mel frames of a reference recording as preprocessing would count them (trimmed; a
    reference outside the training duration range, such as a lone letter, still counts)."""
    import dataclasses

    from ..audio import load_audio

    unbounded = dataclasses.replace(audio_cfg, min_duration=0.0, max_duration=float("inf"))
    return 1 + len(load_audio(path, unbounded)) // audio_cfg.hop_length


def _measure(system: System, sentence: TestSentence, seed: int, draw: int, out: Path,
             tools: _Tools, max_steps: int | None) -> dict[str, Any]:
    """One reading of ``sentence`` (draw ``draw``, seeded with ``seed``) and its metrics."""
    synth, cfg = system.synthesizer, system.synthesizer.config
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = synth.synthesize(sentence.text, seed=seed, max_steps=max_steps, split=False)
    synth_ms = (time.perf_counter() - t0) * 1000
    stem = draw_name(sentence.id, draw)
    wav_path = out / "wavs" / system.name / f"{stem}.wav"
    result.save(wav_path)
    align, tokens = result.alignments[0], result.tokens[0]
    png = out / "alignments" / system.name / f"{stem}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    result.plot(png)
    r = cfg.model.reduction_factor
    if sentence.frames:
        expected = math.ceil(sentence.frames / r)
    elif sentence.audio is not None and Path(sentence.audio).is_file():
        expected = math.ceil(_reference_frames(str(sentence.audio), cfg.audio) / r)
    elif system.frames_per_token:
        expected = (len(tokens) + 1) * system.frames_per_token / r
    else:
        expected = None
    e = tools.eval_cfg
    m = analyze_alignment(align, tokens, result.finished[0], expected, e.skip_threshold,
                          e.repeat_tokens, e.incomplete_tail_tokens)
    row: dict[str, Any] = {
        "system": system.name, "id": sentence.id, "category": sentence.category, "text": sentence.text,
        "normalized": result.normalized[0], "seed": seed, "draw": draw, "status": "ok",
        "frames": int(result.mels[0].shape[0]), "seconds": round(result.seconds, 3),
        "synth_ms": round(synth_ms, 1), **m.as_dict(),
        "wav": str(wav_path.relative_to(out)), "alignment_png": str(png.relative_to(out)),
    }
    if tools.status.get("intelligibility") == "ok":
        from ..judge import label_text
        from .intelligibility import label_scores

        heard = tools.judge.transcribe([result.wav], result.sample_rate)[0]
        reference = label_text(result.normalized[0], system.language)
        row["judge_transcript"], row["judge_reference"] = heard, reference
        row["judge_trained_on"] = tools.judge.heard([reference])[0]  # should never be True
        row.update({f"judge_{k}": v for k, v in label_scores(reference, heard, system.language).items()})
    if tools.status.get("asr") == "ok":
        hyp = tools.asr.transcribe(result.wav, result.sample_rate, seed=seed)
        row["asr_hypothesis"] = hyp
        row.update({k: v for k, v in word_errors(result.normalized[0], hyp).as_dict().items()})
    if tools.status.get("dnsmos") == "ok":
        if np.any(result.wav):
            row.update({f"dnsmos_{k}": v for k, v in dnsmos(result.wav, result.sample_rate).items()})
    if sentence.audio is not None and Path(sentence.audio).is_file():
        if tools.status.get("mcd") == "ok":
            row["mcd"] = mcd(sentence.audio, wav_path)
        row["modulation"], row["gv"] = speech_structure(result.wav, result.sample_rate)
        row["ref_modulation"], row["ref_gv"] = _reference_structure(str(sentence.audio))
    return row


def _load_cache(path: Path, key: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """Finished readings in a cache file, by (sentence id, draw); rows written before draws
    existed are draw 0."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interruption
        if entry.get("key") == key and entry["row"].get("status") == "ok":
            rows[(entry["row"]["id"], int(entry["row"].get("draw", 0)))] = entry["row"]
    return rows


def evaluate_systems(
    systems: Sequence[System],
    sentences: Sequence[TestSentence],
    out: str | Path,
    seed: int,
    eval_cfg,
    metrics: Sequence[str] = METRICS,
    max_steps: int | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    judge_dir: str | Path | None = None,
    draws: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Synthesise and measure every sentence with every system.

    Args:
        systems: the systems (all of one language).
        sentences: what to read.
        out: output directory (wavs/, alignments/, .cache/).
        seed: sentence ``i`` uses seed ``seed + i`` in every system (draw ``k``: :func:`draw_seed`).
        eval_cfg: the ``[eval]`` config section (thresholds, ASR noise level).
        metrics: a subset of :data:`METRICS`.
        max_steps: decoder step bound (default: each model's ``max_decoder_steps``).
        strict: raise on the first failing utterance instead of recording it.
        progress: called with 1 after each utterance.
        judge_dir: a judge directory for the intelligibility metrics (default: the shipped judge).
        draws: readings of each sentence per system (prenet dropout draws), at least 1.

    Returns:
        ``(rows, status)``: one dict per (system, sentence, draw), and each metric's status.

    Many parameters because it is :func:`run_evaluation` after the systems are loaded, with the
    same options.
    """
    if not systems:
        raise ValueError("no systems to evaluate")
    if draws < 1:
        raise ValueError(f"draws must be at least 1 (got {draws})")
    if len(sentences) > DRAW_STRIDE:
        raise ValueError(f"{len(sentences)} sentences: at most {DRAW_STRIDE} per evaluation")
    languages = {s.language for s in systems}
    if len(languages) > 1:
        raise ValueError(f"systems of different languages cannot share a test set: "
                         f"{', '.join(f'{s.name}={s.language}' for s in systems)}")
    out = Path(out)
    (out / ".cache").mkdir(parents=True, exist_ok=True)
    language = languages.pop()
    status = metric_status(metrics, language, sentences, judge_dir)
    tools = _Tools(status, eval_cfg=eval_cfg)
    if status.get("intelligibility") == "ok":
        from ..judge import Judge

        tools.judge = Judge.load(language, judge_dir)
    if status.get("mcd") == "ok" or "attention" in status:
        sentences = render_references(sentences, language, out)
    if status.get("asr") == "ok":
        tools.asr = SpeechRecognizer(eval_cfg.asr_noise_dbfs)
    rows: list[dict[str, Any]] = []
    texts = {s.id: s.text for s in sentences}
    seeds = {(s.id, d): draw_seed(seed, i, d) for i, s in enumerate(sentences) for d in range(draws)}
    for system in systems:
        key = {"model": system.model_hash, "seed": seed, "max_steps": max_steps,
               "judge": _judge_key(tools.judge),
               "metrics": sorted(k for k, v in status.items() if v == "ok"),
               "eval": {k: getattr(eval_cfg, k) for k in ("skip_threshold", "repeat_tokens",
                                                          "incomplete_tail_tokens", "asr_noise_dbfs")}}
        cache_path = out / ".cache" / f"{system.name}.jsonl"
        cached = {k: row for k, row in _load_cache(cache_path, key).items() if _still_valid(row, texts, seeds, out)}
        if any((s.id, d) not in cached for d in range(draws) for s in sentences):
            system.synthesizer  # noqa: B018 - load now: a bad model stops here, not as an error row per reading
        with cache_path.open("a", encoding="utf-8") as cache:
            for draw in range(draws):
                for i, sentence in enumerate(sentences):
                    row = _reading(system, sentence, draw_seed(seed, i, draw), draw, cached.get((sentence.id, draw)),
                                   out, tools, max_steps, strict, (cache, key))
                    rows.append(row)
                    if progress:
                        progress(1)
    return rows, status


def _still_valid(row: dict[str, Any], texts: Mapping[str, str], seeds: Mapping[tuple[str, int], int],
                 out: Path) -> bool:
    """A cached reading still stands: its sentence (``texts``: text by sentence id) has the same
    text (a sentence file may have changed under the id), it was read with the seed it would get
    now (``seeds``: by sentence id and draw; a sentence moved in its file gets another, and a
    fresh run would read it so) and its wav is still on disk."""
    key = (row.get("id"), int(row.get("draw", 0)))
    return (row.get("text") == texts.get(row.get("id")) and row.get("seed") == seeds.get(key)
            and "wav" in row and (out / row["wav"]).is_file())


def _reading(system: System, sentence: TestSentence, seed: int, draw: int, row: dict[str, Any] | None,
             out: Path, tools: _Tools, max_steps: int | None, strict: bool,
             cache: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    """One reading from the cache (``row``, checked by :func:`_still_valid`), else measured and written to
    ``cache`` (the open file, the system's cache key); a failure becomes an error row unless
    ``strict``.

    Many parameters because it is one step of :func:`evaluate_systems`' loop and needs its state.
    """
    if row is not None:
        return {**row, "draw": draw, "reused": True}
    try:
        row = _measure(system, sentence, seed, draw, out, tools, max_steps)
    except Exception as e:  # noqa: BLE001 - one bad item must not stop the batch
        if strict:
            where = f"{sentence.id} draw {draw}" if draw else sentence.id
            raise RuntimeError(f"{system.name}: {where} ({sentence.text!r}): {e}") from e
        row = {"system": system.name, "id": sentence.id, "category": sentence.category,
               "text": sentence.text, "seed": seed, "draw": draw,
               "status": f"error: {type(e).__name__}: {e}"}
    file, key = cache
    file.write(json.dumps({"key": key, "row": row}, default=_json_default) + "\n")
    file.flush()
    return row


def _in_workers(tasks: list[dict[str, Any]], workers: int):
    """Run :func:`_evaluate_one` on each task in worker processes (a fresh one per system, so
    that none accumulates models); yields each system's result as it finishes. Leaving early
    (an error, Ctrl-C) stops the workers; the readings already cached stay."""
    from ..workers import single_thread_pool

    with single_thread_pool(min(workers, len(tasks)), maxtasksperchild=1) as pool:
        yield from pool.imap_unordered(_evaluate_one, tasks)


def _evaluate_one(task: dict[str, Any]) -> tuple[str, list[tuple[str, int]], int]:
    """Worker: evaluate one system into its cache (``OUT/.cache/<name>.jsonl``); returns its
    name, the (sentence id, draw) readings it measured (not found in the cache) and its count."""
    system = System.load(task["name"], task["run"])
    rows, _ = evaluate_systems([system], task["sentences"], task["out"], task["seed"], task["eval_cfg"],
                               task["metrics"], task["max_steps"], task["strict"], None, task["judge_dir"],
                               task["draws"])
    return system.name, [(r["id"], r["draw"]) for r in rows if not r.get("reused")], len(rows)


def _judge_key(judge) -> str | None:
    """A fingerprint of the judge's weights (cached rows are re-scored when it changes)."""
    if judge is None:
        return None
    h = hashlib.sha256()
    for w in judge.model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:16]


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.bool_):
        return bool(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def run_evaluation(
    runs: Sequence[str | Path],
    out: str | Path,
    names: Sequence[str] | None = None,
    sentences: str = "builtin-hard",
    lang: str | None = None,
    seed: int | None = None,
    metrics: Sequence[str] = METRICS,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    max_steps: int | None = None,
    strict: bool = False,
    progress_factory: Callable[[int], Any] | None = None,
    judge_dir: str | Path | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    draws: int = 1,
    workers: int = 1,
) -> dict[str, Any]:
    """Evaluate trained runs on a test set and write the report (the API behind ``tacokd evaluate``).

    Args:
        runs: run directories (each with ``model.keras``, ``config.toml``, ``data.json``), or
            ``.keras`` files in one or in its ``snapshots/`` (default name ``RUN-model-0008000``).
        out: output directory.
        names: one display name per run (default: the run directory names).
        sentences: ``builtin-hard``, ``builtin-indomain`` or a sentence file.
        lang: expected language (checked against the runs; default: the runs' language).
        seed: base seed (default ``eval.seed`` of the first run's config).
        metrics: a subset of :data:`METRICS`.
        limit: evaluate only the first ``limit`` sentences (default ``eval.limit``; 0 = all).
        data_dir: preprocessed data for ``builtin-indomain`` (default: the first run's data).
        max_steps: decoder step bound.
        strict: stop at the first failing utterance.
        progress_factory: called with the total number of utterances; returns a context
            manager with an ``update(n)`` method (e.g. ``click.progressbar``).
        judge_dir: a judge directory for the intelligibility metrics (default: the shipped judge).
        groups: systems that are one recipe trained with different seeds, by group name
            (``{"KD": ["kd-s1", "kd-s2"], "SS": ["ss-s1", "ss-s2"]}``; at least two groups).
            The report then compares the groups with intervals over sentences and seeds.
        draws: readings of each sentence per system (prenet dropout draws); the comparisons use
            each sentence's mean over its draws, which takes the draw-to-draw noise out of the
            per-sentence differences.
        workers: processes evaluating systems side by side (one system each at a time, one
            thread each: one per core). They fill the per-system caches; this process then reads
            them back, so the report is the same as with one worker (up to float rounding: each
            worker computes with one thread).

    Returns:
        The results dictionary also written to ``results.json``.

    Example:
        >>> run_evaluation(["runs/ss", "runs/kd"], "eval/hard", names=["SS", "KD"])  # doctest: +SKIP

    Many parameters because each is a ``tacokd evaluate`` option; all but the first two have
    defaults.
    """
    import contextlib

    from ..runs import load_run, run_and_model
    from .report import write_report
    from .testsets import load_sentences

    runs = [Path(r) for r in runs]
    if not runs:
        raise ValueError("give at least one --run")
    names = list(names) if names else [r.name if r.is_dir() else f"{run_and_model(r)[0].name}-{r.stem}" for r in runs]
    if len(names) != len(runs):
        raise ValueError(f"{len(names)} names for {len(runs)} runs: give one name per --run")
    if len(set(names)) != len(names):
        raise ValueError(f"system names must be unique: {names}")
    bad = [n for n in names if not n or any(c in n for c in "/\\:")]
    if bad:
        raise ValueError(f"system names are used as folder names; not allowed: {bad}")
    groups = check_groups(groups, names) if groups else None
    first = load_run(run_and_model(runs[0])[0])
    language = first.config.text.language
    if lang and lang != language:
        raise ValueError(f"{runs[0]} is a {language!r} model but --lang {lang} was given")
    eval_cfg = first.config.eval
    seed = eval_cfg.seed if seed is None else seed
    data_dir = data_dir or first.data.get("data_dir")
    limit = limit if limit is not None else (eval_cfg.limit or None)
    systems = [System.load(n, r) for n, r in zip(names, runs)]
    held_out = None
    if sentences == "builtin-indomain":  # never score a model on sentences it was trained on
        from ..data.seen import drop_seen

        items, held_out = drop_seen(load_sentences(sentences, language, data_dir), lambda t: t.text,
                                    {s.name: load_run(s.run_dir).data for s in systems}, data_dir)
        if not items:
            raise ValueError(f"every test sentence of {data_dir} was in a system's training text "
                             f"({held_out['seen_by']}): evaluate on another data directory or a sentence file")
        items = items[:limit] if limit else items
    else:
        items = load_sentences(sentences, language, data_dir, limit)
    if draws < 1:
        raise ValueError(f"draws must be at least 1 (got {draws})")
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    total = len(items) * len(systems) * draws
    bar = progress_factory(total) if progress_factory else contextlib.nullcontext(None)
    from ..runs import DirectoryLock

    with DirectoryLock(out, "evaluate"):
        with bar as b:
            update = b.update if b is not None else None
            parallel = workers > 1 and len(systems) > 1
            if parallel:
                if any(m in metrics for m in ("attention", "mcd")):  # once, before the workers read them
                    items = render_references(items, language, Path(out))
                tasks = [dict(name=s.name, run=str(r), sentences=items, out=str(out), seed=seed, eval_cfg=eval_cfg,
                              metrics=list(metrics), max_steps=max_steps, strict=strict,
                              judge_dir=None if judge_dir is None else str(judge_dir), draws=draws)
                         for s, r in zip(systems, runs)]
                fresh: set[tuple[str, str, int]] = set()
                for name, measured, n in _in_workers(tasks, workers):
                    fresh.update((name, i, d) for i, d in measured)
                    if update:
                        update(n)
                update = None  # what follows reads the caches the workers filled
            rows, status = evaluate_systems(systems, items, out, seed, eval_cfg, metrics, max_steps, strict,
                                            update, judge_dir, draws)
            if parallel:  # measured now by a worker, not reused from before
                for row in rows:
                    if (row["system"], row["id"], row["draw"]) in fresh:
                        row.pop("reused", None)
        info = {"sentences": sentences, "language": language, "seed": seed, "draws": draws, "max_steps": max_steps,
                "runs": {n: str(r) for n, r in zip(names, runs)},
                "models": {s.name: s.model_hash for s in systems}}
        if groups:
            info["groups"] = groups
        if held_out is not None:
            info["held_out"] = held_out
        return write_report(out, rows, names, status, info, eval_cfg.bootstrap_samples, seed, groups)


def check_groups(groups: Mapping[str, Sequence[str]], names: Sequence[str]) -> dict[str, list[str]]:
    """Validate seed groups against the system names; a clear error names what is wrong.

    Example:
        >>> check_groups({"KD": ["kd1", "kd2"], "SS": ["ss1"]}, ["kd1", "kd2", "ss1"])
        {'KD': ['kd1', 'kd2'], 'SS': ['ss1']}
    """
    out = {str(g): list(members) for g, members in groups.items()}
    if len(out) < 2:
        raise ValueError(f"give at least two groups to compare (got {sorted(out)})")
    seen: dict[str, str] = {}
    for g, members in out.items():
        if not g.strip():
            raise ValueError("a group needs a name: NAME=SYSTEM,SYSTEM")
        if not members:
            raise ValueError(f"group {g!r} has no systems")
        unknown = [m for m in members if m not in names]
        if unknown:
            raise ValueError(f"group {g!r}: unknown system(s) {unknown}; the systems are {list(names)}")
        for m in members:
            if m in seen or members.count(m) > 1:
                raise ValueError(f"system {m!r} is in group {seen.get(m, g)!r} and {g!r}: "
                                 "each system belongs to one group once")
            seen[m] = g
    return out
