"""Aggregate per-utterance results into a Table-1-style report, paired comparisons with
bootstrap confidence intervals (standing in for the paper's AB preference test), and files:
``report.md``, ``results.json``, ``utterances.csv``, ``errors.png`` and ``hardest.png``.

Example:
    >>> rows = [{"system": "A", "id": "s1", "status": "ok", "skips": 1, "repeats": 0, "incomplete": False},
    ...         {"system": "B", "id": "s1", "status": "ok", "skips": 0, "repeats": 0, "incomplete": False}]
    >>> c = paired_comparison(rows, "A", "B", samples=200, seed=0)
    >>> c["attention_errors"]["wins"], c["attention_errors"]["losses"]
    (1, 0)
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..atomic import write_text

__all__ = ["COMPARED", "bootstrap_ci", "hardest_figure", "hardest_sentences", "paired_comparison",
           "paired_judge_note", "seed_comparison", "sentence_value", "summarize", "write_report"]

CSV_COLUMNS = [
    "system", "id", "category", "status", "text", "normalized", "seed", "draw", "steps", "frames", "seconds",
    "finished", "skips", "skipped_tokens", "repeats", "incomplete", "focus_rate", "diagonal_score",
    "duration_ratio", "asr_hypothesis", "reference_words", "hits", "substitutions", "deletions",
    "insertions", "wer", "cer", "ins_del_rate", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808",
    "mcd", "judge_reference", "judge_transcript", "judge_wer", "judge_cer", "judge_insdel_word", "judge_insdel_char",
    "judge_words", "judge_chars", "judge_word_ins", "judge_word_del", "judge_word_sub", "judge_ser",
    "judge_ser_toneless", "judge_insdel_syllable", "judge_syllables", "judge_syl_ins", "judge_syl_del",
    "judge_syl_sub", "modulation", "gv", "ref_modulation", "ref_gv", "synth_ms", "wav", "alignment_png",
]

#: the judge's pooled rates: name -> (per-utterance rate key, unit-count key)
JUDGE_RATES = {
    "en": {"judge_wer": ("judge_wer", "judge_words"), "judge_insdel_word": ("judge_insdel_word", "judge_words"),
           "judge_cer": ("judge_cer", "judge_chars"), "judge_insdel_char": ("judge_insdel_char", "judge_chars")},
    "zh": {"judge_ser": ("judge_ser", "judge_syllables"),
           "judge_ser_toneless": ("judge_ser_toneless", "judge_syllables"),
           "judge_insdel_syllable": ("judge_insdel_syllable", "judge_syllables"),
           "judge_cer": ("judge_cer", "judge_chars")},
}


def judge_insdel(row: dict) -> int | None:
    """The judge's insertions + deletions (words en, syllables zh) of one utterance."""
    if "judge_word_ins" in row:
        return int(row["judge_word_ins"]) + int(row["judge_word_del"])
    if "judge_syl_ins" in row:
        return int(row["judge_syl_ins"]) + int(row["judge_syl_del"])
    return None


def judge_error_rate(row: dict) -> float | None:
    """The judge's main per-utterance error rate (WER en, tone-syllable error zh)."""
    return row.get("judge_wer", row.get("judge_ser"))


def judge_units(row: dict) -> int | None:
    """The reference units the judge's error rate counts over (words en, syllables zh)."""
    return row.get("judge_words", row.get("judge_syllables"))


def judge_errors(row: dict) -> float | None:
    """The judge's errors in one utterance (error rate × reference units)."""
    rate, units = judge_error_rate(row), judge_units(row)
    return None if rate is None or units is None else rate * units


def _ok(rows: Sequence[dict], system: str) -> list[dict]:
    return [r for r in rows if r["system"] == system and r.get("status") == "ok"]


def _by_sentence(rows: Sequence[dict], system: str) -> dict[str, list[dict]]:
    """``system``'s finished readings grouped by sentence id (one per draw)."""
    out: dict[str, list[dict]] = {}
    for r in _ok(rows, system):
        out.setdefault(r["id"], []).append(r)
    return out


def sentence_value(value: Callable[[dict], float | None], readings: Sequence[dict]) -> float | None:
    """A measure of one sentence: its mean over the sentence's readings (draws), ``None`` if
    any reading lacks it.

    Example:
        >>> sentence_value(lambda r: r["x"], [{"x": 1}, {"x": 2}])
        1.5
    """
    values = [value(r) for r in readings]
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None


def attention_errors(row: dict) -> int:
    """Skips + repeats + (1 if incomplete) of one utterance."""
    return int(row["skips"]) + int(row["repeats"]) + int(bool(row["incomplete"]))


def summarize(rows: Sequence[dict], systems: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-system totals and means (ASR rates are pooled over words, as WER is)."""
    out = {}
    for name in systems:
        ok = _ok(rows, name)
        failed = [r for r in rows if r["system"] == name and r.get("status") != "ok"]
        s: dict[str, Any] = {"utterances": len(ok), "failed": len(failed)}
        if ok:
            s.update({
                "skips": sum(r["skips"] for r in ok), "skipped_tokens": sum(r["skipped_tokens"] for r in ok),
                "repeats": sum(r["repeats"] for r in ok), "incomplete": sum(bool(r["incomplete"]) for r in ok),
                "not_finished": sum(not r["finished"] for r in ok),
                "utterances_with_errors": sum(attention_errors(r) > 0 for r in ok),
                "focus_rate": _mean([r["focus_rate"] for r in ok]),
                "diagonal_score": _mean([r["diagonal_score"] for r in ok]),
                "duration_ratio_median": (float(np.nanmedian([r["duration_ratio"] for r in ok]))
                                          if any(not math.isnan(r["duration_ratio"]) for r in ok) else None),
            })
        asr = [r for r in ok if "reference_words" in r]
        if asr:
            words = sum(r["reference_words"] for r in asr)
            ins, dels, subs = (sum(r[k] for r in asr) for k in ("insertions", "deletions", "substitutions"))
            s.update({"reference_words": words, "insertions": ins, "deletions": dels, "substitutions": subs,
                      "ins_del_rate": (ins + dels) / words, "wer": (ins + dels + subs) / words,
                      "cer": _mean([r["cer"] for r in asr])})
        structured = [r for r in ok if r.get("ref_modulation")]
        if structured:  # ratios of sums: a drone is near 0, natural speech near 1
            s["modulation_ratio"] = (sum(r["modulation"] for r in structured)
                                     / sum(r["ref_modulation"] for r in structured))
            s["gv_ratio"] = sum(r["gv"] for r in structured) / max(sum(r["ref_gv"] for r in structured), 1e-9)
        judged = [r for r in ok if "judge_transcript" in r]
        if judged:
            lang = "en" if "judge_wer" in judged[0] else "zh"
            for name_, (rate, unit) in JUDGE_RATES[lang].items():
                units = sum(r[unit] for r in judged)
                s[name_] = sum(r[rate] * r[unit] for r in judged) / units if units else None
            s["judge_utterances"] = len(judged)
            s["judge_insdel"] = sum(judge_insdel(r) for r in judged)
        for k in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "mcd"):
            v = _mean([r.get(k) for r in ok])
            if v is not None:
                s[k] = v
        cats: dict[str, dict[str, int]] = {}
        for r in ok:
            c = cats.setdefault(r["category"], {"n": 0, "skips": 0, "repeats": 0, "incomplete": 0})
            c["n"] += 1
            c["skips"] += r["skips"]
            c["repeats"] += r["repeats"]
            c["incomplete"] += int(bool(r["incomplete"]))
        s["categories"] = cats
        out[name] = s
    return out


def bootstrap_ci(diff: np.ndarray, samples: int, seed: int, level: float = 0.95,
                 units: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences; with ``units`` (one
    count per sentence, ``diff`` then a difference in errors) of the pooled rate
    ``sum(diff) / sum(units)`` over resampled sentences (Bisani & Ney 2004, the usual interval
    for a difference in WER)."""
    diff = np.asarray(diff, np.float64)
    if diff.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(samples, diff.size))
    if units is None:
        means = diff[idx].mean(axis=1)
    else:
        means = diff[idx].sum(axis=1) / np.maximum(np.asarray(units, np.float64)[idx].sum(axis=1), 1e-12)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _asr_insdel(row: dict) -> int | None:
    return (row["insertions"] + row["deletions"]) if "insertions" in row else None


#: pooled measures compared between systems: name -> (count in a row, units it is pooled over);
#: the difference is sum(count B - count A) / sum(units) over the sentences, as WER is pooled
POOLED: dict[str, tuple[Callable[[dict], float | None], Callable[[dict], float | None]]] = {
    "judge_error_pooled": (judge_errors, judge_units),
}

#: per-utterance measures compared between systems: name -> (value of a row, or None when the
#: metric was not computed; whether higher is better)
COMPARED: dict[str, tuple[Callable[[dict], float | None], bool]] = {
    "attention_errors": (attention_errors, False),
    "judge_ins_del": (judge_insdel, False),
    "judge_error_rate": (judge_error_rate, False),
    "asr_ins_del": (_asr_insdel, False),
    "dnsmos_ovrl": (lambda r: r.get("dnsmos_ovrl"), True),
}


def paired_comparison(rows: Sequence[dict], a: str, b: str, samples: int = 1000, seed: int = 0,
                      mos_tie: float = 0.05) -> dict[str, Any]:
    """Per-sentence wins/ties/losses of ``b`` against ``a`` (on the sentences both finished).

    A sentence read several times (draws) counts once, with its mean over the draws that
    finished. Errors (attention skips + repeats + incomplete, the judge's insertions + deletions and
    its error rate, ASR insertions + deletions): fewer is a win for ``b``. DNSMOS OVRL: higher by more than ``mos_tie`` is a win. Each comes with the
    mean paired difference ``b - a`` and its bootstrap 95% confidence interval.
    ``judge_error_pooled`` is the judge's error rate pooled over the reference units, as the
    summary reports it (every word counts once, so a one-syllable sentence weighs less than a
    long one): ``mean_a``/``mean_b`` the pooled rates, ``mean_diff`` their difference, the
    interval resampling sentences (:func:`bootstrap_ci` with ``units``).
    """
    ra, rb = _by_sentence(rows, a), _by_sentence(rows, b)
    common = [i for i in ra if i in rb]
    out: dict[str, Any] = {"a": a, "b": b, "utterances": len(common)}
    for name, (value, higher_better) in COMPARED.items():
        tie = (mos_tie if name == "dnsmos_ovrl" else 0.0) + 1e-9  # means over draws: equal up to rounding is a tie
        pairs = [(sentence_value(value, ra[i]), sentence_value(value, rb[i])) for i in common]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if not pairs:
            continue
        d = np.array([y - x for x, y in pairs], np.float64)
        better = d > tie if higher_better else d < -tie
        worse = d < -tie if higher_better else d > tie
        lo, hi = bootstrap_ci(d, samples, seed)
        out[name] = {"n": len(pairs), "wins": int(better.sum()), "ties": int((~better & ~worse).sum()),
                     "losses": int(worse.sum()), "mean_a": float(np.mean([x for x, _ in pairs])),
                     "mean_b": float(np.mean([y for _, y in pairs])), "mean_diff": float(d.mean()),
                     "ci95": [lo, hi]}
    for name, (count, unit) in POOLED.items():
        triples = [(sentence_value(count, ra[i]), sentence_value(count, rb[i]), sentence_value(unit, ra[i]))
                   for i in common]
        triples = [t for t in triples if None not in t]
        if not triples:
            continue
        ea, eb, u = (np.array(c, np.float64) for c in zip(*triples))
        d = np.round(eb - ea, 9)  # error counts: equal counts are a tie, not a rounding error
        lo, hi = bootstrap_ci(d, samples, seed, units=u)
        total = max(u.sum(), 1e-12)
        out[name] = {"n": len(triples), "wins": int((d < 0).sum()), "ties": int((d == 0).sum()),
                     "losses": int((d > 0).sum()), "mean_a": float(ea.sum() / total),
                     "mean_b": float(eb.sum() / total), "mean_diff": float(d.sum() / total), "ci95": [lo, hi]}
    return out


def seed_comparison(rows: Sequence[dict], a: str, a_systems: Sequence[str], b: str, b_systems: Sequence[str],
                    samples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Group ``b`` against group ``a``, each group the training seeds of one system.

    For each measure of :data:`COMPARED`, on the sentences that every system of both groups
    finished and measured, with ``A[s, i]`` the value of sentence ``s`` from seed ``i`` of
    group ``a`` (its mean over draws if read several times; likewise ``B[s, j]``):

    - ``mean_diff`` = mean over s of (mean over j of B[s, j] − mean over i of A[s, i]);
    - ``ci95``: a two-level percentile bootstrap of that difference. Each resample draws the
      sentences with replacement and, independently, each group's seeds with replacement, so
      the interval covers training-seed variance as well as sentence sampling. With one seed
      per group it is :func:`bootstrap_ci` of the paired differences (the same draws). With
      two seeds a group's seed draws take three values, so the seed part of the interval is
      coarse: read it with ``seed_pairs``;
    - ``seeds_a`` / ``seeds_b``: each seed's own mean over the sentences;
    - ``seed_pairs``: the smallest and largest difference over all (seed of a, seed of b).

    Example:
        >>> rows = [{"system": s, "id": "x", "status": "ok", "skips": k, "repeats": 0, "incomplete": False}
        ...         for s, k in (("ss1", 2), ("ss2", 1), ("kd1", 0), ("kd2", 1))]
        >>> c = seed_comparison(rows, "SS", ["ss1", "ss2"], "KD", ["kd1", "kd2"], samples=100)
        >>> c["attention_errors"]["mean_diff"], c["attention_errors"]["seed_pairs"]
        (-1.0, [-2.0, 0.0])
    """
    by_system = {name: _by_sentence(rows, name) for name in [*a_systems, *b_systems]}
    ids = [i for i in by_system[a_systems[0]] if all(i in by_system[n] for n in by_system)]
    out: dict[str, Any] = {"a": a, "b": b, "a_systems": list(a_systems), "b_systems": list(b_systems)}
    measures = [(name, value, None) for name, (value, _) in COMPARED.items()]
    measures += [(name, count, unit) for name, (count, unit) in POOLED.items()]
    for name, value, unit in measures:
        table = {n: [sentence_value(value, by_system[n][i]) for i in ids] for n in by_system}
        if unit is not None:  # pooled: the units a sentence's counts are pooled over
            table[""] = [sentence_value(unit, by_system[a_systems[0]][i]) for i in ids]
        keep = [k for k in range(len(ids)) if all(table[n][k] is not None for n in table)]
        if not keep:
            continue
        A = np.array([[table[n][k] for n in a_systems] for k in keep], np.float64)
        B = np.array([[table[n][k] for n in b_systems] for k in keep], np.float64)
        U = np.array([table[""][k] for k in keep], np.float64) if unit is not None else None
        out[name] = _seed_groups_difference(A, B, a_systems, b_systems, samples, seed, level, U)
    return out


def _seed_groups_difference(A: np.ndarray, B: np.ndarray, a_systems: Sequence[str], b_systems: Sequence[str],
                            samples: int, seed: int, level: float, U: np.ndarray | None) -> dict[str, Any]:
    """:func:`seed_comparison` of one measure: ``A[s, i]``, ``B[s, j]`` per sentence and seed;
    with ``U`` (units per sentence) every mean over sentences is pooled (sum / sum of units)."""
    def over_sentences(x: np.ndarray, s_idx: np.ndarray | None = None) -> np.ndarray:
        if U is None:
            return x.mean(axis=-1)
        return x.sum(axis=-1) / max(U.sum(), 1e-12) if s_idx is None else x.sum(axis=-1) / U[s_idx].sum(axis=-1)

    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, A.shape[0], size=(samples, A.shape[0]))  # drawn first: see bootstrap_ci
    ia = rng.integers(0, A.shape[1], size=(samples, 1, A.shape[1]))
    ib = rng.integers(0, B.shape[1], size=(samples, 1, B.shape[1]))
    s3 = s_idx[:, :, None]
    means = over_sentences(B[s3, ib].mean(axis=2) - A[s3, ia].mean(axis=2), s_idx)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    pair_diffs = [float(over_sentences(B[:, j] - A[:, i])) for i in range(A.shape[1]) for j in range(B.shape[1])]
    mean = (lambda x: float(x.mean())) if U is None else (lambda x: float(over_sentences(x.mean(axis=1))))
    return {"n": A.shape[0], "mean_a": mean(A), "mean_b": mean(B),
            "mean_diff": float(over_sentences(B.mean(axis=1) - A.mean(axis=1))),
            "ci95": [float(lo), float(hi)],
            "seeds_a": {n: float(over_sentences(A[:, i])) for i, n in enumerate(a_systems)},
            "seeds_b": {n: float(over_sentences(B[:, j])) for j, n in enumerate(b_systems)},
            "seed_pairs": [min(pair_diffs), max(pair_diffs)]}


def _fmt(v: Any, kind: str = "f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if kind == "%":
        return f"{100 * v:.1f}"
    if kind == "d":
        return str(int(v))
    return f"{v:.2f}" if kind == "f" else f"{v:.3f}"


def _column(status: dict[str, str], metric: str, value: str) -> str:
    st = status.get(metric, "not requested")
    return value if st == "ok" else ("not installed" if st == "not installed" else "n/a")


def _bar_chart(path: Path, summary: dict[str, dict[str, Any]], title: str) -> Path:
    from ..plots import pyplot

    plt = pyplot()

    names = list(summary)
    keys = ["skips", "repeats", "incomplete"]
    x = np.arange(len(names))
    width = 0.8 / len(keys)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for k, key in enumerate(keys):
        axes[0].bar(x + (k - 1) * width, [summary[n].get(key, 0) for n in names], width, label=key)
    axes[0].set_xticks(x, names)
    axes[0].set_ylabel("count")
    axes[0].set_title("attention errors")
    axes[0].legend(fontsize=8)
    rates = [summary[n].get("ins_del_rate") for n in names]
    if any(r is not None for r in rates):
        axes[1].bar(x, [100 * (r or 0) for r in rates], 0.5, color="tab:red")
        axes[1].set_ylabel("%")
        axes[1].set_title("ASR (insertions + deletions) / words")
    else:
        axes[1].bar(x, [summary[n].get("utterances_with_errors", 0) for n in names], 0.5, color="tab:red")
        axes[1].set_title("utterances with any attention error")
    axes[1].set_xticks(x, names)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def hardest_sentences(rows: Sequence[dict], systems: Sequence[str], n: int = 4) -> list[str]:
    """Ids of the ``n`` sentences with the most attention errors summed over ``systems`` (only
    sentences every system finished; ties: the longer text first; the first draw of each).
    Sentences without errors are not listed."""
    by_id: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r.get("status") == "ok" and r["system"] in systems and not r.get("draw"):
            by_id.setdefault(r["id"], {})[r["system"]] = r
    scored = [(sum(attention_errors(v) for v in per.values()), len(str(per[systems[0]].get("text", ""))), sid)
              for sid, per in by_id.items() if len(per) == len(systems)]
    scored = [s for s in scored if s[0] > 0]
    return [sid for _, _, sid in sorted(scored, key=lambda t: (-t[0], -t[1], t[2]))[:n]]


def hardest_figure(path: str | Path, out: str | Path, rows: Sequence[dict], systems: Sequence[str],
                   n: int = 4) -> Path | None:
    """Tile the alignment plots of the hardest sentences (rows) for every system (columns) into one
    PNG; ``None`` if no sentence has an attention error or no plot exists."""
    ids = hardest_sentences(rows, systems, n)
    if not ids:
        return None
    from ..plots import drawable, pyplot

    plt = pyplot()

    lookup = {(r["system"], r["id"]): r for r in rows if r.get("status") == "ok" and not r.get("draw")}
    fig, axes = plt.subplots(len(ids), len(systems), figsize=(3.6 * len(systems), 2.6 * len(ids)),
                             squeeze=False)
    drawn = 0
    for i, sid in enumerate(ids):
        for j, system in enumerate(systems):
            ax = axes[i][j]
            ax.axis("off")
            r = lookup[(system, sid)]
            png = Path(out) / str(r.get("alignment_png") or "")
            if r.get("alignment_png") and png.is_file():
                ax.imshow(plt.imread(png), aspect="auto")
                drawn += 1
            flags = f"{r['skips']} skip, {r['repeats']} rep" + (", incomplete" if r["incomplete"] else "")
            ax.set_title(f"{system}: {flags}", fontsize=8)
        first = lookup[(systems[0], sid)]
        text = str(first.get("text", sid))
        if not drawable(text):  # e.g. Hanzi without a CJK font: label with what the model read
            text = str(first.get("normalized") or sid)
        axes[i][0].text(-0.02, 0.5, (text[:38] + "…") if len(text) > 39 else text, fontsize=8,
                        rotation=90, ha="right", va="center", transform=axes[i][0].transAxes)
    fig.tight_layout()
    if not drawn:
        plt.close(fig)
        return None
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(out: str | Path, rows: Sequence[dict], systems: Sequence[str], status: dict[str, str],
                 info: dict[str, Any], samples: int = 1000, seed: int = 0,
                 groups: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Write report.md, results.json, utterances.csv and errors.png into ``out``; return the results.

    ``groups`` (name -> systems, e.g. ``{"KD": ["kd-s1", "kd-s2"]}``: one system trained with
    several seeds) adds :func:`seed_comparison` of every pair of groups, in the given order.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows, systems)
    comparisons = [paired_comparison(rows, a, b, samples, seed)
                   for i, a in enumerate(systems) for b in systems[i + 1:]]
    results = {"info": info, "metrics": status, "systems": summary, "comparisons": comparisons}
    names = list(groups or {})
    if groups:
        results["seed_comparisons"] = [seed_comparison(rows, a, groups[a], b, groups[b], samples, seed)
                                       for i, a in enumerate(names) for b in names[i + 1:]]
    write_text(out / "results.json", json.dumps(results, indent=1, default=str))
    with (out / "utterances.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    _bar_chart(out / "errors.png", summary, f"{info.get('sentences')} ({info.get('language')})")
    hardest = hardest_figure(out / "hardest.png", out, rows, systems)

    lang = info.get("language", "")
    draws = int(info.get("draws") or 1)
    read = f" × {draws} draws (readings with different dropout seeds; counts and pooled rates cover every reading)" \
        if draws > 1 else ""
    lines = [f"# Evaluation: {info.get('sentences')} ({lang})", "",
             f"{len({r['id'] for r in rows})} sentences{read}, seed {info.get('seed')}, "
             f"systems: {', '.join(f'{n} = `{p}`' for n, p in info.get('runs', {}).items())}.", ""]
    lines += _held_out_lines(info.get("held_out"))
    lines += _main_table(summary, systems, status, lang)
    if status.get("intelligibility") == "ok":
        lines += _judge_section(summary, systems, rows, lang)
    if any("modulation_ratio" in summary[n] for n in systems):
        lines += _structure_section(summary, systems)
    lines += ["", "Skips and repeats are counted from the attention (skip: a letter run whose attention "
              "never reaches the threshold; repeat: the focus jumping back); incomplete: no stop token "
              "or the end never attended. (ins+del) WER is the paper's robustness figure from ASR.", ""]
    lines += _category_section(summary, systems)
    if comparisons:
        lines += _comparison_section(comparisons, lang, samples, draws)
    if groups:
        lines += _seed_section(results["seed_comparisons"], groups, lang, samples)
    lines += _closing_sections(rows, status, bool(hardest))
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return results


def _main_table(summary: dict[str, Any], systems: Sequence[str], status: dict[str, str], lang: str) -> list[str]:
    lines = ["| System | Lang | DNSMOS OVRL | DNSMOS P.808 | (ins+del) WER % | WER % | CER % | skips | repeats "
             "| incomplete | focus rate | diagonal | MCD dB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in systems:
        s = summary[name]
        lines.append("| " + " | ".join([
            name, lang,
            _column(status, "dnsmos", _fmt(s.get("dnsmos_ovrl"))),
            _column(status, "dnsmos", _fmt(s.get("dnsmos_p808"))),
            _column(status, "asr", _fmt(s.get("ins_del_rate"), "%")),
            _column(status, "asr", _fmt(s.get("wer"), "%")),
            _column(status, "asr", _fmt(s.get("cer"), "%")),
            _fmt(s.get("skips"), "d"), _fmt(s.get("repeats"), "d"),
            f"{_fmt(s.get('incomplete'), 'd')}/{s['utterances']}",
            _fmt(s.get("focus_rate"), "3"), _fmt(s.get("diagonal_score"), "3"),
            _column(status, "mcd", _fmt(s.get("mcd"))),
        ]) + " |")
    return lines


def _judge_section(summary: dict[str, Any], systems: Sequence[str], rows: Sequence[dict], lang: str) -> list[str]:
    if lang == "zh":
        head = ("| System | judge syllable error % | without tones % | (ins+del)/syllable % | "
                "pinyin-letter error % | utterances |")
        keys = ("judge_ser", "judge_ser_toneless", "judge_insdel_syllable", "judge_cer")
    else:
        head = "| System | judge WER % | judge CER % | (ins+del)/word % | (ins+del)/char % | utterances |"
        keys = ("judge_wer", "judge_cer", "judge_insdel_word", "judge_insdel_char")
    lines = ["", "## Intelligibility (the judge)", "", head, "|---|---|---|---|---|---|"]
    for name in systems:
        s = summary[name]
        lines.append(f"| {name} | " + " | ".join(_fmt(s.get(k), "%") for k in keys)
                     + f" | {s.get('judge_utterances', 0)} |")
    seen = sorted({r["id"] for r in rows if r.get("judge_trained_on")})
    if seen:
        lines += ["", f"**Warning:** {len(seen)} sentence(s) were in the judge's training corpus, so its "
                  f"figures flatter them: {', '.join(seen[:10])}. Train a judge with "
                  "`tacokd judge train --exclude FILE` for this sentence file."]
    return lines + ["", "The judge is this project's CTC recogniser for the built-in espeak-ng voices "
                    "(greedy decoding, no language model): rates are pooled over the reference "
                    "words/syllables/characters; (ins+del) per unit is the paper's robustness figure."]


def _structure_section(summary: dict[str, Any], systems: Sequence[str]) -> list[str]:
    lines = ["", "## Speech structure against the reference recordings", "",
             "| System | temporal modulation / reference | global variance / reference |", "|---|---|---|"]
    for name in systems:
        s = summary[name]
        lines.append(f"| {name} | {_fmt(s.get('modulation_ratio'))} | {_fmt(s.get('gv_ratio'))} |")
    return lines + ["", "Log-mel frame-to-frame change and per-band variance, as ratios to the reference "
                    "recordings of the same sentences: a drone (a diagonal alignment and a stop token, but "
                    "no formants, pauses or onsets) is near 0, natural speech near 1."]


def _category_section(summary: dict[str, Any], systems: Sequence[str]) -> list[str]:
    cats = sorted({c for s in summary.values() for c in s.get("categories", {})})
    if len(cats) <= 1:
        return []
    lines = ["## By category (skips / repeats / incomplete)", "",
             "| Category | n | " + " | ".join(systems) + " |", "|---|---|" + "---|" * len(systems)]
    for c in cats:
        n = max(summary[s].get("categories", {}).get(c, {}).get("n", 0) for s in systems)
        cells = []
        for s in systems:
            v = summary[s].get("categories", {}).get(c)
            cells.append(f"{v['skips']} / {v['repeats']} / {v['incomplete']}" if v else "–")
        lines.append(f"| {c} | {n} | " + " | ".join(cells) + " |")
    return lines + [""]


def _measure_labels(lang: str) -> dict[str, str]:
    return {"attention_errors": "attention errors", "judge_ins_del": "judge ins+del",
            "judge_error_rate": "judge WER" if lang == "en" else "judge tone-syllable error",
            "judge_error_pooled": "judge WER, pooled" if lang == "en" else "judge tone-syllable error, pooled",
            "asr_ins_del": "ASR ins+del", "dnsmos_ovrl": "DNSMOS OVRL"}


def _measures(comparisons: Sequence[dict], lang: str):
    """(comparison, label, its figures) for every measure each comparison has, in table order."""
    for c in comparisons:
        for key, label in _measure_labels(lang).items():
            if key in c:
                yield c, label, c[key]


def _comparison_section(comparisons: Sequence[dict], lang: str, samples: int, draws: int = 1) -> list[str]:
    unit = f"per sentence, mean of {draws} draws" if draws > 1 else "per utterance"
    lines = [f"## Paired comparisons (B against A, {unit})", "",
             "| B vs A | measure | n | B better | tie | B worse | mean A | mean B | B − A [95% CI] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c, label, v in _measures(comparisons, lang):
        lines.append(f"| {c['b']} vs {c['a']} | {label} | {v['n']} | {v['wins']} | {v['ties']} | "
                     f"{v['losses']} | {v['mean_a']:.3f} | {v['mean_b']:.3f} | "
                     f"{v['mean_diff']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] |")
    return lines + ["", "Per-sentence measures compare sentence means, so a one-word sentence weighs as much as a "
                    "long one; the *pooled* row compares the error rates as the tables above pool them (every "
                    "word or syllable counts once), its interval resampling sentences (Bisani & Ney 2004).",
                    "", f"Confidence intervals: percentile bootstrap over sentences ({samples} resamples). "
                    "An interval that excludes 0 is a difference this test set resolves.", ""]


def _seed_section(comparisons: Sequence[dict], groups: Mapping[str, Sequence[str]], lang: str,
                  samples: int) -> list[str]:
    lines = ["## Across training seeds (group B against group A)", "",
             "Groups: " + "; ".join(f"{g} = {', '.join(m)}" for g, m in groups.items()) + ".", "",
             "| B vs A | measure | sentences | mean A | mean B | B − A [95% CI, sentences and seeds] "
             "| per seed A | per seed B | B − A over seed pairs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c, label, v in _measures(comparisons, lang):
        per_a = ", ".join(f"{x:.3f}" for x in v["seeds_a"].values())
        per_b = ", ".join(f"{x:.3f}" for x in v["seeds_b"].values())
        lines.append(f"| {c['b']} vs {c['a']} | {label} | {v['n']} | {v['mean_a']:.3f} | {v['mean_b']:.3f} | "
                     f"{v['mean_diff']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] | {per_a} | {per_b} | "
                     f"{v['seed_pairs'][0]:+.3f} … {v['seed_pairs'][1]:+.3f} |")
    return lines + ["", f"Means are per utterance, averaged over a group's seeds, on the sentences every system "
                    f"of both groups finished. Intervals: two-level percentile bootstrap ({samples} resamples) "
                    "drawing the sentences and each group's seeds with replacement; with two seeds the seed "
                    "part is coarse, so the last column gives the difference for every pair of seeds.", ""]


def _closing_sections(rows: Sequence[dict], status: dict[str, str], hardest: bool) -> list[str]:
    """Reuse, metrics not computed, failed utterances, and the files written."""
    lines: list[str] = []
    reused = sum(bool(r.get("reused")) for r in rows)
    if reused:
        lines += [f"{reused} of {len(rows)} utterances were reused from `.cache` (same model, seed, metrics, "
                  "judge and text); delete it to measure everything again.", ""]
    notes = [f"- {k}: {v}" for k, v in status.items() if v != "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    if notes:
        lines += ["## Metrics not computed", "", *notes, ""]
    if failed:
        lines += ["## Failed utterances", "", *[f"- {r['system']} {r['id']}: {r['status']}" for r in failed], ""]
    return lines + ["## Files", "", "- `utterances.csv`: every utterance and metric; `results.json`: the tables above",
                    "- `wavs/<system>/<id>.wav`, `alignments/<system>/<id>.png`, `errors.png`"
                    + (", `hardest.png` (alignments of the sentences with the most attention errors)" if hardest else ""),
                    ""]


def held_out_note(held: dict[str, Any] | None) -> str:
    """One sentence on the in-domain test sentences left out because a system trained on them
    (``info["held_out"]`` of :func:`tf_tacokd.evaluate.run_evaluation`); "" if none were."""
    if not held:
        return ""
    parts = []
    if held.get("left_out"):
        seen = ", ".join(f"{n} {k}" for n, k in held.get("seen_by", {}).items() if k)
        parts.append(f"{held['left_out']} test sentences left out: in a system's training text ({seen})")
    if held.get("unknown"):
        parts.append(f"training text unknown for {', '.join(held['unknown'])} (not checked)")
    return "; ".join(parts)


def paired_judge_note(results: Mapping[str, Any], a: str, b: str, judge_name: str) -> str:
    """One sentence on B's pooled judge error against A's in an evaluation's ``results``
    (:func:`tf_tacokd.evaluate.run_evaluation`): the difference in points, its 95 % interval over
    the sentences, how many readings it rests on and whether the interval excludes 0; "" when
    the judge did not run. Single readings move a pooled rate by about half a point, so a bare
    pair of rates misleads (RESULTS.md section 10.19).

    Example:
        >>> r = {"info": {"draws": 1}, "comparisons": [{"a": "T", "b": "S", "judge_error_pooled":
        ...      {"n": 90, "mean_diff": -0.007, "ci95": [-0.013, -0.001]}}]}
        >>> paired_judge_note(r, "T", "S", "judge WER")
        'S − T judge WER -0.7 points [-1.3, -0.1] (90 sentences × 1 reading; better, resolved)'
    """
    for c in results.get("comparisons", []):
        v = c.get("judge_error_pooled") if (c.get("a"), c.get("b")) == (a, b) else None
        if v and v.get("ci95") and None not in v["ci95"]:
            lo, hi = (100 * x for x in v["ci95"])
            verdict = ("better, resolved" if hi < 0 else "worse, resolved" if lo > 0
                       else "not resolved: more readings (tacokd evaluate --draws) narrow it")
            draws = results.get("info", {}).get("draws", 1)
            return (f"{b} − {a} {judge_name} {100 * v['mean_diff']:+.1f} points [{lo:+.1f}, {hi:+.1f}] "
                    f"({v['n']} sentences × {draws} reading{'s' if draws != 1 else ''}; {verdict})")
    return ""


def _held_out_lines(held: dict[str, Any] | None) -> list[str]:
    note = held_out_note(held)
    return [note[0].upper() + note[1:] + ".", ""] if note else []
