"""Benchmark: TFLite file size and real-time factors (float32 / dynamic int8 / float16 / TF).

Run by hand: ``python bench/tflite.py [--configs ljspeech_en espeak_en] [--steps 200]
[--threads 2] [--gl-iters 60 32]``. Each model gets random weights and decodes a fixed number
of decoder steps (random weights never emit the stop token: ``--steps`` × r frames), so the
numbers measure the graph, not what a trained model says. Prints one table:

- size (MB) of each ``.tflite``;
- mel RTF = text→mel seconds / audio seconds (best of ``--repeats``);
- text→wav RTF = mel + numpy Griffin-Lim (``tf_tacokd.lite``, as the on-device demo runs it),
  for each ``--gl-iters``.

Goals from the TFLite issue: paper-size dynamic-int8 ≤ 30 MB, mel RTF ≤ 0.1, text→wav RTF ≤ 0.15.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_tacokd.config import load_config
from tf_tacokd.export import _convert, serving_function
from tf_tacokd.lite import griffin_lim_np, load_interpreter, mel_to_linear_np, prenet_masks
from tf_tacokd.model import Tacotron2


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["ljspeech_en", "espeak_en"])
    p.add_argument("--steps", type=int, default=200, help="decoder steps per synthesis")
    p.add_argument("--tokens", type=int, default=100, help="text length in symbols")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gl-iters", type=int, nargs="+", default=[60, 32])
    args = p.parse_args()

    rows = []
    for name in args.configs:
        cfg = load_config(name)
        keras.utils.set_random_seed(0)
        model = Tacotron2.from_settings(cfg.model, n_symbols=40, n_mels=cfg.audio.n_mels)
        ids = np.random.default_rng(0).integers(2, 30, (1, args.tokens)).astype(np.int32)
        ids[0, -1] = 1
        model.run(tf.constant(ids[:, :5]), max_steps=2)
        m = model.settings
        serve = serving_function(model, args.steps)
        masks = prenet_masks(args.steps, 1, sum(m.prenet_units), m.prenet_dropout, 0)
        seconds = args.steps * model.r * cfg.audio.hop_length / cfg.audio.sample_rate
        audio = dataclasses.asdict(cfg.audio)
        n_params = sum(int(np.prod(w.shape)) for w in model.weights)

        def gl_times(mel: np.ndarray) -> list[float]:
            lin = mel_to_linear_np(mel, audio, None)
            return [best_of(lambda: griffin_lim_np(lin, audio, it, cfg.audio.griffin_lim_momentum, 0), 1)[0]
                    for it in args.gl_iters]

        limit = np.asarray([args.steps], np.int32)
        t_tf, ref = best_of(lambda: serve(tf.constant(ids), tf.constant(masks), tf.constant(limit)), args.repeats)
        mel = ref["mel"].numpy()[0]
        gls = gl_times(mel)
        rows.append((name, "TF (tf.function)", n_params * 4 / 1e6, t_tf, seconds, gls))
        for quantize in ("none", "dynamic", "float16"):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                blob = _convert(model, serve, quantize, Path(tmp))
                convert_s = time.perf_counter() - t0
            runner = load_interpreter(threads=args.threads, model_content=blob).get_signature_runner("serve")
            t_lite, out = best_of(lambda: runner(text_ids=ids, prenet_masks=masks, step_limit=limit), args.repeats)
            assert int(out["mel_frames"][0]) == args.steps * model.r
            label = {"none": "TFLite float32", "dynamic": "TFLite dynamic int8", "float16": "TFLite float16"}[quantize]
            rows.append((name, f"{label} (convert {convert_s:.0f} s)", len(blob) / 1e6, t_lite, seconds, gls))

    gl_cols = " | ".join(f"text→wav RTF (GL {it})" for it in args.gl_iters)
    print(f"\n{args.steps} decoder steps, {args.tokens} text symbols, {args.threads} interpreter threads; "
          f"best of {args.repeats}\n")
    print(f"| config | runtime | size MB | mel s | audio s | mel RTF | {gl_cols} |")
    print("|---|---|---|---|---|---|" + "---|" * len(args.gl_iters))
    for name, runtime, size, t, secs, gls in rows:
        wav = " | ".join(f"{(t + g) / secs:.3f}" for g in gls)
        size_s = f"{size:.1f} (weights)" if runtime.startswith("TF ") else f"{size:.1f}"
        print(f"| {name} | {runtime} | {size_s} | {t:.3f} | {secs:.2f} | {t / secs:.3f} | {wav} |")


if __name__ == "__main__":
    main()
