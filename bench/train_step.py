"""Benchmark: training throughput on this CPU, in seconds of audio trained per wall-clock second.

Run by hand, on an otherwise idle machine (about 15 minutes with the defaults)::

    python bench/train_step.py [--config voice_en] [--data /work/long/data_en] [--steps 6]
                               [--only NAME ...]

Every variant (table ``VARIANTS``: config overrides, threads, batch size, XLA) runs in its own
process (TensorFlow's thread pools are fixed at start-up) on fixed random batches of typical
shape: ``--seconds`` of audio per utterance (4 s: the voice corpora's median is 3.9 s) and
``--text`` symbols, so the frame count follows the variant's sample rate and hop. After one
warm-up step (tracing), ``--steps`` teacher-forcing training steps are timed:

    audio seconds / s = batch x seconds per utterance / seconds per step

``2 runs x 1 thread`` runs the base variant twice at the same time, one thread each, and
adds their throughputs (two background runs sharing the 2 cores). With ``--data``, the
padding a real bucketed batch carries is measured too (padded frames / all frames), which
the fixed-shape batches leave out. The postnet's share is timed directly: its forward and
backward pass alone, relative to the whole step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

#: name -> (config overrides, intra-op threads, batch, XLA)
VARIANTS: dict[str, tuple[list[str], int, int, bool]] = {
    "base (1 thread, batch 16)": ([], 1, 16, False),
    "2 threads": ([], 2, 16, False),
    "batch 32": ([], 1, 32, False),
    "batch 32, 2 threads": ([], 2, 32, False),
    "batch 64": ([], 1, 64, False),
    "22050 Hz (espeak_en audio)": (["audio.sample_rate=22050"], 1, 16, False),
    "r = 3": (["model.reduction_factor=3"], 1, 16, False),
    "no postnet": (["model.postnet_layers=0"], 1, 16, False),
    # the text side's capacity (English letter-to-sound, RESULTS 13): voice_*'s encoder is 1/4
    # of the paper's (embedding 128, conv 128, BiLSTM 64 per direction)
    "encoder x2 (emb 256, conv 256, LSTM 128)": (["model.embedding_dim=256", "model.encoder_conv_channels=256",
                                                  "model.encoder_lstm_units=128"], 1, 16, False),
    "encoder x4 (the paper's: 512, 512, 256)": (["model.embedding_dim=512", "model.encoder_conv_channels=512",
                                                 "model.encoder_lstm_units=256"], 1, 16, False),
    "XLA": ([], 1, 16, True),
}


def child(spec: dict) -> dict:
    """One variant, in this process (threads are set before TensorFlow starts)."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from tf_tacokd.config import load_config
    from tf_tacokd.model import Tacotron2

    cfg = load_config(spec["config"], spec["overrides"])
    a, r, batch = cfg.audio, cfg.model.reduction_factor, spec["batch"]
    frames = int(round(spec["seconds"] * a.sample_rate / a.hop_length))
    frames += -frames % r
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 30, (batch, spec["text"])).astype(np.int32)
    ids[:, -1] = 1
    data = {"text_ids": ids, "text_lengths": np.full(batch, spec["text"], np.int32),
            "mel": rng.normal(size=(batch, frames, a.n_mels)).astype(np.float32),
            "mel_lengths": np.full(batch, frames, np.int32), "mel_mask": np.ones((batch, frames), np.float32),
            "stop_targets": (np.arange(frames)[None] >= frames - 1).repeat(batch, 0).astype(np.float32)}
    keras.utils.set_random_seed(0)
    model = Tacotron2.from_settings(cfg.model, 40, a.n_mels)
    model.compile_for_training(cfg.train, jit_compile=spec["jit"])
    ds = tf.data.Dataset.from_tensors(data).repeat()
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)  # trace (and XLA compile)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=spec["steps"], epochs=1, verbose=0)
    step = (time.perf_counter() - t0) / spec["steps"]
    out = {"frames": frames, "step_s": step, "warmup_s": warm,
           "audio_per_s": batch * frames * a.hop_length / a.sample_rate / step}
    if spec.get("postnet") and cfg.model.postnet_layers:
        mel = tf.constant(data["mel"])

        @tf.function
        def postnet_step():
            with tf.GradientTape() as tape:
                y = model.postnet(mel, training=True)
                loss = tf.reduce_mean(tf.square(y - mel))
            return tape.gradient(loss, model.postnet.trainable_variables)

        postnet_step()
        t0 = time.perf_counter()
        for _ in range(spec["steps"]):
            postnet_step()
        out["postnet_share"] = (time.perf_counter() - t0) / spec["steps"] / step
    return out


def padding_waste(config: str, data_dir: str, batches: int = 50) -> dict:
    """Padded share of the mel frames in real training batches (bucketed by length)."""

    from tf_tacokd.config import load_config
    from tf_tacokd.data.dataset import make_dataset

    cfg = load_config(config)
    real = total = 0
    for b in make_dataset(data_dir, "train", cfg, repeat=True).take(batches):
        m = b["mel_mask"].numpy()
        real, total = real + m.sum(), total + m.size
    return {"padding": 1 - real / total, "mean_frames": float(real / (batches * cfg.train.batch_size)),
            "batch": cfg.train.batch_size}


def run_child(spec: dict, wait: bool = True):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(spec["threads"]),
           "TF_NUM_INTRAOP_THREADS": str(spec["threads"]), "TF_NUM_INTEROP_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc if not wait else collect(proc)


def collect(proc) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(err[-2000:])
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="voice_en")
    p.add_argument("--data", default=None, help="preprocessed data: also measure padding in real batches")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--seconds", type=float, default=4.0, help="audio per utterance")
    p.add_argument("--text", type=int, default=60, help="symbols per utterance")
    p.add_argument("--only", nargs="*", default=None, help="variant names (default: all, and 2 runs x 1 thread)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    base = {"config": args.config, "steps": args.steps, "seconds": args.seconds, "text": args.text}
    names = args.only or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"--only: unknown variant {unknown[0]!r}; choose from {', '.join(repr(n) for n in VARIANTS)}")
    print(f"{args.config}: {args.seconds:g} s utterances, {args.text} symbols, {args.steps} timed steps "
          "after a warm-up step\n")
    print("| variant | frames / utterance | s / step | audio s trained / s | vs base | warm-up s | postnet share |")
    print("|---|---|---|---|---|---|---|")
    ref = None
    for name in names:
        overrides, threads, batch, jit = VARIANTS[name]
        spec = {**base, "overrides": overrides, "threads": threads, "batch": batch, "jit": jit,
                "postnet": name.startswith("base")}
        try:
            res = run_child(spec)
        except RuntimeError as e:
            print(f"| {name} | failed: {str(e).strip().splitlines()[-1][:120]} | | | | | |", flush=True)
            continue
        ref = ref or res["audio_per_s"]
        share = f"{100 * res['postnet_share']:.0f} %" if "postnet_share" in res else ""
        print(f"| {name} | {res['frames']} | {res['step_s']:.2f} | {res['audio_per_s']:.1f} | "
              f"{res['audio_per_s'] / ref:.2f}x | {res['warmup_s']:.0f} | {share} |", flush=True)
    if args.only is None:
        overrides, threads, batch, jit = VARIANTS["base (1 thread, batch 16)"]
        spec = {**base, "overrides": overrides, "threads": threads, "batch": batch, "jit": jit}
        procs = [run_child(spec, wait=False) for _ in range(2)]
        both = [collect(pr) for pr in procs]
        total = sum(r["audio_per_s"] for r in both)
        steps = " / ".join(f"{r['step_s']:.2f}" for r in both)
        print(f"| 2 runs x 1 thread, at once (sum) | {both[0]['frames']} | {steps} | {total:.1f} | "
              f"{total / ref:.2f}x | | |", flush=True)
    if args.data:
        w = padding_waste(args.config, args.data)
        print(f"\nreal batches of {w['batch']} from {args.data}: {100 * w['padding']:.1f} % of the mel frames are "
              f"padding; mean utterance {w['mean_frames']:.0f} frames")


if __name__ == "__main__":
    main()
