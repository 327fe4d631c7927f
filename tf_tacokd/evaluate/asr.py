"""English speech recognition (pocketsphinx, offline) and word/character error rates (jiwer).

The paper's robustness figure counts repeats and skips: with ASR these are the insertions and
deletions, so ``ins_del_rate = (insertions + deletions) / reference words`` is reported next to
the usual WER and CER.

pocketsphinx misreads digital silence (espeak and Griffin-Lim both produce exact zeros), so a
seeded noise floor (``eval.asr_noise_dbfs``, -50 dBFS RMS by default) is added to every clip
before recognition; with the same seed per utterance every system hears the same noise.

Example:
    >>> e = word_errors("the cat sat on the mat", "the the cat sat mat")
    >>> e.insertions, e.deletions, e.substitutions, round(e.ins_del_rate, 3)
    (1, 2, 0, 0.5)
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ASR_SAMPLE_RATE", "ErrorCounts", "SpeechRecognizer", "add_noise", "asr_available",
           "normalize_for_wer", "word_errors"]

ASR_SAMPLE_RATE = 16000


def asr_available() -> bool:
    """True if pocketsphinx and jiwer are installed (the ``eval`` extra)."""
    return all(importlib.util.find_spec(m) is not None for m in ("pocketsphinx", "jiwer"))


def normalize_for_wer(text: str) -> str:
    """Lower case, letters, digits and apostrophes only, single spaces."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


@dataclass(frozen=True)
class ErrorCounts:
    """Alignment of a hypothesis against a reference, in words (and the CER in characters)."""

    reference_words: int
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    cer: float

    @property
    def wer(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(self.reference_words, 1)

    @property
    def ins_del_rate(self) -> float:
        """The paper's robustness 'WER': repeats (insertions) + skips (deletions) per word."""
        return (self.insertions + self.deletions) / max(self.reference_words, 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "wer": self.wer, "ins_del_rate": self.ins_del_rate}


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Word-level substitutions, deletions and insertions (jiwer) after :func:`normalize_for_wer`."""
    import jiwer

    ref, hyp = normalize_for_wer(reference), normalize_for_wer(hypothesis)
    if not ref:
        raise ValueError(f"empty reference after normalisation: {reference!r}")
    n = len(ref.split())
    if not hyp:  # jiwer rejects empty strings: everything was deleted
        return ErrorCounts(n, 0, 0, n, 0, 1.0)
    out = jiwer.process_words(ref, hyp)
    return ErrorCounts(n, out.hits, out.substitutions, out.deletions, out.insertions,
                       float(jiwer.cer(ref, hyp)))


def add_noise(wav: np.ndarray, dbfs: float, seed: int) -> np.ndarray:
    """``wav`` plus white Gaussian noise of RMS ``dbfs`` relative to full scale (seeded)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(wav)) * 10.0 ** (dbfs / 20.0)
    return (np.asarray(wav, np.float64) + noise).astype(np.float32)


class SpeechRecognizer:
    """pocketsphinx with its bundled US English acoustic model, language model and dictionary.

    Args:
        noise_dbfs: noise floor added before recognition (None: none).

    Example:
        >>> asr = SpeechRecognizer()  # doctest: +SKIP
        >>> asr.transcribe(wav, 22050, seed=3)  # doctest: +SKIP
        'the quick brown fox'
    """

    def __init__(self, noise_dbfs: float | None = -50.0) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as e:  # pragma: no cover - depends on the installation
            raise ImportError("English ASR needs pocketsphinx: pip install 'tf_tacokd[eval]'") from e
        self.noise_dbfs = noise_dbfs
        self._decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")

    def transcribe(self, wav: np.ndarray, sample_rate: int, seed: int = 0) -> str:
        """Text heard in ``wav`` (float, any rate; resampled to 16 kHz, peak-normalised)."""
        import soxr

        x = np.asarray(wav, np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected mono audio, got shape {x.shape}")
        if sample_rate != ASR_SAMPLE_RATE:
            x = soxr.resample(x, sample_rate, ASR_SAMPLE_RATE).astype(np.float32)
        peak = float(np.abs(x).max()) if x.size else 0.0
        if peak > 0:
            x = x / peak * 0.9
        if self.noise_dbfs is not None:
            x = add_noise(x, self.noise_dbfs, seed)
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""
