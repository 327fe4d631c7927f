#!/usr/bin/env python3
"""On-device text-to-speech with an exported tf_tacokd model: no TensorFlow.

    python mobile_demo/synthesize.py --model export/kd_en.tflite "Hello there." --out out.wav

Runs the ``.tflite`` with ai-edge-litert (LiteRT; falls back to ``tflite_runtime``), reads
the text with the package's pure-Python front end, draws the prenet dropout masks with numpy
as the sidecar prescribes, and turns the mel into audio with a numpy Griffin-Lim. Needs
numpy, the interpreter, and ``tf_tacokd`` importable (installed, or this repository) with
its front-end packages (pypinyin, inflect, unidecode); the wav is written with the standard
library. Prints text->mel time, Griffin-Lim time and the real-time factor.
"""

from __future__ import annotations

import argparse
import sys
import time
import wave
from pathlib import Path

import numpy as np

try:
    import tf_tacokd  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tf_tacokd.lite import load_sidecar, mel_to_audio_np, prenet_masks  # noqa: E402
from tf_tacokd.text import TextFrontEnd  # noqa: E402


def load_interpreter(model: Path, threads: int):
    """LiteRT's interpreter, or tflite_runtime's on devices that only have that."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            sys.exit("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime on old devices)")
    return Interpreter(model_path=str(model), num_threads=threads)


def write_wav(path: Path, wav: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono, with the standard library's ``wave``."""
    pcm = (np.clip(wav, -1.0, 1.0) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())


def synthesize(model: Path, text: str, seed: int = 0, threads: int = 2, gl_iters: int | None = None):
    """Returns ``(wav, sample_rate, timings_ms, info)``."""
    side = load_sidecar(model)
    t = side["text"]
    front_end = TextFrontEnd(t["language"], t["strict"], t["prosody_marks"], t["latin_in_mandarin"])
    if list(front_end.symbols.symbols) != list(t["symbols"]):
        sys.exit(f"{model}: its symbol table differs from this tf_tacokd's front end; use the version "
                 f"that exported it ({side.get('created_by')})")
    spec = side["inputs"]["prenet_masks"]
    max_tokens = side["inputs"]["text_ids"]["max_tokens"]

    t0 = time.perf_counter()
    interp = load_interpreter(model, threads)
    runner = interp.get_signature_runner(side["signature"])
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    ids = np.asarray([front_end.encode(text)], np.int32)
    if ids.shape[1] > max_tokens:
        sys.exit(f"text is {ids.shape[1]} tokens; this model takes at most {max_tokens}: split it")
    steps, batch, width = spec["shape"]
    masks = prenet_masks(steps, batch, width, spec["rate"], seed)
    out = runner(text_ids=ids, prenet_masks=masks)
    frames = int(out["mel_frames"][0])
    mel = out["mel"][0, :frames]
    t_mel = time.perf_counter() - t0

    t0 = time.perf_counter()
    wav = mel_to_audio_np(mel, side, n_iter=gl_iters, seed=seed)
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 0:
        wav = wav / peak * 0.95
    t_gl = time.perf_counter() - t0
    timings = {"load": t_load * 1000, "text_to_mel": t_mel * 1000, "griffin_lim": t_gl * 1000}
    info = {"frames": frames, "finished": bool(out["finished"][0]), "tokens": int(ids.shape[1])}
    return wav.astype(np.float32), side["audio"]["sample_rate"], timings, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("text")
    p.add_argument("--model", type=Path, required=True, help="the exported .tflite (its .json next to it)")
    p.add_argument("--out", type=Path, default=Path("out.wav"))
    p.add_argument("--seed", type=int, default=0, help="prenet masks and Griffin-Lim phase")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gl-iters", type=int, default=None, help="Griffin-Lim iterations [sidecar's]")
    args = p.parse_args(argv)
    if not args.model.is_file():
        sys.exit(f"{args.model}: no such model (export one with `tacokd export`)")
    wav, sr, ms, info = synthesize(args.model, args.text, args.seed, args.threads, args.gl_iters)
    write_wav(args.out, wav, sr)
    seconds = wav.size / sr
    total = (ms["text_to_mel"] + ms["griffin_lim"]) / 1000
    print(f"{args.out}: {seconds:.2f} s of audio, {info['tokens']} tokens, {info['frames']} frames"
          + ("" if info["finished"] else " (no stop token before max steps)"))
    print(f"text->mel {ms['text_to_mel']:.0f} ms, Griffin-Lim {ms['griffin_lim']:.0f} ms, "
          f"model load {ms['load']:.0f} ms")
    if seconds > 0:
        print(f"real-time factor: mel {ms['text_to_mel'] / 1000 / seconds:.3f}, "
              f"text->wav {total / seconds:.3f} (below 1 is faster than real time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
