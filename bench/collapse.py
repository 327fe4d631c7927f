"""Benchmark: why does the free-running student collapse to a drone? One short distillation per
candidate recipe from the same teacher, each measured the same way.

Run by hand (hours on 2 CPU cores)::

    python bench/collapse.py --teacher work/en/teacher --data work/en/data --out collapse_en \
        --steps 150 [--only NAME ...] [--n 14] [--hard-every 4] [--snapshot STEP]

For every candidate (a name and ``--set`` overrides of the distillation config, table
``CANDIDATES``), ``tacokd distill`` runs ``--steps`` steps from the teacher into
``OUT/<name>`` (resumable), then the student is evaluated on ``--n`` in-domain test
sentences and the built-in hard set (``tacokd evaluate`` with attention and the judge).
Printed per candidate, next to the teacher decoding freely: temporal modulation and global
variance of the log-mel relative to the natural recordings (bench/smoothness.py's
measures), the judge's error rate in domain, attention errors on the hard set, and the last
training losses (feature loss, Loss_d, Loss_d relative to the spread of the teacher's states).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


#: name -> overrides (TOML values); "default" is the shipped recipe
CANDIDATES: dict[str, list[str]] = {
    "default": [],
    "lr1e-4": ["train.learning_rate=1e-4", "train.final_learning_rate=1e-5"],
    "stopgrad": ["train.free_running_stop_gradient=true"],
    "sum": ["distill.loss_reduction='sum'"],
    "sum-lr1e-4": ["distill.loss_reduction='sum'", "train.learning_rate=1e-4", "train.final_learning_rate=1e-5"],
    "l1l2": ["distill.feature_loss='l1+l2'"],
    "teacher-target": ["distill.feature_target='teacher'"],
    "teacher-target-lr1e-4": ["distill.feature_target='teacher'", "train.learning_rate=1e-4",
                              "train.final_learning_rate=1e-5"],
    "kd-only-lr1e-4": ["distill.feature_weight=0.0", "distill.loss_reduction='sum'",
                       "train.learning_rate=1e-4", "train.final_learning_rate=1e-5"],
    "no-prenet-dropout": ["model.prenet_dropout=0.0"],
    # not the paper: variance-matching terms against the mean-frame optimum (distill.py)
    "gv": ["distill.gv_weight=1.0"],
    "gv2": ["distill.gv_weight=2.0"],
    "gv-lr3e-4": ["distill.gv_weight=1.0", "train.learning_rate=3e-4", "train.final_learning_rate=1e-5"],
    "gv4": ["distill.gv_weight=4.0"],
    "gv4-state4": ["distill.gv_weight=4.0", "distill.state_gv_weight=4.0"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", type=Path, required=True)
    p.add_argument("--snapshot", type=int, default=None,
                   help="distil from the teacher run's permanent snapshot at this step (snapshots/model-NNNNNNN.keras) "
                        "instead of its current model.keras")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", default=None, help="config (default: the teacher's)")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--n", type=int, default=14, help="in-domain sentences")
    p.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    p.add_argument("--hard-every", type=int, default=1,
                   help="evaluate every k-th hard-set sentence (all categories, fewer sentences)")
    args = p.parse_args()

    from tf_tacokd.runs import load_model
    from tf_tacokd.config import load_config
    from tf_tacokd.distill import distill
    from tf_tacokd.evaluate.free_running import free_running_correlation
    from tf_tacokd.evaluate.runner import run_evaluation

    if args.snapshot is not None:  # a run directory whose model.keras is the snapshot
        from curve import view

        snap = args.teacher / "snapshots" / f"model-{args.snapshot:07d}.keras"
        if not snap.is_file():
            raise SystemExit(f"{snap}: no such snapshot")
        args.teacher = view(args.teacher, snap, args.out / f"teacher-{args.snapshot}")
    base = args.config or str(args.teacher / "config.toml")
    lang = load_config(base).text.language
    key = "judge_wer" if lang == "en" else "judge_ser"
    names = args.only or list(CANDIDATES)
    cache_path = args.out / "collapse.json"
    args.out.mkdir(parents=True, exist_ok=True)
    cache = {r["name"]: r for r in json.loads(cache_path.read_text(encoding="utf-8"))} if cache_path.is_file() else {}
    hard_set = "builtin-hard"
    if args.hard_every > 1:
        from tf_tacokd.evaluate.testsets import builtin_hard

        hard_set = str(args.out / f"hard_every_{args.hard_every}.tsv")
        Path(hard_set).write_text("".join(f"{s.category}\t{s.text}\n" for s in builtin_hard(lang)[::args.hard_every]),
                                  encoding="utf-8")
    for name in ["teacher-FR", *names]:
        run = args.teacher if name == "teacher-FR" else args.out / name
        if name != "teacher-FR":
            cfg = load_config(base, CANDIDATES[name])
            distill(cfg, args.data, args.teacher, run, steps=args.steps, verbose=0, echo=lambda s: None)
        if cache.get(name, {}).get("steps") == args.steps and cache[name].get("hard_every") == args.hard_every:
            continue
        ind = run_evaluation([run], args.out / "eval" / name / "indomain", names=[name],
                             sentences="builtin-indomain", data_dir=args.data, limit=args.n,
                             metrics=["attention", "intelligibility"])
        hard = run_evaluation([run], args.out / "eval" / name / "hard", names=[name],
                              sentences=hard_set, lang=lang, metrics=["attention", "intelligibility"])
        s_in, s_hard = ind["systems"][name], hard["systems"][name]
        last = {}
        if (run / "history.csv").is_file():
            last = list(csv.DictReader((run / "history.csv").open(encoding="utf-8")))[-1]
        cache[name] = {"name": name, "steps": args.steps, "hard_every": args.hard_every, "fr_correlation": free_running_correlation(
                           load_model(run), args.data,
                           load_config(run / "config.toml")),
                       "modulation": s_in.get("modulation_ratio"), "gv": s_in.get("gv_ratio"),
                       "judge_in": s_in.get(key), "judge_hard": s_hard.get(key),
                       "hard_errors": s_hard["skips"] + s_hard["repeats"] + s_hard["incomplete"],
                       "feature_loss": last.get("feature_loss"), "distill_loss": last.get("distill_loss"),
                       "distill_relative": last.get("distill_relative"), "mel_spread": last.get("mel_spread"),
                       "state_spread": last.get("state_spread")}
        cache_path.write_text(json.dumps(list(cache.values()), indent=1), encoding="utf-8")
        print(f"{name}: {cache[name]}", flush=True)
    rows = [cache[n] for n in ["teacher-FR", *names] if n in cache]
    print(f"| recipe ({args.steps} steps) | frame correlation | modulation / natural | GV / natural | judge error in domain % "
          "| judge error hard % | hard attention errors | feature loss | Loss_d | Loss_d / teacher spread "
          "| mel spread | state spread |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f = lambda v, k=".3f": "–" if v in (None, "") else format(float(v), k)  # noqa: E731
        print(f"| {r['name']} | {f(r['fr_correlation'], '.2f')} | {f(r['modulation'], '.2f')} | {f(r['gv'], '.2f')} | "
              f"{f(100 * r['judge_in'] if r['judge_in'] is not None else None, '.1f')} | "
              f"{f(100 * r['judge_hard'] if r['judge_hard'] is not None else None, '.1f')} | {r['hard_errors']} | "
              f"{f(r['feature_loss'])} | {f(r['distill_loss'])} | {f(r['distill_relative'])} "
              f"| {f(r.get('mel_spread'), '.2f')} | {f(r.get('state_spread'), '.2f')} |")


if __name__ == "__main__":
    main()
