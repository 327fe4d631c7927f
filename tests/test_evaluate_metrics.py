"""ASR errors, DNSMOS, MCD, test sets and the report, each against a hand-made or
independent reference."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tf_tacokd.evaluate.asr import add_noise, normalize_for_wer, word_errors
from tf_tacokd.evaluate.report import (bootstrap_ci, hardest_figure, hardest_sentences, paired_comparison,
                                       seed_comparison, summarize, write_report)
from tf_tacokd.evaluate.testsets import builtin_hard, load_sentence_file, load_sentences
from tf_tacokd.text import TextFrontEnd

from .conftest import requires_espeak, speechlike, write_wav

# -- ASR error counting ------------------------------------------------------------


def test_word_errors_by_hand() -> None:
    e = word_errors("The cat sat on the mat.", "the cat cat sat on mat")  # 1 insertion, 1 deletion
    assert (e.reference_words, e.insertions, e.deletions, e.substitutions) == (6, 1, 1, 0)
    assert e.ins_del_rate == pytest.approx(2 / 6) and e.wer == pytest.approx(2 / 6)
    s = word_errors("one two three", "one too three")
    assert (s.substitutions, s.insertions, s.deletions, s.hits) == (1, 0, 0, 2) and s.ins_del_rate == 0
    assert s.cer == pytest.approx(1 / 13)  # "two" -> "too": one character of "one two three"
    empty = word_errors("one two three", "")
    assert empty.deletions == 3 and empty.wer == 1.0 and empty.cer == 1.0
    with pytest.raises(ValueError, match="empty reference"):
        word_errors("...", "x")


def test_normalize_for_wer() -> None:
    assert normalize_for_wer("Twenty-two, 'quoted' DON'T!") == "twenty two quoted don't"


def test_noise_level_and_seed() -> None:
    x = add_noise(np.zeros(160000, np.float32), -50.0, seed=3)
    rms_db = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert abs(rms_db - (-50.0)) < 0.1
    np.testing.assert_array_equal(x, add_noise(np.zeros(160000, np.float32), -50.0, seed=3))
    assert not np.array_equal(x, add_noise(np.zeros(160000, np.float32), -50.0, seed=4))


@requires_espeak
@pytest.mark.espeak
def test_asr_understands_noisy_espeak_utterances(tmp_path: Path) -> None:
    from tf_tacokd.evaluate.asr import SpeechRecognizer

    asr = SpeechRecognizer(noise_dbfs=-50.0)
    errors = words = 0
    for i, text in enumerate(["Please call me tomorrow morning before you leave for the office.",
                              "The children played in the garden until it was time for dinner.",
                              "The train was late because of the snow on the tracks."]):
        wav = tmp_path / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
        x, sr = sf.read(str(wav), dtype="float32")
        assert sr == 22050 and np.mean(x == 0) > 0.01  # espeak writes digital silence
        e = word_errors(text, asr.transcribe(x, sr, seed=i))
        errors += e.substitutions + e.deletions + e.insertions
        words += e.reference_words
    assert errors / words < 0.4  # 6% measured; pocketsphinx's generic LM misses some words


# -- DNSMOS and MCD -------------------------------------------------------------------


def test_dnsmos_rates_speech_above_noise_and_rejects_silence() -> None:
    from tf_tacokd.evaluate.quality import dnsmos

    sr = 16000
    harmonic = speechlike(3.0, seed=1, sr=sr).astype(np.float32)
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * sr).astype(np.float32)
    a, b = dnsmos(harmonic, sr), dnsmos(noise, sr)
    assert set(a) == {"sig", "bak", "ovrl", "p808"} and all(1.0 <= v <= 5.0 for v in a.values())
    assert b["bak"] < a["bak"]  # white noise is the background DNSMOS penalises
    with pytest.raises(ValueError, match="silent"):
        dnsmos(np.zeros(sr, np.float32), sr)


def test_dnsmos_matches_speechmos_and_keeps_to_the_thread_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our scorer is speechmos's DNSMOS with onnxruntime limited to OMP_NUM_THREADS (onnxruntime
    itself ignores it and took both cores of a one-thread evaluation): same scores, one thread."""
    from speechmos import dnsmos as reference

    from tf_tacokd.evaluate import quality

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(quality, "_SCORER", None)
    sr = 16000
    clip = speechlike(3.0, seed=2, sr=sr).astype(np.float32)
    ours = quality.dnsmos(clip, sr)
    scorer = quality._SCORER
    assert scorer.onnx_sess.get_session_options().intra_op_num_threads == 1
    assert scorer.p808_onnx_sess.get_session_options().intra_op_num_threads == 1
    theirs = reference.run(clip / np.abs(clip).max() * 0.95, sr)
    for key, ref_key in (("sig", "sig_mos"), ("bak", "bak_mos"), ("ovrl", "ovrl_mos"), ("p808", "p808_mos")):
        assert ours[key] == pytest.approx(float(theirs[ref_key]), abs=1e-4)
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert quality.onnx_threads() == 0  # unset: onnxruntime's default


def test_mcd_zero_for_identical_and_grows_with_distortion(tmp_path: Path) -> None:
    from tf_tacokd.evaluate.quality import mcd

    sr = 22050
    clean = speechlike(1.5, seed=2, sr=sr)
    a = write_wav(tmp_path / "a.wav", clean, sr)
    rng = np.random.default_rng(0)
    slight = write_wav(tmp_path / "b.wav", clean + 0.003 * rng.standard_normal(clean.size), sr)
    strong = write_wav(tmp_path / "c.wav", clean + 0.05 * rng.standard_normal(clean.size), sr)
    assert mcd(a, a) == pytest.approx(0.0, abs=1e-9)
    assert 0 < mcd(a, slight) < mcd(a, strong)


# -- test sets --------------------------------------------------------------------------


@pytest.mark.parametrize("lang, minimum, categories", [
    ("en", 90, {"single_letter", "spelling", "repeated_number", "repeated_word", "long_sentence", "very_long"}),
    ("zh", 93, {"single_character", "tongue_twister", "repeated_number", "long_sentence", "long_number",
                "polyphone", "repeated_syllable", "mixed_latin", "very_long"}),
])
def test_builtin_hard_sets(lang: str, minimum: int, categories: set[str]) -> None:
    items = builtin_hard(lang)
    assert len(items) >= minimum and {s.category for s in items} == categories
    assert len({s.id for s in items}) == len(items)
    fe = TextFrontEnd(lang, strict=True)  # every line is readable without dropping characters
    for s in items:
        assert fe.process(s.text).ids
    # the shipped judge never heard a hard sentence in training (its fingerprints)
    from tf_tacokd.judge import Judge, label_text

    if lang == "zh":  # English labels need espeak-ng's phonemes (checked by the judge tests)
        judge = Judge.shipped(lang)
        assert not any(judge.heard([label_text(fe.normalize(s.text), lang) for s in items]))
    if lang == "en":
        short = [s for s in items if s.category not in ("long_sentence", "very_long")]
        long = [len(s.text) for s in items if s.category == "long_sentence"]
        assert len(short) >= 50 and len(long) >= 30 and 120 <= np.mean(long) <= 140
    # very long: at least twice the long sentences, i.e. beyond any training utterance
    long = [len(s.text) for s in items if s.category == "long_sentence"]
    very = [len(s.text) for s in items if s.category == "very_long"]
    assert len(very) == 10 and min(very) >= 2 * np.mean(long)


def test_sentence_file_formats_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("# comment\n# categories: numbers\nHello there.\n\nnumbers\t1 2 3\nnumbers\t4 5 6\n"
                 "spelling\tA B C.\n", encoding="utf-8")
    items = load_sentence_file(f)
    assert [(s.id, s.category, s.text) for s in items] == [
        ("custom-001", "custom", "Hello there."), ("numbers-001", "numbers", "1 2 3"),
        ("numbers-002", "numbers", "4 5 6"), ("spelling-001", "spelling", "A B C.")]
    # a typo, or a tab inside a sentence, is not silently a new category
    typo = tmp_path / "typo.txt"
    typo.write_text("spelling\tA B C.\nspeling\tD E F.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"typo.txt:2: unknown category 'speling' \(did you mean 'spelling'\?\)"):
        load_sentence_file(typo)
    tab = tmp_path / "tab.txt"
    tab.write_text("Hello\tworld, and goodbye.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tab.txt:1: unknown category 'Hello'.*replace it with a space"):
        load_sentence_file(tab)
    bad = tmp_path / "bad.txt"
    bad.write_text("ok\nnumbers\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:2: no text"):
        load_sentence_file(bad)
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no sentences"):
        load_sentence_file(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="builtin-hard, builtin-indomain or an existing file"):
        load_sentences("nosuchfile.txt", "en")
    with pytest.raises(ValueError, match="needs the run's preprocessed data"):
        load_sentences("builtin-indomain", "en", tmp_path / "missing")


# -- aggregation and paired comparison ----------------------------------------------------


def _row(system: str, uid: str, skips: int, repeats: int = 0, incomplete: bool = False, **kw) -> dict:
    return {"system": system, "id": uid, "category": kw.pop("category", "c"), "status": "ok", "skips": skips,
            "skipped_tokens": skips, "repeats": repeats, "incomplete": incomplete, "finished": not incomplete,
            "focus_rate": 0.8, "diagonal_score": 0.9, "duration_ratio": 1.0, **kw}


def test_summary_and_paired_comparison_by_hand() -> None:
    rows = [_row("A", "1", 2, reference_words=10, insertions=1, deletions=2, substitutions=1, cer=0.1,
                 dnsmos_ovrl=2.0),
            _row("A", "2", 0, 1, reference_words=10, insertions=0, deletions=0, substitutions=0, cer=0.0,
                 dnsmos_ovrl=3.0),
            _row("A", "3", 0, incomplete=True, reference_words=5, insertions=0, deletions=5, substitutions=0,
                 cer=1.0, dnsmos_ovrl=2.5),
            _row("B", "1", 0, reference_words=10, insertions=0, deletions=0, substitutions=1, cer=0.05,
                 dnsmos_ovrl=2.5),
            _row("B", "2", 0, 1, reference_words=10, insertions=0, deletions=0, substitutions=0, cer=0.0,
                 dnsmos_ovrl=3.02),
            _row("B", "3", 1, reference_words=5, insertions=1, deletions=0, substitutions=0, cer=0.2,
                 dnsmos_ovrl=2.0),
            {"system": "B", "id": "4", "category": "c", "status": "error: ValueError: x"}]
    s = summarize(rows, ["A", "B"])
    assert (s["A"]["skips"], s["A"]["repeats"], s["A"]["incomplete"]) == (2, 1, 1)
    assert s["A"]["ins_del_rate"] == pytest.approx(8 / 25) and s["A"]["wer"] == pytest.approx(9 / 25)
    assert s["B"]["failed"] == 1 and s["B"]["utterances"] == 3
    assert s["A"]["utterances_with_errors"] == 3 and s["B"]["utterances_with_errors"] == 2
    c = paired_comparison(rows, "A", "B", samples=500, seed=0)
    ae = c["attention_errors"]  # per utterance A: 2, 1, 1; B: 0, 1, 1
    assert (ae["wins"], ae["ties"], ae["losses"]) == (1, 2, 0)
    assert ae["mean_diff"] == pytest.approx(-2 / 3)
    asr = c["asr_ins_del"]  # A: 3, 0, 5; B: 0, 0, 1
    assert (asr["wins"], asr["ties"], asr["losses"]) == (2, 1, 0)
    mos = c["dnsmos_ovrl"]  # +0.5 win, +0.02 tie (within 0.05), -0.5 loss
    assert (mos["wins"], mos["ties"], mos["losses"]) == (1, 1, 1)


def test_bootstrap_interval_matches_the_normal_approximation() -> None:
    d = np.random.default_rng(1).normal(0.5, 1.0, 400)
    lo, hi = bootstrap_ci(d, 4000, seed=0)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert lo < d.mean() < hi
    assert abs(lo - (d.mean() - 1.96 * se)) < 0.02 and abs(hi - (d.mean() + 1.96 * se)) < 0.02
    assert bootstrap_ci(np.zeros(5), 100, 0) == (0.0, 0.0)


def test_seed_comparison_with_one_seed_per_group_is_the_paired_comparison() -> None:
    rng = np.random.default_rng(3)
    rows = [_row(s, f"u{i}", int(rng.integers(0, 3)), judge_ser=float(rng.random()), judge_syllables=5,
                 judge_syl_ins=0, judge_syl_del=int(rng.integers(0, 2)), judge_transcript="x")
            for s in ("A", "B") for i in range(30)]
    paired = paired_comparison(rows, "A", "B", samples=300, seed=7)
    seeds = seed_comparison(rows, "a", ["A"], "b", ["B"], samples=300, seed=7)
    for key in ("attention_errors", "judge_error_rate", "judge_ins_del", "judge_error_pooled"):
        assert seeds[key]["mean_diff"] == pytest.approx(paired[key]["mean_diff"])
        assert seeds[key]["ci95"] == pytest.approx(paired[key]["ci95"])  # the same sentence draws
        assert seeds[key]["seed_pairs"] == pytest.approx([paired[key]["mean_diff"]] * 2)
    assert "asr_ins_del" not in seeds  # not measured: left out, not zero


def test_draws_are_averaged_per_sentence_before_the_bootstrap() -> None:
    """Three readings (draws) of each sentence: a comparison counts each sentence once, with
    its mean over the draws; the interval resamples sentences, not readings."""
    rng = np.random.default_rng(5)
    n, draws = 25, 3
    val = {s: rng.random((n, draws)) for s in ("A", "B")}
    err = {s: rng.integers(0, 3, (n, draws)) for s in ("A", "B")}
    rows = [_row(s, f"u{i}", int(err[s][i, k]), draw=k, judge_ser=float(val[s][i, k]), judge_syllables=5,
                 judge_ser_toneless=0.0, judge_insdel_syllable=0.0, judge_cer=0.0, judge_chars=9,
                 judge_syl_ins=0, judge_syl_del=0, judge_transcript="x")
            for s in ("A", "B") for k in range(draws) for i in range(n)]
    rows.append({**_row("B", "u0", 9, draw=3), "status": "error: x"})  # a failed reading is left out
    c = paired_comparison(rows, "A", "B", samples=500, seed=2)
    d = val["B"].mean(axis=1) - val["A"].mean(axis=1)  # the reference: numpy on the sentence means
    j = c["judge_error_rate"]
    assert c["utterances"] == n and j["n"] == n
    assert j["mean_diff"] == pytest.approx(d.mean())
    assert j["ci95"] == pytest.approx(bootstrap_ci(d, 500, 2))
    assert (j["wins"], j["losses"]) == (int((d < 0).sum()), int((d > 0).sum()))
    e = err["B"].mean(axis=1) - err["A"].mean(axis=1)
    assert c["attention_errors"]["mean_diff"] == pytest.approx(e.mean())
    g = seed_comparison(rows, "a", ["A"], "b", ["B"], samples=500, seed=2)["judge_error_rate"]
    assert g["mean_diff"] == pytest.approx(d.mean()) and g["ci95"] == pytest.approx(j["ci95"])
    # counts and pooled rates cover every reading
    sa = summarize(rows, ["A", "B"])["A"]
    assert sa["utterances"] == n * draws and sa["skips"] == int(err["A"].sum())
    assert sa["judge_ser"] == pytest.approx(val["A"].mean())
    # the same readings in another order: a tie, although the float means may differ in the last bit
    same = [_row(s, "v", 0, draw=k, judge_ser=x, judge_syllables=10, judge_syl_ins=0, judge_syl_del=0,
                 judge_transcript="x") for s, xs in (("A", (0.1, 0.2, 0.3)), ("B", (0.3, 0.2, 0.1)))
            for k, x in enumerate(xs)]
    t = paired_comparison(same, "A", "B", samples=10)
    assert (t["judge_error_rate"]["ties"], t["judge_error_pooled"]["ties"]) == (1, 1)


def test_pooled_judge_error_weighs_every_word_once() -> None:
    """Sentence u0 has 1 syllable, u1..u9 have 20: the per-sentence mean weighs u0 like the
    others, the pooled rate by its one syllable. Reference: the sums by hand and numpy."""
    units = [1] + [20] * 9
    errs_a = [1] + [4] * 9  # A: u0 wrong, 4 of 20 elsewhere
    errs_b = [0] + [5] * 9  # B: u0 right, 5 of 20 elsewhere
    rows = [_row(s, f"u{i}", 0, judge_ser=e / u, judge_syllables=u, judge_syl_ins=0, judge_syl_del=0,
                 judge_transcript="x") for s, errs in (("A", errs_a), ("B", errs_b))
            for i, (e, u) in enumerate(zip(errs, units))]
    c = paired_comparison(rows, "A", "B", samples=400, seed=1)
    per_sentence, pooled = c["judge_error_rate"], c["judge_error_pooled"]
    assert per_sentence["mean_diff"] == pytest.approx((-1 + 9 * 0.05) / 10)  # B looks better per sentence
    assert pooled["mean_a"] == pytest.approx(37 / 181) and pooled["mean_b"] == pytest.approx(45 / 181)
    assert pooled["mean_diff"] == pytest.approx(8 / 181)  # B is worse word for word
    d, u = np.array(errs_b, float) - np.array(errs_a, float), np.array(units, float)
    idx = np.random.default_rng(1).integers(0, 10, size=(400, 10))
    ref = np.quantile(d[idx].sum(axis=1) / u[idx].sum(axis=1), [0.025, 0.975])
    assert pooled["ci95"] == pytest.approx(list(ref))
    assert (pooled["wins"], pooled["ties"], pooled["losses"]) == (1, 0, 9)
    # two seeds of B that agree: the group comparison gives the same pooled difference
    rows += [{**r, "system": "B2"} for r in rows if r["system"] == "B"]
    g = seed_comparison(rows, "a", ["A"], "b", ["B", "B2"], samples=400, seed=1)["judge_error_pooled"]
    assert g["mean_diff"] == pytest.approx(8 / 181) and g["seed_pairs"] == pytest.approx([8 / 181] * 2)
    assert g["seeds_b"] == pytest.approx({"B": 45 / 181, "B2": 45 / 181})


def test_seed_comparison_interval_covers_the_seeds() -> None:
    # A: one seed at 0.2 on every sentence; B: seed b1 at 0.1 and b2 at 0.5 everywhere. The
    # sentences agree, so only the seeds move the difference: resampled B seed sets {b1, b1},
    # {b1, b2}, {b2, b2} give -0.1, +0.1, +0.3 with probabilities 1/4, 1/2, 1/4.
    rows = [_row(s, f"u{i}", 0, judge_ser=v, judge_syllables=4, judge_syl_ins=0, judge_syl_del=0,
                 judge_transcript="x") for s, v in (("a1", 0.2), ("b1", 0.1), ("b2", 0.5)) for i in range(20)]
    rows.append({"system": "b2", "id": "u20", "category": "c", "status": "error: x"})  # one system failed it
    rows += [_row(s, "u20", 5, judge_ser=1.0, judge_syllables=4, judge_syl_ins=0, judge_syl_del=0,
                  judge_transcript="x") for s in ("a1", "b1")]
    c = seed_comparison(rows, "A", ["a1"], "B", ["b1", "b2"], samples=2000, seed=0)
    j = c["judge_error_rate"]
    assert j["n"] == 20  # u20 is left out: not every system finished it
    assert j["mean_diff"] == pytest.approx(0.1)
    assert j["ci95"] == pytest.approx([-0.1, 0.3])
    assert j["seeds_b"] == pytest.approx({"b1": 0.1, "b2": 0.5}) and j["seed_pairs"] == pytest.approx([-0.1, 0.3])
    # a sentence-only interval from the seed-averaged differences would claim +0.1 exactly
    assert bootstrap_ci(np.full(20, 0.1), 200, 0) == pytest.approx((0.1, 0.1))


def test_write_report_with_seed_groups(tmp_path: Path) -> None:
    rows = [_row(s, f"u{i}", k, category="long") for s, k in (("ss1", 2), ("ss2", 1), ("kd1", 0), ("kd2", 1))
            for i in range(4)]
    status = {"attention": "ok"}
    res = write_report(tmp_path, rows, ["ss1", "ss2", "kd1", "kd2"], status,
                       {"sentences": "f.txt", "language": "en", "seed": 1}, 200, 0,
                       groups={"SS": ["ss1", "ss2"], "KD": ["kd1", "kd2"]})
    (c,) = res["seed_comparisons"]
    assert (c["a"], c["b"]) == ("SS", "KD") and c["attention_errors"]["mean_diff"] == pytest.approx(-1.0)
    md = (tmp_path / "report.md").read_text()
    assert "## Across training seeds" in md and "Groups: SS = ss1, ss2; KD = kd1, kd2." in md
    assert "| KD vs SS | attention errors | 4 | 1.500 | 0.500 | -1.000 [" in md
    assert "| 2.000, 1.000 | 0.000, 1.000 | -2.000 … +0.000 |" in md
    assert json.loads((tmp_path / "results.json").read_text())["seed_comparisons"][0]["b_systems"] == ["kd1", "kd2"]


def test_write_report_files(tmp_path: Path) -> None:
    rows = [_row("SS", "x-001", 3, category="spelling"), _row("KD", "x-001", 0, category="spelling"),
            _row("SS", "y-001", 0, 2, category="long"), _row("KD", "y-001", 0, category="long")]
    status = {"attention": "ok", "asr": "not installed", "dnsmos": "not installed", "mcd": "not applicable"}
    res = write_report(tmp_path, rows, ["SS", "KD"], status, {"sentences": "f.txt", "language": "en", "seed": 1,
                                                             "runs": {"SS": "r1", "KD": "r2"}}, 200, 0)
    md = (tmp_path / "report.md").read_text()
    assert "| SS | en | not installed | not installed | not installed" in md
    assert "| KD vs SS | attention errors | 2 | 2 | 0 | 0 |" in md
    assert "| spelling | 1 | 3 / 0 / 0 | 0 / 0 / 0 |" in md
    assert res["systems"]["SS"]["repeats"] == 2
    assert (tmp_path / "errors.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "hardest.png").exists() and "hardest.png" not in md  # no alignment plots given
    assert (tmp_path / "utterances.csv").read_text().splitlines()[0].startswith("system,id,category")


def test_missing_optional_packages_leave_their_columns_not_installed(monkeypatch) -> None:
    import importlib.util

    from tf_tacokd.evaluate.runner import metric_status
    from tf_tacokd.evaluate.testsets import TestSentence

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("speechmos", "pocketsphinx") else real(name, *a))
    items = [TestSentence("x-001", "x", "hello", audio=Path("nat.wav"))]
    status = metric_status(["attention", "asr", "dnsmos", "mcd"], "en", items)
    assert status == {"attention": "ok", "asr": "not installed", "dnsmos": "not installed", "mcd": "ok"}
    assert metric_status(["asr"], "zh", items)["asr"].startswith("not applicable")
    # a sentence without a recording gets espeak-ng's rendering as its reference
    assert metric_status(["mcd"], "en", [TestSentence("y-001", "y", "hi")])["mcd"] == "ok"
    import tf_tacokd.judge as judge

    monkeypatch.setattr(judge, "available_judges", lambda: [])
    assert metric_status(["intelligibility"], "zh", items)["intelligibility"].startswith("not installed")
    assert metric_status(["intelligibility"], "zh", items, judge_dir="somewhere")["intelligibility"] == "ok"


def test_hardest_sentences_rank_by_errors_over_all_systems(tmp_path: Path) -> None:
    rows = [_row("SS", "a", 1, text="short"), _row("KD", "a", 0, text="short"),
            _row("SS", "b", 2, 1, text="longer text"), _row("KD", "b", 0, incomplete=True, text="longer text"),
            _row("SS", "c", 1, text="a much longer text"), _row("KD", "c", 0, text="a much longer text"),
            _row("SS", "d", 0, text="clean"), _row("KD", "d", 0, text="clean"),
            _row("SS", "e", 5, text="only one system")]
    # b: 4 errors; a and c: 1 each (the longer first); d has none; e lacks KD
    assert hardest_sentences(rows, ["SS", "KD"], n=5) == ["b", "c", "a"]
    assert hardest_sentences(rows, ["SS", "KD"], n=1) == ["b"]
    assert hardest_figure(tmp_path / "h.png", tmp_path, rows, ["SS", "KD"]) is None  # no plots on disk

    from tf_tacokd.plots import save_alignment

    for r in rows:
        png = Path("alignments") / r["system"] / f"{r['id']}.png"
        (tmp_path / png).parent.mkdir(parents=True, exist_ok=True)
        save_alignment(tmp_path / png, np.eye(6, 4))
        r["alignment_png"] = str(png)
    path = hardest_figure(tmp_path / "h.png", tmp_path, rows, ["SS", "KD"], n=2)
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"


def test_hardest_figure_labels_text_the_font_cannot_draw_with_what_the_model_read(tmp_path: Path) -> None:
    import warnings

    from tf_tacokd.plots import drawable, save_alignment

    assert drawable("A b, c.") and not drawable("银行行长")  # DejaVu Sans has no Hanzi
    rows = [_row(s, "zh-1", k, text="银行行长来了。", normalized="yin2 hang2 hang2 zhang3 lai2 le5.",
                 alignment_png=f"{s}.png") for s, k in (("SS", 1), ("KD", 0))]
    for r in rows:
        save_alignment(tmp_path / r["alignment_png"], np.eye(6, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = hardest_figure(tmp_path / "h.png", tmp_path, rows, ["SS", "KD"])
    assert path is not None and path.is_file()
    assert not [w for w in caught if "missing from font" in str(w.message)]


def test_speech_structure_tells_a_drone_from_speech() -> None:
    from tf_tacokd.evaluate.quality import speech_structure

    from .conftest import speechlike

    speech = speechlike(2.0, seed=1)
    t = np.arange(speech.size) / 16000
    drone = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    mod_s, gv_s = speech_structure(speech, 16000)
    mod_d, gv_d = speech_structure(drone, 16000)
    assert mod_d < 0.3 * mod_s and gv_d < 0.3 * gv_s
    assert speech_structure(np.zeros(100, np.float32), 16000) == (0.0, 0.0)


def _retimed_reference(a_t: np.ndarray, a_s: np.ndarray, step_mask: np.ndarray) -> np.ndarray:
    """retimed_steps by loops: the first real teacher step whose running maximum position
    reaches the student's, else the last real step."""
    tokens = np.arange(a_t.shape[-1])
    out = np.zeros(a_t.shape[:2], np.int32)
    for b in range(a_t.shape[0]):
        real = int(step_mask[b].sum())
        p_t, p_s = a_t[b, :real] @ tokens, a_s[b] @ tokens
        running = np.maximum.accumulate(p_t)
        for t in range(a_t.shape[1]):
            reached = np.nonzero(running >= p_s[t])[0]
            out[b, t] = reached[0] if reached.size else real - 1
    return out


def test_retimed_steps_matches_a_loop() -> None:
    from tf_tacokd.evaluate.free_running import retimed_steps

    rng = np.random.default_rng(3)
    a_t = rng.dirichlet(np.ones(9) * 0.3, size=(4, 12)).astype(np.float32)
    a_s = rng.dirichlet(np.ones(9) * 0.3, size=(4, 12)).astype(np.float32)
    step_mask = (np.arange(12)[None] < np.array([12, 7, 1, 10])[:, None]).astype(np.float32)
    got = np.asarray(retimed_steps(a_t, a_s, step_mask))
    np.testing.assert_array_equal(got, _retimed_reference(a_t, a_s, step_mask))


def test_paired_judge_note_says_whether_the_interval_excludes_zero() -> None:
    from tf_tacokd.evaluate.report import paired_judge_note

    def results(lo: float, hi: float, draws: int = 6) -> dict:
        return {"info": {"draws": draws}, "comparisons": [
            {"a": "T", "b": "S", "judge_error_pooled": {"n": 90, "mean_diff": (lo + hi) / 2, "ci95": [lo, hi]}}]}

    assert paired_judge_note(results(0.002, 0.01), "T", "S", "judge WER").endswith("× 6 readings; worse, resolved)")
    assert "+0.6 points [+0.2, +1.0]" in paired_judge_note(results(0.002, 0.01), "T", "S", "judge WER")
    assert "not resolved" in paired_judge_note(results(-0.01, 0.002), "T", "S", "judge WER")
    assert paired_judge_note(results(-0.01, 0.002), "S", "T", "judge WER") == ""  # no such pair
    assert paired_judge_note({"info": {}, "comparisons": [{"a": "T", "b": "S"}]}, "T", "S", "x") == ""  # no judge
