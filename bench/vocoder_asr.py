"""Benchmark: how intelligible is the vocoder? pocketsphinx WER of natural test clips and of
their Griffin-Lim resynthesis from the (natural) mel, per vocoder setting.

Run by hand: ``python bench/vocoder_asr.py --data work/en/data [--n 25] [--config quick_en]
[--run RUN ...]`` (the preprocessed built-in English data; its corpus must still be on disk).
The WER of the natural audio is the ceiling any synthesis can reach with this ASR; the mel
rows are the ceiling of a perfect acoustic model with this vocoder. Each ``--run`` adds two
rows: the model's mel with teacher forcing (fed the natural frames) and free running (as at
inference), both through the config's vocoder.
"""

from __future__ import annotations

import argparse
import dataclasses

import librosa
import numpy as np
import soundfile as sf

from tf_tacokd.audio import griffin_lim, log_mel, mel_to_audio, stft_magnitude
from tf_tacokd.config import load_config
from tf_tacokd.evaluate.asr import SpeechRecognizer, word_errors
from tf_tacokd.evaluate.testsets import indomain


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="preprocessed data directory (built-in English corpus)")
    p.add_argument("--n", type=int, default=25, help="test clips")
    p.add_argument("--config", default="quick_en")
    p.add_argument("--run", action="append", default=[], help="a trained run to add (repeatable)")
    args = p.parse_args()
    cfg = load_config(args.config).audio
    items = [s for s in indomain(args.data, args.n) if s.audio is not None]
    if not items:
        raise SystemExit(f"{args.data}: no natural recordings found (the corpus moved?)")
    asr = SpeechRecognizer()
    p10 = dataclasses.replace(cfg, magnitude_power=1.0)
    p15 = dataclasses.replace(cfg, magnitude_power=1.5)
    variants = {
        "natural recording": lambda w: w,
        "Griffin-Lim from |STFT| (no mel), 60 it.": lambda w: griffin_lim(stft_magnitude(w, cfg), cfg),
        "mel, pinv, magnitude power 1.0, 60 it.": lambda w: mel_to_audio(log_mel(w, cfg), p10),
        "mel, pinv, magnitude power 1.5, 60 it.": lambda w: mel_to_audio(log_mel(w, cfg), p15),
        "mel, pinv, magnitude power 1.5, 200 it.": lambda w: mel_to_audio(log_mel(w, cfg), p15, n_iter=200),
        "mel, librosa NNLS, power 1.0, 60 it.": lambda w: librosa.feature.inverse.mel_to_audio(
            np.exp(log_mel(w, cfg)).T, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
            win_length=cfg.win_length, power=1.0, n_iter=60, fmax=cfg.fmax),
    }
    for run in args.run:
        variants.update(model_variants(run, args.data, items))
    print(f"\n{len(items)} in-domain test clips of {args.data}; pocketsphinx with a -50 dBFS noise floor\n")
    print("| audio | WER % | (ins+del) WER % |")
    print("|---|---|---|")
    for name, fn in variants.items():
        errors = ins_del = words = 0
        for i, s in enumerate(items):
            wav, sr = sf.read(str(s.audio), dtype="float32")
            e = word_errors(s.text, asr.transcribe(fn(wav) if callable(fn) else fn[i], sr, seed=i))
            errors += e.substitutions + e.deletions + e.insertions
            ins_del += e.insertions + e.deletions
            words += e.reference_words
        print(f"| {name} | {100 * errors / words:.1f} | {100 * ins_del / words:.1f} |", flush=True)


def model_variants(run: str, data: str, items) -> dict[str, list[np.ndarray]]:
    """Teacher-forced and free-running audio of ``run`` for the test items, in order."""
    import tensorflow as tf

    from tf_tacokd.audio import MelStats
    from tf_tacokd.data.dataset import make_dataset
    from tf_tacokd.runs import load_model, load_run

    info = load_run(run)
    cfg = info.config
    model = load_model(f"{run}/model.keras")
    stats = MelStats.from_dict(info.data["mel_stats"]) if cfg.audio.normalize_mel else None
    wanted = {s.id: i for i, s in enumerate(items)}
    forced: dict[int, np.ndarray] = {}
    free: dict[int, np.ndarray] = {}
    for b in make_dataset(data, "test", cfg, batch_size=1, with_ids=True):
        i = wanted.get(b["id"][0].numpy().decode())
        if i is None:
            continue
        n = int(b["mel_lengths"][0])
        tf_mel = model.run(b["text_ids"], b["mel"], teacher_prob=1.0)["mel"][0, :n].numpy()
        fr = model.infer(b["text_ids"].numpy(), seed=i)
        forced[i] = mel_to_audio(tf_mel, cfg.audio, stats, seed=i)
        free[i] = mel_to_audio(fr["mel"][0, : int(fr["lengths"][0])], cfg.audio, stats, seed=i)
    missing = [s.id for s in items if wanted[s.id] not in forced]
    if missing:
        raise SystemExit(f"{run}: test items not in {data}: {missing[:3]}")
    name = tf.io.gfile.basename(run.rstrip("/"))
    return {f"{name}: teacher forced": [forced[i] for i in range(len(items))],
            f"{name}: free running": [free[i] for i in range(len(items))]}


if __name__ == "__main__":
    main()
