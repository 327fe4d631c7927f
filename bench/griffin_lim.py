"""Benchmark: our Griffin-Lim (tf_tacokd.dsp, host and device) against librosa, same audio, same iterations.

Run by hand: ``python bench/griffin_lim.py [--iters 60] [--config espeak_en]``.

Two rows per clip set:
- mel -> audio: ours (pseudo-inverse + fast Griffin-Lim, numpy + scipy.fft) vs
  ``librosa.feature.inverse.mel_to_audio`` (NNLS + fast Griffin-Lim), the path a
  synthesiser runs;
- |STFT| -> audio: ours vs ``librosa.griffinlim``, Griffin-Lim alone.
Times are the best of ``--repeat`` runs after a warm-up, in one process; the ratio is
librosa time / our time (goal for mel -> audio: >= 6x). Spectral convergence (lower is
better) shows the quality at equal iterations.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np

from tf_tacokd import audio
from tf_tacokd.config import load_config

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def clips(cfg) -> list[np.ndarray]:
    paths = sorted(LIBRIVOX.glob("*.wav"))
    if not paths and shutil.which("espeak-ng"):
        tmp = Path(tempfile.mkdtemp())
        for i, text in enumerate(["The quick brown fox jumps over the lazy dog, twice a day.",
                                  "Griffin and Lim described the algorithm in nineteen eighty four."]):
            subprocess.run(["espeak-ng", "-w", str(tmp / f"{i}.wav"), text], check=True)
        paths = sorted(tmp.glob("*.wav"))
    big = dataclasses.replace(cfg, max_duration=60.0)
    return [audio.load_audio(p, big) for p in paths]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--config", default="espeak_en")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config(args.config).audio
    cfg = dataclasses.replace(cfg, magnitude_power=1.0)  # same target as librosa
    wavs = clips(cfg)
    seconds = sum(w.size for w in wavs) / cfg.sample_rate
    mels = [audio.log_mel(w, cfg) for w in wavs]
    mags = [audio.stft_magnitude(w, cfg) for w in wavs]
    kw = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, n_iter=args.iters,
              momentum=cfg.griffin_lim_momentum)

    def ours_mel():
        return [audio.mel_to_audio(m, cfg, n_iter=args.iters) for m in mels]

    def librosa_mel():  # mel_to_audio forwards extra keywords to the filterbank; momentum is 0.99
        return [librosa.feature.inverse.mel_to_audio(
                    np.exp(m).T, sr=cfg.sample_rate, power=1.0, fmin=cfg.fmin, fmax=cfg.fmax,
                    n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                    n_iter=args.iters)
                for m in mels]

    def ours_lin():
        return [audio.griffin_lim(s, cfg, n_iter=args.iters) for s in mags]

    def librosa_lin():
        return [librosa.griffinlim(s.T, random_state=0, **kw) for s in mags]

    print(f"{len(wavs)} clips, {seconds:.1f} s of speech, {args.iters} iterations, config {args.config}\n")
    print(f"{'path':16s} {'ours s':>8s} {'librosa s':>10s} {'ours xRT':>9s} {'librosa xRT':>12s} "
          f"{'speed-up':>9s} {'SC ours':>8s} {'SC librosa':>11s}")
    for name, ours, theirs in [("mel -> audio", ours_mel, librosa_mel), ("|STFT| -> audio", ours_lin, librosa_lin)]:
        y_ours, y_lib = ours(), theirs()  # warm-up (graph tracing, numba)
        t_ours, t_lib = best(ours, args.repeat), best(theirs, args.repeat)
        sc_ours = np.mean([audio.spectral_convergence(s, y, cfg) for s, y in zip(mags, y_ours)])
        sc_lib = np.mean([audio.spectral_convergence(s, y, cfg) for s, y in zip(mags, y_lib)])
        print(f"{name:16s} {t_ours:8.2f} {t_lib:10.2f} {t_ours / seconds:9.3f} {t_lib / seconds:12.3f} "
              f"{t_lib / t_ours:8.1f}x {sc_ours:8.3f} {sc_lib:11.3f}")


if __name__ == "__main__":
    main()
