#!/usr/bin/env python3
"""On-device text-to-speech with an exported tf_tacokd model: no TensorFlow.

    python mobile_demo/synthesize.py --model export/kd_en.tflite "Hello there." --out out.wav

Runs the ``.tflite`` with ai-edge-litert (LiteRT; falls back to ``tflite_runtime``), reads
the text with the package's pure-Python front end, draws the prenet dropout masks with numpy
as the sidecar prescribes, and turns the mel into audio with a numpy Griffin-Lim
(``tf_tacokd.lite.LiteSynthesizer``). Needs numpy, the interpreter, and ``tf_tacokd``
importable (installed, or this repository) with its front-end packages (pypinyin, inflect,
unidecode); the wav is written with the standard library. Prints text->mel time,
Griffin-Lim time and the real-time factor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tf_tacokd  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tf_tacokd.lite import LiteSynthesizer, write_wav  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("text")
    p.add_argument("--model", type=Path, required=True, help="the exported .tflite (its .json next to it)")
    p.add_argument("--out", type=Path, default=Path("out.wav"))
    p.add_argument("--seed", type=int, default=0, help="prenet masks and Griffin-Lim phase")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gl-iters", type=int, default=None, help="Griffin-Lim iterations [sidecar's]")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="write the wav even if an utterance reached its step bound without stopping")
    args = p.parse_args(argv)
    try:
        synth = LiteSynthesizer(args.model, args.threads)
        wav, ms, info = synth.synthesize(args.text, args.seed, args.gl_iters)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for piece in info["incomplete"]:
        print(f"error: no stop token within the step bound; the utterance was cut off: {piece[:80]!r}",
              file=sys.stderr)
    if info["incomplete"] and not args.allow_incomplete:
        print("error: nothing written (--allow-incomplete writes it anyway)", file=sys.stderr)
        return 1
    write_wav(args.out, wav, synth.sample_rate)
    seconds = wav.size / synth.sample_rate
    total = (ms["text_to_mel"] + ms["griffin_lim"]) / 1000
    print(f"{args.out}: {seconds:.2f} s of audio, {len(info['utterances'])} utterance(s), {info['tokens']} tokens, "
          f"{info['frames']} frames")
    print(f"text->mel {ms['text_to_mel']:.0f} ms, Griffin-Lim {ms['griffin_lim']:.0f} ms, "
          f"model load {ms['load']:.0f} ms")
    if seconds > 0:
        print(f"real-time factor: mel {ms['text_to_mel'] / 1000 / seconds:.3f}, "
              f"text->wav {total / seconds:.3f} (below 1 is faster than real time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
