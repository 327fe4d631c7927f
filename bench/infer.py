"""Benchmark: free-running inference over a test set, one compiled decoder per step bound
against one per buffer size (``Tacotron2.infer_bucket``).

Run by hand: ``python bench/infer.py [--model en_student] [--lang en] [--sentences 40]``.
Each sentence of the built-in hard set is read once with its own step bound (as
``tacokd synthesize`` and ``tacokd evaluate`` bound it), first with ``infer_bucket = 1`` (a
compiled decoder per distinct bound: the behaviour before the buckets), then with the default
buckets, in one process so the two columns are comparable. The mels must be identical: the
bound is the same, only the buffer the decoder writes into is larger.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tf_tacokd.decoding import decoder_bound
from tf_tacokd.evaluate.testsets import builtin_hard
from tf_tacokd.model.tacotron2 import Tacotron2
from tf_tacokd.pretrained import pretrained_run
from tf_tacokd.synthesize import Synthesizer


def read_all(syn: Synthesizer, ids: list[list[int]], bucket: int) -> tuple[float, int, list[np.ndarray]]:
    """Seconds for reading every sentence, compiled decoders made, the mels."""
    model = syn.model
    model._infer_fns.clear()
    model.infer_bucket = bucket
    a, m = syn.config.audio, syn.config.model
    mels = []
    start = time.perf_counter()
    for i, x in enumerate(ids):
        bound = decoder_bound(len(x), a, m.reduction_factor, m.min_decoder_steps + 1)
        out = model.infer([x], seed=i, max_steps=bound)
        mels.append(out["mel"][0, : int(out["lengths"][0])])
    return time.perf_counter() - start, len(model._infer_fns), mels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", default="en", choices=["en", "zh"])
    parser.add_argument("--model", default="student", choices=["student", "teacher"],
                        help="which shipped model of the language")
    parser.add_argument("--sentences", type=int, default=40, help="hard-set sentences to read")
    args = parser.parse_args()
    syn = Synthesizer.from_run(pretrained_run(args.lang, args.model))
    sentences = builtin_hard(args.lang)[: args.sentences]
    ids = [syn.front_end.process(s.text).ids for s in sentences]
    rows = []
    for label, bucket in (("per bound (before)", 1), (f"buckets of {Tacotron2.infer_bucket}", Tacotron2.infer_bucket)):
        seconds, traces, mels = read_all(syn, ids, bucket)
        rows.append((label, seconds, traces, mels))
    same = all(np.array_equal(x, y) for x, y in zip(rows[0][3], rows[1][3]))
    frames = sum(len(x) for x in rows[0][3])
    print(f"{args.lang}_{args.model}, {len(ids)} hard-set sentences, {frames} frames; mels identical: {same}")
    print("| compiled decoders | count | seconds | s per sentence | ratio |")
    print("|---|---|---|---|---|")
    for label, seconds, traces, _ in rows:
        print(f"| {label} | {traces} | {seconds:.1f} | {seconds / len(ids):.2f} | {seconds / rows[1][1]:.2f} |")


if __name__ == "__main__":
    main()
