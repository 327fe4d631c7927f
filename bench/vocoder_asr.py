"""Benchmark: how intelligible is the vocoder? pocketsphinx WER of natural test clips and of
their Griffin-Lim resynthesis from the (natural) mel, per vocoder setting.

Run by hand: ``python bench/vocoder_asr.py --data work/en/data [--n 25] [--config quick_en]``
(the preprocessed built-in English data; its corpus must still be on disk). The WER of the
natural audio is the ceiling any synthesis can reach with this ASR; the mel rows are the
ceiling of a perfect acoustic model with this vocoder.
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
        "Griffin-Lim from |STFT| (no mel), 60 it.": lambda w: griffin_lim(stft_magnitude(w, cfg), cfg).numpy(),
        "mel, pinv, magnitude power 1.0, 60 it.": lambda w: mel_to_audio(log_mel(w, cfg), p10),
        "mel, pinv, magnitude power 1.5, 60 it.": lambda w: mel_to_audio(log_mel(w, cfg), p15),
        "mel, pinv, magnitude power 1.5, 200 it.": lambda w: mel_to_audio(log_mel(w, cfg), p15, n_iter=200),
        "mel, librosa NNLS, power 1.0, 60 it.": lambda w: librosa.feature.inverse.mel_to_audio(
            np.exp(log_mel(w, cfg)).T, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
            win_length=cfg.win_length, power=1.0, n_iter=60, fmax=cfg.fmax),
    }
    print(f"\n{len(items)} in-domain test clips of {args.data}; pocketsphinx with a -50 dBFS noise floor\n")
    print("| audio | WER % | (ins+del) WER % |")
    print("|---|---|---|")
    for name, fn in variants.items():
        errors = ins_del = words = 0
        for i, s in enumerate(items):
            wav, sr = sf.read(str(s.audio), dtype="float32")
            e = word_errors(s.text, asr.transcribe(fn(wav), sr, seed=i))
            errors += e.substitutions + e.deletions + e.insertions
            ins_del += e.insertions + e.deletions
            words += e.reference_words
        print(f"| {name} | {100 * errors / words:.1f} | {100 * ins_del / words:.1f} |", flush=True)


if __name__ == "__main__":
    main()
