"""Benchmark: how over-smoothed is each system's speech? Temporal modulation and global
variance (GV) of log-mels, per system of a ``tacokd evaluate`` output, against the natural
recordings.

Run by hand: ``python bench/smoothness.py --eval eval/indomain_en [--corpus work/en/corpus]``.
Per utterance, from the synthesized wav (Griffin-Lim output, so the vocoder is in every row
except "natural"): the log-mel (80 bands, librosa, 22.05 kHz); Δ = mean absolute change
between consecutive frames in dB (how fast the spectrum moves: buzzing, smeared speech has a
small Δ); GV = the per-band variance over time, averaged over bands (dB²; the over-smoothing
measure of statistical TTS). Natural rows need ``--corpus`` (the LJSpeech- or DataBaker-layout
corpus the data was made from; in-domain ids are its file names). Printed: means over
utterances and the ratio to natural.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from tf_tacokd.data.corpora import read_corpus
from tf_tacokd.evaluate.quality import speech_structure


def modulation(path: Path) -> tuple[float, float]:
    """(Δ dB/frame, GV dB²) of one wav's log-mel (tf_tacokd.evaluate.quality.speech_structure)."""
    x, sr = sf.read(path, dtype="float32")
    return speech_structure(x, sr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", required=True, type=Path, help="a tacokd evaluate output directory")
    p.add_argument("--corpus", type=Path, default=None, help="the LJSpeech- or DataBaker-layout corpus with the natural recordings")
    p.add_argument("--n", type=int, default=50, help="utterances per system")
    args = p.parse_args()

    rows = [r for r in csv.DictReader((args.eval / "utterances.csv").open(encoding="utf-8"))
            if r["status"] == "ok"]
    by_system: dict[str, list[tuple[float, float]]] = defaultdict(list)
    ids: list[str] = []
    for r in rows:
        if len(by_system[r["system"]]) < args.n:
            by_system[r["system"]].append(modulation(args.eval / r["wav"]))
            if r["id"] not in ids:
                ids.append(r["id"])
    table = dict(by_system)
    if args.corpus is not None:
        audio = {u.id: u.audio_path for u in read_corpus(args.corpus).utterances}
        missing = [i for i in ids[:args.n] if i not in audio]
        if missing:
            raise SystemExit(f"{len(missing)} natural recordings missing from {args.corpus}, e.g. id "
                             f"{missing[0]}: is --corpus the corpus this data was made from?")
        table = {"natural": [modulation(audio[i]) for i in ids[:args.n]], **table}
    ref = np.mean(table["natural"], axis=0) if "natural" in table else None
    print(f"{'system':<16} {'n':>4} {'Δ dB/frame':>11} {'GV dB²':>8}" + ("  Δ/natural  GV/natural" if ref is not None else ""))
    for name, values in table.items():
        d, gv = np.mean(values, axis=0)
        line = f"{name:<16} {len(values):>4} {d:>11.2f} {gv:>8.1f}"
        if ref is not None:
            line += f"  {d / ref[0]:>9.2f}  {gv / ref[1]:>10.2f}"
        print(line)


if __name__ == "__main__":
    main()
