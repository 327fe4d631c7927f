"""Benchmark: how much of a teacher's unintelligibility is exposure bias. The judge's error on
the same validation utterances rendered three ways, for each permanent snapshot of a run:

- **natural**: the natural log-mel through the vocoder (the floor);
- **teacher-forced**: the model fed the natural previous frames (what training optimises);
- **free running**: the model fed its own frames, for the natural number of steps (what
  inference does; frame-aligned with the natural mel, so the correlation rho is comparable).

If teacher-forced output is intelligible and free-running output is not, the model has learnt
the speech and fails on its own input (exposure bias); if both fail, it has not learnt it yet.

Run by hand (a few minutes per snapshot on one core; finished snapshots are cached)::

    python bench/forcing_gap.py --run /work/long/teacher_en --out gap_en [--every 1000]

Scores are pooled over the reference words (English: phoneme words) or syllables (Mandarin:
tone syllables), as ``tacokd evaluate`` pools them; Griffin-Lim 32 iterations.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def score_snapshot(model_path: Path, run: Path, n_batches: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from tf_tacokd.audio import mel_to_audio
    from tf_tacokd.data.dataset import load_manifest, make_dataset
    from tf_tacokd.judge import Judge
    from tf_tacokd.model.losses import frame_correlation
    from tf_tacokd.runs import load_model, load_run

    info = load_run(run)
    cfg = info.config
    data = info.data["data_dir"]
    stats = load_manifest(data).mel_stats if cfg.audio.normalize_mel else None
    model = load_model(model_path)
    judge = Judge.shipped(cfg.text.language)
    unit = "words" if cfg.text.language == "en" else "syllables"
    rate = "wer" if cfg.text.language == "en" else "ser"
    totals = {k: {"errors": 0.0, "units": 0, "rho": []} for k in ("natural", "teacher_forced", "free_running")}
    seed = tf.constant([0, 1])
    for batch in make_dataset(data, "val", cfg, batch_size=16, shuffle=False, with_ids=True).take(n_batches):
        mel, mask = batch["mel"], batch["mel_mask"]
        outs = {"natural": mel,
                "teacher_forced": model.run(batch["text_ids"], mel, 1.0, seed)["mel"],
                "free_running": model.run(batch["text_ids"], mel, 0.0, seed)["mel"]}
        lengths = mask.numpy().sum(1).astype(int)
        for name, m in outs.items():
            totals[name]["rho"].append(float(frame_correlation(m, mel, mask)))
            m = m.numpy()
            for b, n in enumerate(lengths):
                wav = mel_to_audio(m[b, :n], cfg.audio, stats, n_iter=32)
                s = judge.score(wav, cfg.audio.sample_rate, batch["text"][b].numpy().decode("utf-8"))
                units = s[unit]
                totals[name]["errors"] += s[rate] * units
                totals[name]["units"] += units
    return {name: {"error": t["errors"] / max(t["units"], 1), "units": t["units"], "rho": float(np.mean(t["rho"]))}
            for name, t in totals.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--batches", type=int, default=4, help="validation batches of 16")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / "gap.json"
    cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    for snap in sorted((args.run / "snapshots").glob("model-*.keras")):
        step = int(re.search(r"model-(\d+)", snap.name).group(1))
        tag = f"{step}:{snap.stat().st_mtime_ns}:{args.batches}"
        if step % args.every or cache.get(str(step), {}).get("tag") == tag:
            continue
        cache[str(step)] = {"tag": tag, "step": step, **score_snapshot(snap, args.run, args.batches)}
        cache_path.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        print(f"step {step}: {cache[str(step)]}", flush=True)
    print(f"\n{args.run}: judge error % (pooled) / frame correlation rho, validation split\n")
    print("| step | natural | teacher-forced | free running | units |")
    print("|---|---|---|---|---|")
    for row in sorted(cache.values(), key=lambda r: r["step"]):
        cells = [f"{100 * row[k]['error']:.1f} / {row[k]['rho']:.2f}" for k in ("natural", "teacher_forced", "free_running")]
        print(f"| {row['step']} | " + " | ".join(cells) + f" | {row['natural']['units']} |")


if __name__ == "__main__":
    main()
