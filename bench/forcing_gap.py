"""Benchmark: how much of a teacher's unintelligibility is exposure bias. The judge's error on
the same validation utterances rendered three ways, for each permanent snapshot of a run:

- **natural**: the natural log-mel through the vocoder (the floor);
- **teacher-forced**: the model fed the natural previous frames (what training optimises);
- **free running**: the model fed its own frames, for the natural number of steps (what
  inference does; frame-aligned with the natural mel, so the correlation rho is comparable).

If teacher-forced output is intelligible and free-running output is not, the model has learnt
the speech and fails on its own input (exposure bias); if both fail, it has not learnt it yet.

Run by hand (a few minutes per snapshot on one core; finished snapshots are cached)::

    python bench/forcing_gap.py --run /work/long/teacher_en --out gap_en [--every 1000]

Scores are pooled over the reference words (English: phoneme words) or syllables (Mandarin:
tone syllables), as ``tacokd evaluate`` pools them; Griffin-Lim 32 iterations.

``--words STEP`` asks *which* words fail: every reference word of that snapshot's three
renderings, binned by how often the word (its judge label: espeak-ng phonemes, or a toned
syllable) occurs in the run's training texts. Errors that grow as words get rarer, already
when teacher-forced, point at the text side (letter-to-sound not generalised); errors alike
for all words point at the acoustics (exposure bias)::

    python bench/forcing_gap.py --run /work/long/teacher_en --out gap_en --words 12000

``--sentences SET --model FILE`` asks the same question of a test set without recordings
(``builtin-hard`` or a sentence file): espeak-ng's rendering of each sentence (the natural
voice of the built-in corpora) is the natural mel, and the table is by category. Where the
teacher-forced error is as high as the free-running one, the errors are not exposure bias, and
a student trained to decode freely (KD, SS) has nothing to recover there::

    python bench/forcing_gap.py --run /work/long/teacher_en --out gap_hard_en \
        --sentences builtin-hard --model /work/long/teacher_en/snapshots/model-0012000.keras
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def score_snapshot(model_path: Path, run: Path, n_batches: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from tf_tacokd.audio import mel_to_audio
    from tf_tacokd.data.dataset import load_manifest, make_dataset
    from tf_tacokd.judge import Judge
    from tf_tacokd.model.losses import frame_correlation
    from tf_tacokd.runs import load_model, load_run

    info = load_run(run)
    cfg = info.config
    data = info.data["data_dir"]
    stats = load_manifest(data).mel_stats if cfg.audio.normalize_mel else None
    model = load_model(model_path)
    judge = Judge.shipped(cfg.text.language)
    unit = "words" if cfg.text.language == "en" else "syllables"
    rate = "wer" if cfg.text.language == "en" else "ser"
    totals = {k: {"errors": 0.0, "units": 0, "rho": []} for k in ("natural", "teacher_forced", "free_running")}
    utterances: list[dict] = []
    seed = tf.constant([0, 1])
    for batch in make_dataset(data, "val", cfg, batch_size=16, shuffle=False, with_ids=True).take(n_batches):
        mel, mask = batch["mel"], batch["mel_mask"]
        outs = {"natural": mel,
                "teacher_forced": model.run(batch["text_ids"], mel, 1.0, seed)["mel"],
                "free_running": model.run(batch["text_ids"], mel, 0.0, seed)["mel"]}
        lengths = mask.numpy().sum(1).astype(int)
        rows = [{"text": t.decode("utf-8")} for t in batch["text"].numpy()]
        for name, m in outs.items():
            totals[name]["rho"].append(float(frame_correlation(m, mel, mask)))
            m = m.numpy()
            for b, n in enumerate(lengths):
                wav = mel_to_audio(m[b, :n], cfg.audio, stats, n_iter=32)
                s = judge.score(wav, cfg.audio.sample_rate, rows[b]["text"])
                rows[b]["reference"], rows[b][name] = s["reference"], s["transcript"]
                units = s[unit]
                totals[name]["errors"] += s[rate] * units
                totals[name]["units"] += units
        utterances += rows
    return {"utterances": utterances} | {name: {"error": t["errors"] / max(t["units"], 1), "units": t["units"], "rho": float(np.mean(t["rho"]))}
            for name, t in totals.items()}


def score_sentences(model_path: Path, run: Path, spec: str, out: Path, n_iter: int = 32) -> list[dict]:
    """Judge error of each sentence of ``spec`` rendered three ways (natural = espeak-ng's
    recording, teacher-forced, free running for the natural number of frames)."""
    import dataclasses

    import tensorflow as tf

    from tf_tacokd.audio import load_audio, log_mel, mel_to_audio
    from tf_tacokd.data.dataset import load_manifest
    from tf_tacokd.evaluate.runner import render_references
    from tf_tacokd.evaluate.testsets import load_sentences
    from tf_tacokd.judge import Judge
    from tf_tacokd.runs import load_model, load_run
    from tf_tacokd.text import TextFrontEnd

    cfg = load_run(run).config
    lang, r = cfg.text.language, cfg.model.reduction_factor
    stats = load_manifest(load_run(run).data["data_dir"]).mel_stats if cfg.audio.normalize_mel else None
    unbounded = dataclasses.replace(cfg.audio, min_duration=0.0, max_duration=float("inf"))
    items = render_references(load_sentences(spec, lang), lang, out)
    fe, model, judge = TextFrontEnd.from_config(cfg.text), load_model(model_path), Judge.shipped(lang)
    unit, rate = ("words", "wer") if lang == "en" else ("syllables", "ser")
    rows = []
    for i, s in enumerate(items):
        if s.audio is None:
            continue
        p = fe.process(s.text)
        mel = log_mel(load_audio(s.audio, unbounded), cfg.audio)
        mel = mel[: mel.shape[0] - mel.shape[0] % r]
        natural = stats.normalize(mel) if stats else mel
        ids, m = tf.constant([p.ids], tf.int32), tf.constant(natural[None], tf.float32)
        seed = tf.constant([0, i], tf.int32)
        outs = {"natural": natural, "teacher_forced": model.run(ids, m, 1.0, seed)["mel"][0].numpy(),
                "free_running": model.run(ids, m, 0.0, seed)["mel"][0].numpy()}
        row = {"id": s.id, "category": s.category, "text": s.text}
        for name, x in outs.items():
            score = judge.score(mel_to_audio(x, cfg.audio, stats, n_iter=n_iter), cfg.audio.sample_rate,
                                p.normalized)
            row[name] = {"errors": score[rate] * score[unit], "units": score[unit], "transcript": score["transcript"]}
        rows.append(row)
        print(f"{s.id}: " + ", ".join(f"{k} {v['errors']:.0f}/{v['units']}" for k, v in row.items()
                                      if isinstance(v, dict)), flush=True)
    return rows


def sentences_table(rows: list[dict]) -> list[str]:
    """Markdown rows: per category and overall, pooled judge error % of the three renderings."""
    kinds = ("natural", "teacher_forced", "free_running")
    cats = sorted({r["category"] for r in rows}) + ["all"]
    out = ["| category | sentences | units | natural % | teacher-forced % | free running % |", "|---|---|---|---|---|---|"]
    for c in cats:
        rs = [r for r in rows if c in ("all", r["category"])]
        units = sum(r["natural"]["units"] for r in rs)
        cells = [f"{100 * sum(r[k]['errors'] for r in rs) / max(units, 1):.1f}" for k in kinds]
        out.append(f"| {c} | {len(rs)} | {units} | " + " | ".join(cells) + " |")
    return out


#: training occurrences of a word -> bin label
FREQUENCY_BINS = [(0, 0, "0 (unseen)"), (1, 9, "1-9"), (10, 99, "10-99"), (100, None, ">= 100")]


def frequency_bin(count: int) -> str:
    """The FREQUENCY_BINS label of a training count."""
    return next(label for lo, hi, label in FREQUENCY_BINS if lo <= count and (hi is None or count <= hi))


def word_tokens(label: str, lang: str) -> list[str]:
    """The units the judge scores, as :func:`label_scores` compares them (English: phoneme
    words; Mandarin: toned syllables after third-tone sandhi)."""
    from tf_tacokd.evaluate.intelligibility import pinyin_syllables, surface_tones

    return label.split() if lang == "en" else surface_tones(pinyin_syllables(label))


def training_frequencies(run: Path, out: Path) -> dict[str, int]:
    """How often each judge unit occurs in the run's training texts (cached in OUT)."""
    import collections

    from tf_tacokd.data.dataset import load_manifest
    from tf_tacokd.judge.frontend import labels
    from tf_tacokd.runs import load_run

    info = load_run(run)
    data, lang = info.data["data_dir"], info.config.text.language
    path = out / "train_units.json"
    if path.is_file():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached["data"] == str(data):
            return cached["counts"]
    texts = [text for _, text, _ in load_manifest(data).texts("train")]
    counts = collections.Counter(u for lab in labels(texts, lang) for u in word_tokens(lab, lang))
    path.write_text(json.dumps({"data": str(data), "counts": counts}), encoding="utf-8")
    return dict(counts)


def words_table(entry: dict, freq: dict[str, int], lang: str) -> list[str]:
    """Markdown rows: per frequency bin, the words and the % wrong in each rendering."""
    from tf_tacokd.evaluate.intelligibility import phoneme_word_status

    kinds = ("natural", "teacher_forced", "free_running")
    n = {b[2]: 0 for b in FREQUENCY_BINS}
    wrong = {k: dict.fromkeys(n, 0) for k in kinds}
    for u in entry["utterances"]:
        ref = word_tokens(u["reference"], lang)
        bins = [frequency_bin(freq.get(w, 0)) for w in ref]
        for b in bins:
            n[b] += 1
        for k in kinds:
            status, _ = phoneme_word_status(" ".join(ref), " ".join(word_tokens(u[k], lang)))
            for b, st in zip(bins, status):
                wrong[k][b] += st != "C"
    rows = ["| training occurrences | words | natural % wrong | teacher-forced % wrong | free running % wrong |",
            "|---|---|---|---|---|"]
    for b, count in n.items():
        if count:
            rows.append(f"| {b} | {count} | " + " | ".join(f"{100 * wrong[k][b] / count:.1f}" for k in kinds) + " |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--batches", type=int, default=4, help="validation batches of 16")
    p.add_argument("--words", type=int, default=None, metavar="STEP",
                   help="also: that snapshot's word errors by how often each word occurs in training")
    p.add_argument("--sentences", default=None, metavar="SET",
                   help="a test set without recordings (builtin-hard or a sentence file), read by --model")
    p.add_argument("--model", type=Path, default=None, help="the .keras file --sentences is read with")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sentences is not None:
        if args.model is None or not args.model.is_file():
            p.error("--sentences needs --model FILE (a .keras file of --run)")
        rows = score_sentences(args.model, args.run, args.sentences, args.out)
        (args.out / "sentences.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
        print(f"\n{args.model}: judge error % (pooled) on {args.sentences}, natural = espeak-ng's rendering\n")
        print("\n".join(sentences_table(rows)))
        return
    cache_path = args.out / "gap.json"
    cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    snaps = sorted((args.run / "snapshots").glob("model-*.keras"))
    if not snaps:
        p.error(f"--run {args.run}: no snapshots/model-*.keras (the run keeps them when train.snapshot_every > 0)")
    if args.words is not None and not (args.run / "snapshots" / f"model-{args.words:07d}.keras").is_file():
        p.error(f"--words {args.words}: {args.run}/snapshots has no model-{args.words:07d}.keras")
    for snap in snaps:
        step = int(re.search(r"model-(\d+)", snap.name).group(1))
        tag = f"{step}:{snap.stat().st_mtime_ns}:{args.batches}"
        entry = cache.get(str(step), {})
        wanted = step % args.every == 0 or step == args.words
        if not wanted or (entry.get("tag") == tag and (step != args.words or "utterances" in entry)):
            continue
        cache[str(step)] = {"tag": tag, "step": step, **score_snapshot(snap, args.run, args.batches)}
        cache_path.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        print(f"step {step}: {cache[str(step)]}", flush=True)
    print(f"\n{args.run}: judge error % (pooled) / frame correlation rho, validation split\n")
    print("| step | natural | teacher-forced | free running | units |")
    print("|---|---|---|---|---|")
    for row in sorted(cache.values(), key=lambda r: r["step"]):
        cells = [f"{100 * row[k]['error']:.1f} / {row[k]['rho']:.2f}" for k in ("natural", "teacher_forced", "free_running")]
        print(f"| {row['step']} | " + " | ".join(cells) + f" | {row['natural']['units']} |")
    if args.words is not None:
        from tf_tacokd.runs import load_run

        lang = load_run(args.run).config.text.language
        print(f"\nstep {args.words}: words wrong by how often the word occurs in the training texts\n")
        print("\n".join(words_table(cache[str(args.words)], training_frequencies(args.run, args.out), lang)))


if __name__ == "__main__":
    main()
