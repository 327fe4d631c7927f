"""How far a training run has got: alignment quality on held-out sentences.

Run by hand: ``python bench/learning_progress.py --run RUN_DIR [--split val] [--n 16]``.
For the run's latest ``model.keras``, over ``--n`` utterances of the split: focus rate
and diagonal score of the attention with teacher forcing and free running, how many
free-running syntheses stopped on their own, and the ratio of synthesised to natural
duration (1.0 = same length as the espeak-ng recording).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tf_tacokd.data.dataset import make_dataset
from tf_tacokd.evaluate.alignment import diagonal_score, focus_rate
from tf_tacokd.runs import load_model, load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--n", type=int, default=16)
    args = parser.parse_args()
    info = load_run(args.run)
    model = load_model(info.model_path)
    state = json.loads((args.run / "state.json").read_text())
    ds = make_dataset(info.data["data_dir"], args.split, info.config, batch_size=1, shuffle=False)
    rows = []
    for batch in ds.take(args.n):
        ids = batch["text_ids"].numpy()
        n_text = int(batch["text_lengths"][0])
        tf_out = model.run(batch["text_ids"], batch["mel"], teacher_prob=1.0)
        tf_align = tf_out["alignments"].numpy()[0][: int(batch["mel_lengths"][0]) // model.r, :n_text]
        fr = model.infer(ids, seed=0)
        steps = int(fr["lengths"][0]) // model.r
        fr_align = fr["alignments"][0][:steps, :n_text]
        rows.append((focus_rate(tf_align), diagonal_score(tf_align), focus_rate(fr_align),
                     diagonal_score(fr_align), bool(fr["finished"][0]),
                     int(fr["lengths"][0]) / int(batch["mel_lengths"][0])))
    r = np.array(rows, dtype=float)
    print(f"run {args.run} at step {state['step']} ({state['status']}), {len(rows)} {args.split} utterances\n")
    print(f"{'':24s} {'teacher forcing':>16s} {'free running':>13s}")
    print(f"{'focus rate':24s} {r[:, 0].mean():16.3f} {r[:, 2].mean():13.3f}")
    print(f"{'diagonal score':24s} {r[:, 1].mean():16.3f} {r[:, 3].mean():13.3f}")
    print(f"{'stopped on its own':24s} {'':16s} {r[:, 4].mean():13.0%}")
    print(f"{'duration ratio (median)':24s} {'':16s} {np.median(r[:, 5]):13.2f}")


if __name__ == "__main__":
    main()
