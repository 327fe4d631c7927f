"""Benchmark: a long run's learning curve from its permanent snapshots, measured the way the
voices are judged.

Run by hand (minutes per snapshot on 2 CPU cores; finished snapshots are cached)::

    python bench/curve.py --run /work/long/teacher_en --out curve_en [--n 50] [--every 1000]

For every ``RUN/snapshots/model-NNNNNNN.keras`` (``train.snapshot_every``) whose step is a
multiple of ``--every``, and the run's current ``model.keras``:

- **frame correlation** (``frame_correlation``): the model decoding *freely* for the natural
  number of steps on the validation split, correlated frame by frame with the natural mel.
  Below 0.5 the natural utterance's mean frame is nearer (in L2) than this output: a student
  distilled with an L2 feature loss is then pulled towards a drone (RESULTS.md, issue 15);
- the in-domain test sentences synthesised freely and scored by ``tacokd evaluate`` with the
  intelligibility judge (phoneme-word error % in English, tone-syllable error % in Mandarin),
  the temporal-modulation and global-variance ratios against espeak-ng's rendering, and the
  attention's skips / repeats / incomplete.

Each snapshot is evaluated through a view directory (``OUT/views/step-N``: the snapshot
linked as ``model.keras`` next to the run's ``config.toml`` and ``data.json``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path


def view(run: Path, model_path: Path, where: Path) -> Path:
    """A run directory whose ``model.keras`` is ``model_path``."""
    where.mkdir(parents=True, exist_ok=True)
    for name in ("config.toml", "data.json"):
        shutil.copyfile(run / name, where / name)
    link = where / "model.keras"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(model_path.resolve())
    return where


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=50, help="in-domain test sentences")
    p.add_argument("--every", type=int, default=1000, help="evaluate snapshots at multiples of this step")
    p.add_argument("--no-current", action="store_true", help="skip the run's current model.keras")
    args = p.parse_args()

    from tf_tacokd.runs import load_model
    from tf_tacokd.config import load_config
    from tf_tacokd.evaluate.free_running import free_running_correlation
    from tf_tacokd.evaluate.runner import run_evaluation

    data = Path(json.loads((args.run / "data.json").read_text(encoding="utf-8"))["data_dir"])
    lang = load_config(args.run / "config.toml").text.language
    key = "judge_wer" if lang == "en" else "judge_ser"
    models = []
    for snap in sorted((args.run / "snapshots").glob("model-*.keras")):
        step = int(re.search(r"model-(\d+)", snap.name).group(1))
        if step % args.every == 0:
            models.append((step, snap))
    if not args.no_current and (args.run / "model.keras").is_file():
        state = json.loads((args.run / "state.json").read_text(encoding="utf-8"))
        if not any(step == state["step"] for step, _ in models):
            models.append((int(state["step"]), args.run / "model.keras"))
    args.out.mkdir(parents=True, exist_ok=True)
    cache_path = args.out / "curve.json"
    cache = json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    for step, model_path in models:
        tag = f"{step}:{model_path.stat().st_mtime_ns}"
        if cache.get(str(step), {}).get("tag") == tag:
            continue
        where = view(args.run, model_path, args.out / "views" / f"step-{step}")
        name = f"step-{step}"
        res = run_evaluation([where], args.out / "eval" / name, names=[name], sentences="builtin-indomain",
                             data_dir=data, limit=args.n, metrics=["attention", "intelligibility"])
        s = res["systems"][name]
        cache[str(step)] = {
            "tag": tag, "step": step,
            "fr_correlation": free_running_correlation(load_model(model_path), data,
                                                       load_config(args.run / "config.toml")),
            "judge": s.get(key), "modulation": s.get("modulation_ratio"), "gv": s.get("gv_ratio"),
            "skips": s.get("skips"), "repeats": s.get("repeats"), "incomplete": s.get("incomplete"),
            "utterances": s["utterances"],
        }
        cache_path.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        print(f"step {step}: {cache[str(step)]}", flush=True)
    unit = "phoneme-word error %" if lang == "en" else "tone-syllable error %"
    print(f"\n{args.run} ({lang}), in domain: {args.n} test sentences, free running\n")
    print(f"| step | frame correlation (val) | judge {unit} | modulation / espeak | GV / espeak "
          "| skips / repeats / incomplete |")
    print("|---|---|---|---|---|---|")
    for row in sorted(cache.values(), key=lambda r: r["step"]):
        judge = "–" if row["judge"] is None else f"{100 * row['judge']:.1f}"
        f2 = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"| {row['step']} | {row['fr_correlation']:.3f} | {judge} | {f2(row['modulation'])} | "
              f"{f2(row['gv'])} | {row['skips']} / {row['repeats']} / {row['incomplete']} |")


if __name__ == "__main__":
    main()
