"""Benchmark: preprocessing throughput (clips/s) with 1 and 2 worker processes.

Run by hand: ``python bench/preprocess.py [--corpus DIR] [--size 400] [--config espeak_en]``.
Without --corpus it synthesises a built-in espeak-ng corpus of --size utterances in a
temporary directory. Each run writes to a fresh directory; times include starting
the workers (each imports TensorFlow) and writing the manifest.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tf_tacokd.config import load_config
from tf_tacokd.data.corpora import make_corpus
from tf_tacokd.data.preprocess import preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--config", default="espeak_en")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cfg = load_config(args.config)
    tmp = Path(tempfile.mkdtemp(prefix="tacokd-bench-"))
    corpus = args.corpus
    if corpus is None:
        corpus = tmp / "corpus"
        make_corpus(cfg.text.language, corpus, size=args.size, seed=0)
    print(f"corpus {corpus}, config {args.config}\n")
    print(f"{'workers':>7s} {'clips':>6s} {'audio h':>8s} {'wall s':>7s} {'clips/s':>8s} {'x real time':>12s}")
    base = None
    for w in args.workers:
        start = time.perf_counter()
        report = preprocess(cfg, corpus, tmp / f"out-{w}", workers=w)
        wall = time.perf_counter() - start
        n = sum(report.counts.values()) + len(report.rejected)
        hours = sum(report.hours.values())
        base = base or wall
        print(f"{w:7d} {n:6d} {hours:8.2f} {wall:7.1f} {n / wall:8.1f} {hours * 3600 / wall:12.0f}"
              + (f"   ({base / wall:.2f}x the 1-worker rate)" if w != args.workers[0] else ""))


if __name__ == "__main__":
    main()
