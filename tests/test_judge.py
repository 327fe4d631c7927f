"""The intelligibility judge: scoring maths, CTC decoding, corpus exclusions, a tiny judge
that overfits, and the shipped judges on espeak-ng speech."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tf_tacokd.evaluate.intelligibility import (
    edit_counts,
    english_chars,
    english_words,
    intelligibility_scores,
    pinyin_syllables,
    toneless,
)
from tf_tacokd.judge.frontend import ALPHABETS, judge_features, label_text
from tf_tacokd.judge.model import greedy_decode

from .conftest import requires_espeak

# ---------------------------------------------------------------------------
# Error counting
# ---------------------------------------------------------------------------


def test_edit_counts_by_hand():
    c = edit_counts("a b c d".split(), "a x c c d e".split())
    assert (c.substitutions, c.deletions, c.insertions) == (1, 0, 2)
    c = edit_counts("the cat sat on the mat".split(), "the sat on mat".split())
    assert (c.substitutions, c.deletions, c.insertions) == (0, 2, 0)
    assert c.rate() == pytest.approx(2 / 6) and c.ins_del_rate() == pytest.approx(2 / 6)
    assert edit_counts([], ["x"]).insertions == 1
    assert edit_counts(["x", "y"], []).deletions == 2


def test_edit_counts_agree_with_jiwer_on_random_sentences():
    jiwer = pytest.importorskip("jiwer")
    rng = random.Random(0)
    vocab = "a b c d e f".split()
    for _ in range(300):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 9))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(1, 9))]
        ours = edit_counts(ref, hyp)
        theirs = jiwer.process_words(" ".join(ref), " ".join(hyp))
        assert ours.errors == theirs.substitutions + theirs.deletions + theirs.insertions
        assert ours.deletions - ours.insertions == len(ref) - len(hyp)


def test_english_units():
    assert english_words("Nineteen seventy-seven, doctor Smith's 'big' day.") == [
        "nineteen", "seventy", "seven", "doctor", "smith's", "big", "day"]
    assert english_chars("a b-c") == ["a", "b", "c"]
    s = intelligibility_scores("the quick brown fox.", "the quick quick fox", "en")
    assert (s["word_ins"], s["word_del"], s["word_sub"]) in {(1, 1, 0), (0, 0, 1)}
    assert s["words"] == 4 and s["wer"] == pytest.approx(s["word_sub"] / 4 + (s["word_ins"] + s["word_del"]) / 4)


def test_syllables_tones_erhua_and_neutral_tone():
    assert pinyin_syllables("ni3 hao3, hua4 r5!") == ["ni3", "hao3", "huar4"]
    assert pinyin_syllables("hua4r") == ["huar4"] == pinyin_syllables("huar4")
    assert pinyin_syllables("ma lv4 nü3") == ["ma5", "lv4", "nv3"]  # missing tone = neutral 5
    assert toneless(["ma1", "huar4", "le5"]) == ["ma", "huar", "le"]
    s = intelligibility_scores("ma1 ma1 qi2 ma3", "ma1 ma2 qi2 ma3", "zh")
    assert s["ser"] == pytest.approx(0.25) and s["ser_toneless"] == 0.0
    s = intelligibility_scores("ni3 hao3 ma5 ne5", "ni3 ni3 hao3 ma5", "zh")  # a repeat and a dropped syllable
    assert (s["syl_ins"], s["syl_del"], s["syl_sub"]) == (1, 1, 0) and s["insdel_syllable"] == pytest.approx(0.5)
    assert intelligibility_scores("yi1 ge4 r5", "yi1 ger4", "zh")["ser"] == 0.0


@requires_espeak
def test_label_text():
    # English: espeak-ng's phonemes, one token per word, no stress or pause marks
    hello = label_text("hello world.", "en")
    assert len(hello.split()) == 2 and "'" not in hello and "_" not in hello
    assert label_text("one, one. one one", "en").split() == [label_text("one", "en")] * 4
    assert label_text("...", "en") == ""
    assert label_text("yin2 hang2 hang2 zhang3, le5.", "zh") == "yin2 hang2 hang2 zhang3 le5"
    for lang in ("en", "zh"):
        a = ALPHABETS[lang]
        text = label_text("it's a test of the thirty-three thieves.", "en") if lang == "en" else "ni3 hao3 ma5"
        assert a.decode(a.encode(text)) == text and 0 not in a.encode(text)


def test_phoneme_words_ignore_word_boundaries_but_not_skips_or_repeats():
    from tf_tacokd.evaluate.intelligibility import phoneme_word_counts as pw

    ref = "wEn aUt InD@2 l0bi"
    assert pw(ref, "wEnaUt InD@2 l0bi").errors == 0  # a gap heard elsewhere is no error
    assert (pw(ref, "wEn InD@2 l0bi").deletions, pw(ref, "wEn InD@2 l0bi").errors) == (1, 1)  # a skip
    repeat = pw(ref, "wEn aUt aUt InD@2 l0bi")
    assert (repeat.insertions, repeat.errors) == (1, 1)
    assert pw(ref, "wEn aUd InD@2 l0bi").substitutions == 1  # one wrong phoneme: one wrong word
    assert pw(ref, "").deletions == 4 and pw("", "x").insertions == 1


def test_phoneme_word_status_names_the_word_that_was_skipped_or_changed():
    from tf_tacokd.evaluate.intelligibility import phoneme_word_status as ws

    ref = "wEn aUt InD@2 l0bi"
    assert ws(ref, "wEnaUt InD@2 l0bi") == (["C", "C", "C", "C"], 0)
    assert ws(ref, "wEn InD@2 l0bi") == (["C", "D", "C", "C"], 0)
    assert ws(ref, "wEn aUt InD@2 l0pi") == (["C", "C", "C", "S"], 0)
    assert ws(ref, "wEn aUt aUt InD@2 l0bi")[1] == 1
    assert ws("", "") == ([], 0)


def test_label_scores_count_words_and_phonemes():
    from tf_tacokd.evaluate.intelligibility import label_scores

    s = label_scores("h@loU w3:ld", "h@loU h@loU w3:ld", "en")
    assert (s["word_ins"], s["word_del"], s["words"], s["chars"]) == (1, 0, 2, 10)
    s = label_scores("h@loU w3:ld", "h@lo w3:ld", "en")
    assert s["word_sub"] == 1 and s["cer"] == pytest.approx(1 / 10)
    assert label_scores("ni3 hao3", "ni3", "zh")["syl_del"] == 1


# ---------------------------------------------------------------------------
# CTC decoding
# ---------------------------------------------------------------------------


def test_greedy_decode_hand_made_posteriors():
    blank, a, b = 0, 1, 2

    def post(path):
        p = np.full((len(path), 3), 0.05)
        p[np.arange(len(path)), path] = 0.9
        return p

    assert greedy_decode(post([blank, a, a, blank, b, b, blank])) == [a, b]
    assert greedy_decode(post([a, a, blank, a])) == [a, a]  # a blank separates a doubled letter
    assert greedy_decode(post([a, a, a])) == [a]  # repeats without a blank merge
    assert greedy_decode(post([blank, blank])) == []
    assert greedy_decode(post([a, b, a, b]), length=2) == [a, b]  # frames past the length are ignored


def test_greedy_decode_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 30, 6)).astype(np.float32) * 3
    lengths = np.array([30, 17, 5, 1], np.int32)
    # tf.nn.ctc_greedy_decoder puts the blank last: move ours (0) there
    moved = np.concatenate([logits[..., 1:], logits[..., :1]], axis=-1)
    (decoded,), _ = tf.nn.ctc_greedy_decoder(np.transpose(moved, (1, 0, 2)), lengths, merge_repeated=True)
    dense = tf.sparse.to_dense(decoded, default_value=-1).numpy()
    for k in range(4):
        theirs = [int(i) + 1 for i in dense[k] if i >= 0]
        assert greedy_decode(logits[k], int(lengths[k])) == theirs


# ---------------------------------------------------------------------------
# The corpus never contains a test sentence
# ---------------------------------------------------------------------------


@requires_espeak
def test_judge_corpus_excludes_hard_and_heldout_sentences(tmp_path):
    from tf_tacokd.evaluate.testsets import builtin_hard
    from tf_tacokd.data.corpora import spoken_text
    from tf_tacokd.judge.corpus import KINDS, excluded_labels, judge_items
    from tf_tacokd.text import TextFrontEnd

    for lang in ("en", "zh"):
        (tmp_path / f"mine_{lang}.txt").write_text("custom\tThe exclusion file works.\n" if lang == "en"
                                                   else "custom\t排除文件有效。\n", encoding="utf-8")
        exclude = excluded_labels(lang, [tmp_path / f"mine_{lang}.txt"])
        fe = TextFrontEnd(lang)
        with _quiet():
            hard = {label_text(spoken_text(fe, s.text, lang), lang) for s in builtin_hard(lang)}
        assert hard <= exclude
        assert label_text(spoken_text(fe, "The exclusion file works." if lang == "en" else "排除文件有效。", lang),
                          lang) in exclude
        # 300 items is enough for single letters / characters to come up: they must be excluded too
        items = judge_items(lang, 300, seed=7, exclude=exclude)
        labels = [it.label for it in items]
        assert len(labels) == 300 and len(set(labels)) == 300
        assert not set(labels) & exclude
        assert {it.kind for it in items} == set(KINDS[lang])


@requires_espeak
def test_heldout_split_reproduces_preprocessing(tmp_path):
    """The judge's copy of a TTS corpus' val/test split is the split preprocessing makes."""
    from tf_tacokd.config import load_config
    from tf_tacokd.data.corpora import make_corpus
    from tf_tacokd.data.preprocess import preprocess
    from tf_tacokd.judge.corpus import _data_heldout, _tts_heldout

    cfg = load_config("tiny_en", ["data.val_size=3", "data.test_size=4", "data.split_seed=99",
                                  "data.corpus_size=24", "audio.max_duration=20.0", "data.max_frames=5000"])
    make_corpus("en", tmp_path / "corpus", size=24, seed=99)
    preprocess(cfg, tmp_path / "corpus", tmp_path / "data")
    from_data = {label_text(s.text, "en") for s in _data_heldout(tmp_path / "data")}
    assert len(from_data) == 7
    assert from_data == set(_tts_heldout("en", 24, 99, 3, 4))


class _quiet:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


@requires_espeak
def test_tiny_judge_overfits_a_few_utterances(tmp_path):
    from tf_tacokd.data.corpora import espeak_render
    from tf_tacokd.judge.model import CTCRecognizer
    from tf_tacokd.judge.model import transcribe_features
    from tf_tacokd.judge.training import JudgeSettings, WarmupCosine, _dataset

    import keras

    texts = ["red fox", "blue sky", "green tea", "big dog", "hot sun", "cold ice"]
    feats = [judge_features(*espeak_render(t, "en")) for t in texts]
    alphabet = ALPHABETS["en"]
    labels = [alphabet.encode(t) for t in texts]
    keras.utils.set_random_seed(0)
    s = JudgeSettings(batch_frames=100000, freq_masks=0, seed=0)
    model = CTCRecognizer(alphabet.size, channels=96, blocks=4, kernel_size=9, dropout=0.0)
    stacked = np.concatenate(feats)
    model.set_feature_stats(stacked.mean(0), stacked.std(0))
    model.compile(optimizer=keras.optimizers.Adam(WarmupCosine(3e-3, 20, 250)))
    before = transcribe_features(model, feats, alphabet)
    model.fit(_dataset(feats, labels, s, train=True, epoch_seed=0), epochs=1, steps_per_epoch=250, verbose=0)
    after = transcribe_features(model, feats, alphabet)
    # an utterance is heard the same alone as in a padded batch
    assert after == [transcribe_features(model, [f], alphabet)[0] for f in feats]
    cer = [intelligibility_scores(t, h, "en")["cer"] for t, h in zip(texts, after)]
    assert np.mean(cer) < 0.1, list(zip(texts, after))
    assert np.mean([intelligibility_scores(t, h, "en")["cer"] for t, h in zip(texts, before)]) > 0.5


def test_batches_respect_the_frame_budget():
    from tf_tacokd.judge.model import batches

    rng = random.Random(0)
    lengths = [rng.randint(50, 700) for _ in range(500)]
    groups = batches(lengths, 4000, random.Random(1))
    assert sorted(i for g in groups for i in g) == list(range(500))
    assert all(max(lengths[i] for i in g) * len(g) <= 4000 or len(g) == 1 for g in groups)


# ---------------------------------------------------------------------------
# The shipped judges
# ---------------------------------------------------------------------------

FLOOR_SENTENCES = {
    "en": ["The weather was cold, so we stayed inside and read old letters.",
           "Please call me back at five thirty tomorrow.",
           "A B C D, then X Y Z."],
    "zh": ["今天天气很好，我们去公园散步吧。", "他在一九九八年去了北京。", "我喜欢喝绿茶。"],
}


@requires_espeak
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_shipped_judge_hears_espeak(lang):
    from tf_tacokd.judge import Judge, available_judges
    from tf_tacokd.data.corpora import espeak_render, spoken_text
    from tf_tacokd.text import TextFrontEnd

    if lang not in available_judges():
        pytest.skip(f"no shipped {lang} judge in this checkout")
    judge = Judge.shipped(lang)
    fe = TextFrontEnd(lang)
    with _quiet():
        spoken = [spoken_text(fe, t, lang) for t in FLOOR_SENTENCES[lang]]
    audio = [espeak_render(s, lang) for s in spoken]
    hyps = judge.transcribe([a for a, _ in audio], [sr for _, sr in audio])
    from tf_tacokd.evaluate.intelligibility import label_scores

    key, unit = ("wer", "words") if lang == "en" else ("ser", "syllables")
    scores = [label_scores(label_text(s, lang), h, lang) for s, h in zip(spoken, hyps)]
    pooled = sum(x[key] * x[unit] for x in scores) / sum(x[unit] for x in scores)
    assert pooled <= 0.1, list(zip(spoken, hyps))
    # a drone of the right length is heard as (almost) nothing
    wav, sr = audio[0]
    drone = np.tile(np.sin(2 * np.pi * 150 * np.arange(sr // 10) / sr), len(wav) // (sr // 10) + 1)[: len(wav)]
    heard = judge.transcribe([0.3 * drone.astype(np.float32)], sr)[0]
    assert label_scores(label_text(spoken[0], lang), heard, lang)[f"{'word' if lang == 'en' else 'syl'}_del"] >= \
        0.8 * scores[0][unit]
