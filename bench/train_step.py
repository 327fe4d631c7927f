"""Benchmark: training step time, tf.function vs XLA (jit_compile=True).

Run by hand: ``python bench/train_step.py [--configs tiny_en espeak_en ljspeech_en]
[--batch 32] [--steps 5]``. Uses a fixed random batch of typical lengths per config
(text 100 symbols, 400 mel frames; tiny: 40 / 120) so both variants see identical
shapes. Prints ms/step and mel frames/s; the paper-size model is slow on a CPU, so
use --steps 2 for it.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from tf_tacokd.config import load_config
from tf_tacokd.model import Tacotron2


def batch_for(cfg, batch: int, text_len: int, frames: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    frames -= frames % cfg.model.reduction_factor
    ids = rng.integers(2, 30, (batch, text_len)).astype(np.int32)
    ids[:, -1] = 1
    n = cfg.audio.n_mels
    mel_lengths = np.full(batch, frames, np.int32)
    return {"text_ids": ids, "text_lengths": np.full(batch, text_len, np.int32),
            "mel": rng.normal(size=(batch, frames, n)).astype(np.float32), "mel_lengths": mel_lengths,
            "mel_mask": np.ones((batch, frames), np.float32),
            "stop_targets": (np.arange(frames)[None] >= frames - 1).repeat(batch, 0).astype(np.float32)}


def time_steps(cfg, data, jit: bool, steps: int) -> float:
    keras.utils.set_random_seed(0)
    model = Tacotron2.from_settings(cfg.model, 40, cfg.audio.n_mels)
    model.compile_for_training(cfg.train, jit_compile=jit)
    ds = tf.data.Dataset.from_tensors(data).repeat()
    model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)  # trace / compile
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny_en", "espeak_en", "ljspeech_en"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--text", type=int, default=100)
    parser.add_argument("--no-xla-for", nargs="*", default=["ljspeech_en"],
                        help="configs timed with tf.function only (XLA compiles for many minutes)")
    args = parser.parse_args()
    print(f"batch {args.batch}, {args.steps} timed steps after one warm-up step\n")
    print(f"{'config':12s} {'frames':>6s} {'tf.function ms':>15s} {'XLA ms':>9s} {'XLA speed-up':>13s} "
          f"{'frames/s (best)':>16s}")
    for name in args.configs:
        cfg = load_config(name)
        frames, text = (120, 40) if name.startswith("tiny") else (args.frames, args.text)
        data = batch_for(cfg, args.batch, text, frames)
        plain = time_steps(cfg, data, False, args.steps)
        xla = None if name in args.no_xla_for else time_steps(cfg, data, True, args.steps)
        best = plain if xla is None else min(plain, xla)
        xla_ms = "skipped" if xla is None else f"{1000 * xla:.0f}"
        ratio = "" if xla is None else f"{plain / xla:.2f}x"
        print(f"{name:12s} {data['mel'].shape[1]:6d} {1000 * plain:15.0f} {xla_ms:>9s} "
              f"{ratio:>13s} {args.batch * data['mel'].shape[1] / best:16.0f}", flush=True)


if __name__ == "__main__":
    main()
