"""Benchmark: why a free-running student flattens. The teacher with teacher forcing, the
teacher decoding freely, and the student decoding freely, on 16 validation utterances for the
natural number of steps.

Run by hand: ``python bench/drift.py WORKDIR [STUDENT.keras]`` with the main job's work
directory (``tacokd run --workdir WORKDIR``: its teacher/, student/ and data/). Prints per
system: attention drift from the teacher-forced path (tokens, mean and at the end), L2 to the
natural mel (frame by frame, and at the natural frame with the same attention position), the
variance ratio (per utterance, normalised log-mel), the decoder states' variance over time
and distance to the teacher's, and the frame correlation rho with rho^2 (RESULTS.md section
10: L2 training keeps about rho^2 of the variance), also against the natural frame at the same
attention position (``retimed_steps``) and after dynamic time warping (RESULTS.md 10.8: what
timing drift alone costs).
"""
import sys

import librosa
import numpy as np
import tensorflow as tf

from tf_tacokd.config import load_config
from tf_tacokd.data.dataset import make_dataset
from tf_tacokd.evaluate.free_running import retimed_steps
from tf_tacokd.model.losses import frame_correlation
from tf_tacokd.runs import load_model

def main() -> None:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    work = sys.argv[1]
    cfg = load_config(f"{work}/teacher/config.toml")
    T = load_model(f"{work}/teacher/model.keras")
    S = load_model(sys.argv[2] if len(sys.argv) > 2 else f"{work}/student/model.keras")
    batch = next(iter(make_dataset(f"{work}/data", "val", cfg, batch_size=16, shuffle=False)))
    mel, mask = batch["mel"], batch["mel_mask"].numpy()
    seed = tf.constant([0, 1])
    tf_ = T.run(batch["text_ids"], mel, 1.0, seed)
    tfr = T.run(batch["text_ids"], mel, 0.0, seed)
    sfr = S.run(batch["text_ids"], mel, 0.0, seed)
    r = T.r
    smask = mask[:, ::r]
    pos = np.arange(batch["text_ids"].shape[1])
    def centroid(a): return (a.numpy() * pos).sum(-1)
    cT = centroid(tf_["alignments"])
    nat = mel.numpy()
    def stats(name, o):
        c = centroid(o["alignments"])
        d = np.abs(c - cT)
        m = o["mel"].numpy()
        l2 = ((m - nat) ** 2).mean(-1)
        # aligned: for each step, natural step with the nearest teacher-forced centroid
        al = []
        for b in range(nat.shape[0]):
            n = int(smask[b].sum()); ct = np.maximum.accumulate(cT[b, :n])
            idx = np.clip(np.searchsorted(ct, c[b, :n]), 0, n - 1)
            fr = (idx[:, None] * r + np.arange(r)).reshape(-1)
            al.append(((m[b, : n * r] - nat[b, fr]) ** 2).mean())
        gv = np.mean([m[b, : int(mask[b].sum())].var(0).mean() / nat[b, : int(mask[b].sum())].var(0).mean() for b in range(len(m))])
        n_end = [int(smask[b].sum()) - 1 for b in range(len(m))]
        end = np.mean([d[b, n_end[b]] for b in range(len(m))])
        print(f"{name:12s} drift mean {(d*smask).sum()/smask.sum():6.2f} tok, at end {end:6.2f} | L2 vs natural {(l2*mask).sum()/mask.sum():.3f} "
              f"| L2 at matched position {np.mean(al):.3f} | GV ratio {gv:.2f}")
    stats("teacher-TF", tf_); stats("teacher-FR", tfr); stats("student-FR", sfr)
    print("text lengths", batch["text_lengths"].numpy().mean(), "steps", smask.sum(1).mean())
    U = T.settings.decoder_lstm_units
    hT = tf_["hidden"].numpy()
    for name, o in [("teacher-TF", tf_), ("teacher-FR", tfr), ("student-FR", sfr)]:
        h = o["hidden"].numpy()
        for layer in range(2):
            sl = slice(layer * U, (layer + 1) * U)
            tv = np.mean([h[b, : int(smask[b].sum()), sl].var(0).mean() for b in range(len(h))])
            dist = np.mean([((h[b, : int(smask[b].sum()), sl] - hT[b, : int(smask[b].sum()), sl]) ** 2).mean() for b in range(len(h))])
            sat = np.mean(np.abs(h[..., sl][smask > 0]) > 0.95)
            print(f"{name:12s} layer {layer}: temporal var {tv:.4f}  mse to teacher-TF {dist:.4f}  |h|>0.95 {sat:.3f}")
        ctx_ent = -(o["alignments"].numpy() * np.log(o["alignments"].numpy() + 1e-9)).sum(-1)
        print(f"{name:12s} attention entropy {(ctx_ent * smask).sum() / smask.sum():.3f}")
    k = {}  # per system: the teacher-forced step at the same attention position (distill.target_timing)
    for name, o in [("teacher-TF", tf_), ("teacher-FR", tfr), ("student-FR", sfr)]:
        k[name] = retimed_steps(tf_["alignments"], o["alignments"], batch["mel_mask"][:, ::r]).numpy()
    for name, o in [("teacher-TF", tf_), ("teacher-FR", tfr), ("student-FR", sfr)]:
        rho = float(frame_correlation(o["mel"], mel, batch["mel_mask"]))
        m = o["mel"].numpy()
        matched, warped = [], []
        for b in range(len(m)):
            n = int(mask[b].sum())
            frames = (k[name][b][:, None] * r + np.arange(r)).reshape(-1)[:n]
            matched.append(_corr(m[b, :n], nat[b, np.minimum(frames, n - 1)]))
            p, t = m[b, :n] - m[b, :n].mean(0), nat[b, :n] - nat[b, :n].mean(0)
            _, path = librosa.sequence.dtw(X=p.T, Y=t.T)
            warped.append(_corr(p[path[::-1, 0]], t[path[::-1, 1]]))
        print(f"{name:12s} frame correlation {rho:.3f}  rho^2 {rho*rho:.3f} | at the same attention position "
              f"{np.mean(matched):.3f} | after DTW {np.mean(warped):.3f}")


def _corr(p: np.ndarray, t: np.ndarray) -> float:
    """frame_correlation of one utterance's frames (all real)."""
    return float(frame_correlation(p[None], t[None], np.ones((1, len(p)), np.float32)))


if __name__ == "__main__":
    main()
