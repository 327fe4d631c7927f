"""The intelligibility judge: our own CTC recogniser for the built-in espeak-ng voices.

pocketsphinx reads even natural espeak-ng speech at 41.5 % WER, so it cannot rank our
voices, and nothing offline reads Mandarin. The judge is a small convolutional CTC
recogniser (:mod:`.model`) trained on its own espeak-ng corpus (:mod:`.corpus`: another
seed than the TTS corpora, rate/pitch variation, Griffin-Lim resynthesis, light noise;
the hard sets and the TTS val/test sentences excluded). It hears audio through its own
front end (:mod:`.frontend`), decodes greedily with no language model (a language model
would put skipped words back) and writes English as espeak-ng phonemes (one token per word)
or Mandarin as toned pinyin.

Shipped judges (float16 weights in ``judge/shipped/<lang>/``) load with
:meth:`Judge.shipped`; a directory made by ``tacokd judge train`` loads with
:meth:`Judge.from_dir`.

Example:
    >>> from tf_tacokd.judge import Judge
    >>> judge = Judge.shipped("en")  # doctest: +SKIP
    >>> judge.transcribe([wav], sample_rate=22050)  # doctest: +SKIP
    ['the quick brown fox']
    >>> judge.score(wav, 22050, "the quick brown fox jumps.")["wer"]  # doctest: +SKIP
    0.2
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .frontend import ALPHABETS, judge_features, label_text

__all__ = ["Judge", "available_judges", "pack_judge", "label_text", "judge_features"]


def _shipped_root() -> Path:
    return Path(str(importlib.resources.files("tf_tacokd.judge"))) / "shipped"


def available_judges() -> list[str]:
    """Languages with a shipped judge."""
    root = _shipped_root()
    return sorted(p.name for p in root.iterdir() if (p / "weights.npz").is_file()) if root.is_dir() else []


class Judge:
    """A trained recogniser and its language.

    Args:
        model: a :class:`~.model.CTCRecognizer`.
        lang: "en" or "zh".
        info: the training summary (``judge.json``).
    """

    def __init__(self, model, lang: str, info: dict | None = None) -> None:
        if lang not in ALPHABETS:
            raise ValueError(f"no judge alphabet for language {lang!r}: use en or zh")
        self.model, self.lang, self.info = model, lang, info or {}
        self.alphabet = ALPHABETS[lang]

    @classmethod
    def from_dir(cls, path: str | Path) -> "Judge":
        """A judge directory made by ``tacokd judge train`` (``judge.keras`` + ``judge.json``)."""
        import keras

        from . import model as _registers  # noqa: F401

        path = Path(path)
        if not (path / "judge.keras").is_file():
            raise FileNotFoundError(f"{path}: no judge.keras; train one with `tacokd judge train --out {path}`")
        info = json.loads((path / "judge.json").read_text(encoding="utf-8"))
        return cls(keras.saving.load_model(path / "judge.keras", compile=False), info["lang"], info)

    @classmethod
    def shipped(cls, lang: str) -> "Judge":
        """The judge shipped in the package for ``lang``."""
        src = _shipped_root() / lang
        if not (src / "weights.npz").is_file():
            raise FileNotFoundError(f"no shipped judge for {lang!r} in this installation ({src}); "
                                    f"train one with `tacokd judge train --lang {lang} --out DIR`")
        return cls._from_packed(src)

    @classmethod
    def load(cls, lang: str, path: str | Path | None = None) -> "Judge":
        """``path`` (a judge directory or a packed judge) if given, else the shipped judge."""
        if path is None:
            return cls.shipped(lang)
        path = Path(path)
        judge = cls._from_packed(path) if (path / "weights.npz").is_file() else cls.from_dir(path)
        if judge.lang != lang:
            raise ValueError(f"{path} is a {judge.lang} judge, not {lang}")
        return judge

    @classmethod
    def _from_packed(cls, src: Path) -> "Judge":
        from .model import CTCRecognizer

        info = json.loads((src / "judge.json").read_text(encoding="utf-8"))
        model = CTCRecognizer(**info["model"])
        model(np.zeros((1, 8, model.n_mels), np.float32), np.array([8]))
        with np.load(src / "weights.npz") as z:
            model.set_weights([z[k].astype(np.float32) for k in sorted(z.files)])
        judge = cls(model, info["lang"], info)
        if (src / "heard.npy").is_file():
            judge._heard = np.load(src / "heard.npy")
        return judge

    def heard(self, labels: Sequence[str]) -> list[bool]:
        """Whether each label (:func:`label_text`) was in this judge's training corpus (False
        for all when the judge carries no record of it)."""
        record = getattr(self, "_heard", None)
        if record is None:
            return [False] * len(labels)
        return [bool(np.isin(np.uint64(label_hash(x)), record)) for x in labels]

    def transcribe(self, wavs: Sequence[np.ndarray], sample_rate: int | Sequence[int]) -> list[str]:
        """Greedy transcripts of waveforms (batched by length)."""
        from .model import transcribe_features

        rates = [sample_rate] * len(wavs) if isinstance(sample_rate, int) else list(sample_rate)
        feats = [judge_features(w, sr) for w, sr in zip(wavs, rates)]
        return transcribe_features(self.model, feats, self.alphabet)

    def transcribe_files(self, paths: Sequence[str | Path]) -> list[str]:
        """Transcripts of audio files (any sample rate soundfile reads)."""
        import soundfile as sf

        wavs, rates = [], []
        for p in paths:
            try:
                wav, sr = sf.read(str(p), dtype="float32")
            except (RuntimeError, OSError) as e:
                raise ValueError(f"{p}: cannot read audio ({e})") from None
            wavs.append(wav)
            rates.append(sr)
        return self.transcribe(wavs, rates)

    def score(self, wav: np.ndarray, sample_rate: int, reference: str) -> dict:
        """Transcript and intelligibility figures of one utterance against the normalised text
        it should say, both in the judge's label space (English: espeak-ng phonemes per word;
        see :func:`~tf_tacokd.evaluate.intelligibility.label_scores`)."""
        from ..evaluate.intelligibility import label_scores

        hyp = self.transcribe([wav], sample_rate)[0]
        ref = label_text(reference, self.lang)
        return {"transcript": hyp, "reference": ref, **label_scores(ref, hyp, self.lang)}


def label_hash(label: str) -> int:
    """A 64-bit fingerprint of a label (what the judge heard in training is kept as these)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little")


def pack_judge(judge_dir: str | Path, dest: str | Path | None = None, corpus: str | Path | None = None) -> Path:
    """Store a trained judge as float16 weights + its description (``shipped/<lang>/``), and
    the fingerprints of every label in its training corpus (``heard.npy``), so evaluation can
    say whether a test sentence was ever heard in training (:meth:`Judge.heard`)."""
    judge = Judge.from_dir(judge_dir)
    out = Path(dest or _shipped_root() / judge.lang)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "weights.npz", **{f"w{i:03d}": np.asarray(w, np.float16)
                                                for i, w in enumerate(judge.model.get_weights())})
    items = json.loads((Path(corpus or Path(judge_dir) / "corpus") / "items.json").read_text(encoding="utf-8"))
    np.save(out / "heard.npy", np.unique(np.array([label_hash(it["label"]) for it in items["items"]], np.uint64)))
    info = dict(judge.info)
    info["model"] = {k: v for k, v in judge.model.get_config().items() if k != "name"}
    (out / "judge.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return out
