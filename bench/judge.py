"""Benchmark: calibrate the intelligibility judge (what it hears, what it cannot be fooled by).

Run by hand: ``python bench/judge.py --lang en --corpus CORPUS --data DATA [--judge DIR] [--n 100]``
(``CORPUS``: the espeak-ng TTS corpus, ``DATA``: its preprocessed directory, whose test
split is the in-domain set). Rows, each scored against the text that should have been said:

- floor: natural espeak-ng recordings of the in-domain test split, and espeak-ng's
  renderings of the built-in hard set (default rate and pitch);
- vocoder: the same in-domain recordings through the project's Griffin-Lim (log-mel at the
  data's audio settings -> pseudo-inverse -> fast Griffin-Lim), at most 1.5x the floor;
- sensitivity: ``--cases`` sentences (in-domain and hard) with one word (zh: one syllable)
  dropped, or doubled, re-rendered by espeak-ng and scored against the original: the share
  where the judge shows >= 1 deletion (dropped) or >= 1 insertion (doubled);
- drone: every frame of the natural log-mel replaced by its mean frame (the right length,
  no phonetic structure) through Griffin-Lim: the share of reference units deleted;
- shipped models (``--pretrained``): the shipped teacher decoding freely and KD student on
  the in-domain sentences, as a user hears them (``tacokd synthesize``);
- speed: scoring throughput in seconds of audio per second of wall clock.

English (in espeak-ng phonemes, one token per word): WER / phoneme error / (ins+del) per word; Mandarin: tone-syllable error / without tones /
(ins+del) per syllable. Rates are pooled over reference units.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from tf_tacokd.audio import load_audio, log_mel, mel_to_audio
from tf_tacokd.config import load_config
from tf_tacokd.data.corpora import read_corpus
from tf_tacokd.evaluate.intelligibility import label_scores
from tf_tacokd.judge.frontend import label_text
from tf_tacokd.evaluate.testsets import builtin_hard, indomain
from tf_tacokd.judge import Judge
from tf_tacokd.data.corpora import espeak_render, spoken_text
from tf_tacokd.text import TextFrontEnd


def pooled(refs: list[str], hyps: list[str], lang: str) -> dict[str, float]:
    scores = [label_scores(label_text(r, lang), h, lang) for r, h in zip(refs, hyps)]
    unit = "words" if lang == "en" else "syllables"
    n = sum(s[unit] for s in scores)
    keys = ("wer", "cer", "insdel_word") if lang == "en" else ("ser", "ser_toneless", "insdel_syllable")
    out = {}
    for k in keys:
        weight = "chars" if k == "cer" else unit
        out[k] = sum(s[k] * s[weight] for s in scores) / max(sum(s[weight] for s in scores), 1)
    out["n"] = len(scores)
    out["units"] = n
    out["del"] = sum(s["word_del" if lang == "en" else "syl_del"] for s in scores)
    out["ins"] = sum(s["word_ins" if lang == "en" else "syl_ins"] for s in scores)
    return out


def fmt(name: str, p: dict[str, float], lang: str, extra: str = "") -> str:
    keys = ("wer", "cer", "insdel_word") if lang == "en" else ("ser", "ser_toneless", "insdel_syllable")
    return f"| {name} | {p['n']} | " + " | ".join(f"{100 * p[k]:.2f}" for k in keys) + f" | {extra} |"


def units(text: str, lang: str) -> list[str]:
    return text.split()


def mutate(spoken: str, lang: str, rng: random.Random, how: str) -> str | None:
    """Drop or double one word (en) / syllable (zh) of the spoken text."""
    toks = spoken.split()
    if len(toks) < 2:
        return None
    i = rng.randrange(len(toks))
    word = re.sub(r"[,.?!;:]", "", toks[i])
    if not re.search(r"[a-z]", word):
        return None
    if how == "drop":
        new = toks[:i] + toks[i + 1:]
    else:
        new = toks[:i] + [word, toks[i]] + toks[i + 1:]
    return " ".join(new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lang", choices=["en", "zh"], required=True)
    p.add_argument("--corpus", type=Path, required=True, help="the espeak-ng TTS corpus (natural recordings)")
    p.add_argument("--data", type=Path, required=True, help="its preprocessed data (the test split)")
    p.add_argument("--judge", type=Path, default=None, help="a judge directory (default: the shipped judge)")
    p.add_argument("--n", type=int, default=100, help="in-domain test sentences")
    p.add_argument("--cases", type=int, default=200, help="sensitivity cases per kind (drop, double)")
    p.add_argument("--pretrained", action="store_true", help="also score the shipped teacher and student")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    lang = args.lang
    warnings.simplefilter("ignore")
    judge = Judge.load(lang, args.judge)
    fe = TextFrontEnd(lang)
    cfg = load_config(args.data / "config.toml")
    audio_cfg = cfg.audio
    test = indomain(args.data, args.n)
    wav_of = {u.id: u.audio_path for u in read_corpus(args.corpus).utterances}
    test = [t for t in test if t.id in wav_of]
    refs = [t.text for t in test]
    natural = []
    for t in test:
        w, sr = sf.read(str(wav_of[t.id]), dtype="float32")
        natural.append((w, sr))

    print(f"# judge calibration ({lang}): {len(test)} in-domain test sentences of {args.data}, "
          f"{len(builtin_hard(lang))} hard sentences\n")
    head = ("| audio | n | WER % | phoneme error % | (ins+del)/word % | note |" if lang == "en" else
            "| audio | n | tone-syllable error % | without tones % | (ins+del)/syllable % | note |")
    print(head + "\n|---|---|---|---|---|---|")

    t0 = time.perf_counter()
    hyps = judge.transcribe([w for w, _ in natural], [sr for _, sr in natural])
    seconds = time.perf_counter() - t0
    audio_seconds = sum(len(w) / sr for w, sr in natural)
    floor_in = pooled(refs, hyps, lang)
    print(fmt("natural espeak-ng, in-domain test split", floor_in, lang))

    hard = builtin_hard(lang)
    hard_spoken, hard_audio = [], []
    for s in hard:
        sp = spoken_text(fe, s.text, lang)
        hard_spoken.append(sp)
        hard_audio.append(espeak_render(sp, lang))
    hard_hyps = judge.transcribe([w for w, _ in hard_audio], [sr for _, sr in hard_audio])
    floor_hard = pooled(hard_spoken, hard_hyps, lang)
    print(fmt("espeak-ng rendering, built-in hard set", floor_hard, lang))
    worst = sorted(zip(hard_spoken, hard_hyps), key=lambda x: -label_scores(label_text(x[0], lang), x[1], lang)[
        "wer" if lang == "en" else "ser"])[:3]

    voc = []
    for (w, sr) in natural:
        x = load_audio_array(w, sr, audio_cfg)
        voc.append(mel_to_audio(log_mel(x, audio_cfg), audio_cfg, seed=args.seed))
    voc_hyps = judge.transcribe(voc, audio_cfg.sample_rate)
    p_voc = pooled(refs, voc_hyps, lang)
    key = "wer" if lang == "en" else "ser"
    ratio = p_voc[key] / floor_in[key] if floor_in[key] > 0 else float("inf") if p_voc[key] > 0 else 1.0
    print(fmt(f"Griffin-Lim from the natural log-mel ({audio_cfg.sample_rate} Hz, "
              f"{audio_cfg.griffin_lim_iters} it.)", p_voc, lang, f"{ratio:.2f}x the in-domain floor"))

    drones = []
    for (w, sr) in natural:
        x = load_audio_array(w, sr, audio_cfg)
        mel = log_mel(x, audio_cfg)
        drones.append(mel_to_audio(np.repeat(mel.mean(0, keepdims=True), len(mel), 0), audio_cfg, seed=args.seed))
    p_drone = pooled(refs, judge.transcribe(drones, audio_cfg.sample_rate), lang)
    print(fmt("mean-frame drone of the right length", p_drone, lang,
              f"deletions {p_drone['del']}/{p_drone['units']} = {p_drone['del'] / p_drone['units']:.1%}"))

    rng = random.Random(args.seed)
    pool = [(spoken_text(fe, r, lang) if lang == "en" else r) for r in refs] + hard_spoken
    for how in ("drop", "double"):
        detected = total = 0
        tries = 0
        while total < args.cases and tries < 20 * args.cases:
            tries += 1
            base = rng.choice(pool)
            changed = mutate(base, lang, rng, how)
            if changed is None:
                continue
            w, sr = espeak_render(changed, lang)
            s = label_scores(label_text(base, lang), judge.transcribe([w], sr)[0], lang)
            hit = s["word_del" if lang == "en" else "syl_del"] if how == "drop" else s[
                "word_ins" if lang == "en" else "syl_ins"]
            detected += hit >= 1
            total += 1
        unit = "word" if lang == "en" else "syllable"
        print(f"| one {unit} {'dropped' if how == 'drop' else 'doubled'} (re-rendered), scored against the "
              f"original | {total} | | | | {'deletion' if how == 'drop' else 'insertion'} shown in "
              f"{detected}/{total} = {detected / max(total, 1):.1%} |")

    if args.pretrained:
        from tf_tacokd.pretrained import pretrained_run
        from tf_tacokd.synthesize import Synthesizer

        for which, label in (("teacher", "shipped teacher, decoding freely"), ("student", "shipped KD student")):
            run = pretrained_run(lang, which, missing_ok=True)
            if run is None:
                continue
            synth = Synthesizer.from_run(run)
            wavs, normed = [], []
            for i, t in enumerate(test):
                r = synth.synthesize(t.text, seed=args.seed + i, split=False)
                wavs.append(r.wav)
                normed.append(r.normalized[0])
            print(fmt(label, pooled(normed, judge.transcribe(wavs, synth.config.audio.sample_rate), lang), lang))

    print(f"\nspeed: {audio_seconds:.0f} s of audio scored in {seconds:.1f} s = {audio_seconds / seconds:.0f}x "
          "real time (features + network + decoding, this process's threads)")
    print("\nhardest hard-set renderings (reference -> heard):")
    for r, h in worst:
        print(f"- {r!r} -> {h!r}")


def load_audio_array(wav: np.ndarray, sr: int, cfg) -> np.ndarray:
    """Resample/trim/normalise an in-memory waveform as preprocessing does (via a temp file)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        sf.write(f.name, wav, sr)
        return load_audio(f.name, cfg)


if __name__ == "__main__":
    sys.exit(main())
