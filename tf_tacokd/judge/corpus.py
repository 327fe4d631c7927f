"""The judge's own training corpus: espeak-ng speech with the variety a listener tolerates.

Sentences come from the same machinery as the TTS corpus (:func:`generate_sentences`:
Debian fortunes and templates with numbers, dates and money) but another seed, plus
kinds the hard sets need a listener for: word salad (no context to guess from), spelled
letters, digit strings and repeated words (en); random Hanzi strings, single characters,
digit strings and repeated syllables (zh). Every utterance is spoken by espeak-ng at a
random rate and pitch; a share is resynthesised through the project's Griffin-Lim at the
TTS settings (mel -> audio), a few of those from a slightly time-blurred mel (what an
over-smoothed but readable TTS voice sounds like), and half get light white noise.

Excluded, by their label text (:func:`~tf_tacokd.judge.frontend.label_text`): every
sentence of the built-in hard set, of the validation and test splits of the built-in TTS
corpora (as ``tacokd run`` / ``make-corpus --seed <split_seed>`` build them for every
built-in config of the language), and of any sentence file or preprocessed data directory
given (:func:`excluded_labels`). Time masking is deliberately not used in training: a
judge taught to fill in masked words would put skipped words back.

Shards (``shard-NNNNN.npz``: float16 features, lengths, labels, kinds) are written
atomically, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import random
import re
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..atomic import atomic_path, write_json
from ..data.corpora import corpus_item_id, espeak_render, spoken_text
from .frontend import judge_features, label_text, labels

__all__ = ["JudgeItem", "judge_items", "excluded_labels", "build_corpus", "load_corpus"]

# the mix of sentence kinds per language (shares sum to 1)
KINDS = {
    "en": {"sentence": 0.70, "word_salad": 0.12, "letters": 0.09, "digits": 0.05, "repeated": 0.04},
    "zh": {"sentence": 0.70, "word_salad": 0.14, "single": 0.04, "digits": 0.07, "repeated": 0.05},
}
GL_SHARE = 0.3  # resynthesised through the project's Griffin-Lim
BLUR_SHARE = 0.2  # of those, from a time-blurred mel
NOISE_SHARE = 0.5


@dataclass(frozen=True)
class JudgeItem:
    """One utterance to render: its kind, what espeak-ng speaks, and the label."""

    index: int
    kind: str
    spoken: str
    label: str


# ---------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------


def _words(lang: str, seed: int) -> list[str]:
    """Vocabulary for word salad: words (en) or Hanzi (zh) of the fortunes sentences."""
    from ..data.corpora import generate_sentences

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool = generate_sentences(lang, 4000, seed=seed + 1, template_share=0.0)
    if lang == "en":
        return sorted({w for s in pool for w in re.findall(r"[A-Za-z']+", s) if len(w.strip("'")) > 0})
    return sorted({c for s in pool for c in s if "\u4e00" <= c <= "\u9fff"})


def _raw_text(kind: str, lang: str, rng: random.Random, words: Sequence[str]) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if lang == "en":
        if kind == "word_salad":
            return " ".join(rng.choice(words) for _ in range(rng.randint(2, 14))) + rng.choice(".?!")
        if kind == "letters":
            seq = " ".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))
            if rng.random() < 0.3:
                seq = f"{rng.choice(words).capitalize()} {seq}"
            return seq + rng.choice(".?")
        if kind == "digits":
            return " ".join(str(rng.randint(0, 9 if rng.random() < 0.7 else 99)) for _ in range(rng.randint(1, 10))) + "."
        if kind == "repeated":
            w = rng.choice(words)
            return " ".join([w] * rng.randint(2, 6)) + "."
    else:
        if kind == "word_salad":
            return "".join(rng.choice(words) for _ in range(rng.randint(2, 16))) + "。"
        if kind == "single":
            return rng.choice(words) + rng.choice("。！？")
        if kind == "digits":
            return "".join(rng.choice("一二三四五六七八九十零") for _ in range(rng.randint(1, 10))) + "。"
        if kind == "repeated":
            c = "".join(rng.choice(words) for _ in range(rng.randint(1, 2)))
            return "，".join([c] * rng.randint(2, 5)) + "。"
    raise ValueError(f"unknown sentence kind {kind!r} for {lang}")


def judge_items(lang: str, size: int, seed: int, exclude: set[str] = frozenset()) -> list[JudgeItem]:
    """``size`` utterances of the judge's corpus (deterministic for a seed), none of whose
    labels is in ``exclude``; exact duplicates (by label) are dropped and replaced."""
    from ..data.corpora import generate_sentences
    from ..text import TextFrontEnd
    from .frontend import labels

    rng = random.Random(seed)
    fe = TextFrontEnd(lang)
    kinds = KINDS[lang]
    n_sentences = int(round(size * kinds["sentence"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sentences = generate_sentences(lang, n_sentences + size // 5, seed=seed)
    words = _words(lang, seed)
    others = [k for k in kinds if k != "sentence"]
    weights = [kinds[k] for k in others]
    seen = set(exclude)
    items: list[JudgeItem] = []
    pool = iter(sentences)
    want = {"sentence": n_sentences, "other": size - n_sentences}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(items) < size:
            have_sentences = sum(it.kind == "sentence" for it in items)
            candidates: list[tuple[str, str]] = []
            for _ in range(max(16, int(1.1 * (size - len(items))))):
                if have_sentences + sum(k == "sentence" for k, _ in candidates) < want["sentence"]:
                    raw, kind = next(pool, None), "sentence"
                    if raw is None:  # the fortunes ran out: the rest are other kinds
                        want["sentence"] = have_sentences
                        continue
                else:
                    kind = rng.choices(others, weights)[0]
                    raw = _raw_text(kind, lang, rng, words)
                try:
                    candidates.append((kind, spoken_text(fe, raw, lang)))
                except ValueError:
                    continue
            for (kind, spoken), label in zip(candidates, labels([c[1] for c in candidates], lang)):
                if len(items) >= size:
                    break
                if not label or label in seen:
                    continue
                seen.add(label)
                items.append(JudgeItem(len(items), kind, spoken, label))
    rng.shuffle(items)
    return [JudgeItem(i, it.kind, it.spoken, it.label) for i, it in enumerate(items)]


@lru_cache(maxsize=8)
def _tts_heldout(lang: str, size: int, seed: int, val_size: int, test_size: int) -> frozenset[str]:
    """Labels of the val + test split of the built-in TTS corpus made with these settings."""
    from ..config import Config, DataConfig
    from ..data.corpora import generate_sentences
    from ..data.preprocess import _split
    from ..text import TextFrontEnd

    fe = TextFrontEnd(lang)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sentences = generate_sentences(lang, size, seed)
    ids: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, raw in enumerate(sentences, 1):
            try:
                ids[corpus_item_id(lang, i)] = spoken_text(fe, raw, lang)
            except ValueError:
                continue
    cfg = Config(data=DataConfig(split_seed=seed, val_size=val_size, test_size=test_size))
    split = _split(list(ids), cfg)
    return frozenset(labels([ids[i] for i in split["val"] + split["test"]], lang))


def excluded_labels(lang: str, sentence_files: Iterable[str | Path] = (),
                    data_dirs: Iterable[str | Path] = ()) -> set[str]:
    """Labels the judge must never train on (see the module docstring).

    Args:
        lang: "en" or "zh".
        sentence_files: test-sentence files (``evaluate --sentences FILE``) to exclude too.
        data_dirs: preprocessed TTS data directories whose val and test splits to exclude.
    """
    from ..config import list_builtin_configs, load_config
    from ..evaluate.testsets import builtin_hard, load_sentence_file
    from ..text import TextFrontEnd

    fe = TextFrontEnd(lang)
    out: set[str] = set()

    def add(texts: Iterable[str]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in texts:
                try:
                    out.add(label_text(spoken_text(fe, t, lang), lang))
                except ValueError:
                    continue

    add(s.text for s in builtin_hard(lang))
    for name in list_builtin_configs():
        cfg = load_config(name)
        if cfg.text.language == lang and name.split("_")[0] in ("espeak", "quick", "voice", "tiny"):
            d = cfg.data
            out |= _tts_heldout(lang, d.corpus_size, d.split_seed, d.val_size, d.test_size)
    for f in sentence_files:
        add(s.text for s in load_sentence_file(f))
    for d in data_dirs:
        add(s.text for s in _data_heldout(d))
    out.discard("")
    return out


def _data_heldout(data_dir: str | Path):
    """The val and test sentences of a preprocessed data directory."""
    from ..data.dataset import load_manifest
    from ..evaluate.testsets import TestSentence

    manifest = load_manifest(data_dir)
    for split in ("val", "test"):
        for uid, text, _ in manifest.texts(split):
            yield TestSentence(uid, split, text)


# ---------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _tts_audio_configs(lang: str):
    from ..config import load_config

    names = ["espeak_en", "voice_en"] if lang == "en" else ["espeak_zh", "voice_zh"]
    return [load_config(n).audio for n in names]


def _resynthesize(wav: np.ndarray, sr: int, cfg, blur: bool, seed: int) -> tuple[np.ndarray, int]:
    """mel -> audio through the project's Griffin-Lim at a TTS audio config."""
    import librosa

    from ..audio import log_mel, mel_to_audio

    if sr != cfg.sample_rate:
        wav = librosa.resample(wav, orig_sr=sr, target_sr=cfg.sample_rate, res_type="soxr_hq")
    mel = log_mel(wav, cfg)
    if blur:  # a 3-tap time smoothing of the log-mel: over-smoothed but readable
        padded = np.pad(mel, ((1, 1), (0, 0)), mode="edge")
        mel = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return mel_to_audio(mel, cfg, seed=seed), cfg.sample_rate


def render(item: JudgeItem, lang: str, seed: int) -> tuple[np.ndarray, str]:
    """The judge's input features for one item and a description of its variant."""
    rng = random.Random(seed * 1_000_003 + item.index)
    rate, pitch = rng.randint(140, 215), rng.randint(30, 70)
    wav, sr = espeak_render(item.spoken, lang, rate, pitch)
    variant = f"rate{rate}-pitch{pitch}"
    if rng.random() < GL_SHARE:
        cfg = rng.choice(_tts_audio_configs(lang))
        blur = rng.random() < BLUR_SHARE
        wav, sr = _resynthesize(wav, sr, cfg, blur, rng.randint(0, 2**31))
        variant += f"-gl{cfg.sample_rate}" + ("-blur" if blur else "")
    if rng.random() < NOISE_SHARE:
        snr = rng.uniform(15.0, 40.0)
        power = float(np.mean(wav**2)) + 1e-12
        noise = np.random.default_rng(rng.randint(0, 2**31)).standard_normal(len(wav)).astype(np.float32)
        wav = wav + noise * np.sqrt(power / 10 ** (snr / 10))
        variant += f"-snr{snr:.0f}"
    return judge_features(wav, sr), variant


def _render_shard(task: dict) -> str:
    import os as _os

    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    items = [JudgeItem(**d) for d in task["items"]]
    feats, labels, kinds, variants = [], [], [], []
    for it in items:
        try:
            f, variant = render(it, task["lang"], task["seed"])
        except RuntimeError:
            continue
        feats.append(f.astype(np.float16))
        labels.append(it.label)
        kinds.append(it.kind)
        variants.append(variant)
    path = Path(task["path"])
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=np.concatenate(feats), lengths=np.array([len(f) for f in feats], np.int32),
                 labels=np.array(labels), kinds=np.array(kinds), variants=np.array(variants))
    return path.name


def build_corpus(lang: str, out: str | Path, size: int = 12000, val_size: int = 300, seed: int = 7,
                 shard_size: int = 250, workers: int = 1, exclude: set[str] | None = None,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Render the judge's corpus into ``out/train-NNNNN.npz`` and ``out/val-NNNNN.npz``.

    Resumable: finished shards are kept. ``out/items.json`` records the items (text,
    label, kind) and the exclusion count.

    Many parameters because each is a ``tacokd judge train`` option; all but the first two have
    defaults.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exclude = excluded_labels(lang) if exclude is None else exclude
    items = judge_items(lang, size + val_size, seed, exclude)
    overlap = {it.label for it in items} & exclude
    if overlap:  # judge_items guarantees this; checked again because it is the judge's contract
        raise AssertionError(f"judge corpus overlaps excluded sentences: {sorted(overlap)[:3]}")
    listing = out / "items.json"
    write_json(listing, {"lang": lang, "seed": seed, "size": size, "val_size": val_size, "excluded": len(exclude),
                         "items": [it.__dict__ for it in items]}, indent=None, ensure_ascii=False)
    splits = {"val": items[:val_size], "train": items[val_size:]}
    tasks = []
    for split, split_items in splits.items():
        for k in range(0, len(split_items), shard_size):
            path = out / f"{split}-{k // shard_size:05d}.npz"
            chunk = split_items[k:k + shard_size]
            if path.is_file():
                if progress:
                    progress(len(chunk))
                continue
            tasks.append({"lang": lang, "seed": seed, "path": str(path), "items": [c.__dict__ for c in chunk]})
    if workers <= 1:
        for t in tasks:
            _render_shard(t)
            if progress:
                progress(len(t["items"]))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for t, _ in zip(tasks, pool.map(_render_shard, tasks)):
                if progress:
                    progress(len(t["items"]))
    return out


def load_corpus(root: str | Path, split: str) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Features (float16 ``[T, 80]`` each), labels and kinds of one split of a judge corpus."""
    feats: list[np.ndarray] = []
    labels: list[str] = []
    kinds: list[str] = []
    files = sorted(Path(root).glob(f"{split}-*.npz"))
    if not files:
        raise FileNotFoundError(f"{root}: no {split}-*.npz shards; build the corpus first")
    for path in files:
        with np.load(path) as z:
            offsets = np.concatenate([[0], np.cumsum(z["lengths"])])
            f = z["features"]
            feats += [f[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            labels += [str(x) for x in z["labels"]]
            kinds += [str(x) for x in z["kinds"]]
    return feats, labels, kinds
