"""Benchmark: tf.data pipeline throughput next to the model's training step rate.

Run by hand: ``python bench/pipeline.py --data DIR [--config espeak_en] [--batches 50]``.
Without --data it builds and preprocesses a 300-utterance espeak-ng corpus first.
The pipeline must never be the bottleneck: its examples/s should be far above what
the training step consumes.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

from tf_tacokd.config import load_config
from tf_tacokd.data.corpora import make_corpus
from tf_tacokd.data.dataset import make_dataset
from tf_tacokd.data.preprocess import preprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--config", default="espeak_en")
    parser.add_argument("--batches", type=int, default=50)
    args = parser.parse_args()
    cfg = load_config(args.config)
    data = args.data
    if data is None:
        tmp = Path(tempfile.mkdtemp(prefix="tacokd-bench-"))
        make_corpus(cfg.text.language, tmp / "corpus", size=300, seed=0)
        preprocess(cfg, tmp / "corpus", tmp / "data", workers=2)
        data = tmp / "data"
    ds = make_dataset(data, "train", cfg, repeat=True)
    it = iter(ds)
    next(it)  # warm-up
    n, frames = 0, 0
    start = time.perf_counter()
    for _ in range(args.batches):
        b = next(it)
        n += int(b["mel"].shape[0])
        frames += int(b["mel_lengths"].numpy().sum())
    wall = time.perf_counter() - start
    print(f"{'stage':10s} {'examples/s':>11s} {'frames/s':>10s} {'batches/s':>10s}")
    print(f"{'pipeline':10s} {n / wall:11.0f} {frames / wall:10.0f} {args.batches / wall:10.1f}")
    if importlib.util.find_spec("tf_tacokd.model") is None:
        print("model      (not in this version yet: the training step rate is added with the model)")


if __name__ == "__main__":
    main()
