"""The judge's ears and alphabet: its own log-mel front end and its output symbols.

The judge hears audio the way a listener does, through a front end of its own, never the
TTS model's mel: any waveform is resampled to 16 kHz, peak-normalised, and turned into an
80-band log-mel (25 ms Hann window, 10 ms hop, 20-7600 Hz), standardised with fixed
per-band statistics learned from its training corpus (not per utterance, so a drone
stays a drone instead of being stretched to unit variance).

Alphabets (index 0 is the CTC blank):

- en: espeak-ng's phoneme mnemonics (``espeak-ng -x``: ``h@loU w3:ld``) without stress and
  pause marks, one token per word. English spelling cannot be heard: a recogniser without
  a language model that writes letters spends its errors on orthography ("beauties" ->
  "butis"; 52 % WER after two epochs, measured), while the phonemes of a word are what a
  listener hears, and espeak-ng gives them exactly for any reference text.
- zh: pinyin letters ``a``-``z``, tone digits ``1``-``5``, space (pinyin is phonemic).

Example:
    >>> import numpy as np
    >>> feats = judge_features(np.zeros(16000, np.float32), 16000)
    >>> feats.shape
    (101, 80)
    >>> ALPHABETS["zh"].decode(ALPHABETS["zh"].encode("ni3 hao3"))
    'ni3 hao3'
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..text.phonemes import espeak_phonemes

__all__ = ["SAMPLE_RATE", "N_MELS", "Alphabet", "ALPHABETS", "label_text", "labels", "espeak_phonemes",
           "judge_features", "log_mel_16k"]

SAMPLE_RATE = 16000
N_FFT = 512
WIN = 400
HOP = 160
N_MELS = 80
FMIN, FMAX = 20.0, 7600.0
FLOOR = 1e-5


@dataclass(frozen=True)
class Alphabet:
    """The judge's output symbols; id 0 is the CTC blank, symbol ``i`` has id ``i + 1``."""

    symbols: str

    @property
    def size(self) -> int:
        """Number of CTC classes, blank included."""
        return len(self.symbols) + 1

    def encode(self, text: str) -> list[int]:
        return [self.symbols.index(c) + 1 for c in text]

    def decode(self, ids) -> str:
        return "".join(self.symbols[i - 1] for i in ids if 0 < i <= len(self.symbols))


ALPHABETS = {
    # every symbol espeak-ng's -x output can hold after stress and pause marks are removed
    "en": Alphabet(string.ascii_letters + string.digits + "@:#;?!*^&%=+/|~<>.$ "),
    "zh": Alphabet("abcdefghijklmnopqrstuvwxyz12345 "),
}


def label_text(normalized: str, lang: str) -> str:
    """What the judge should write for a normalised TTS text (its target, and the reference
    its transcript is scored against).

    English: espeak-ng's phonemes of the text (see the module docstring; needs espeak-ng).
    Mandarin: the toned pinyin syllables separated by single spaces (punctuation and
    prosody marks dropped; ``ü`` as ``v``).

    Example:
        >>> label_text("yin2 hang2, le5.", "zh")
        'yin2 hang2 le5'
        >>> label_text("hello world.", "en")  # doctest: +SKIP
        'h@loU w3:ld'
    """
    if lang == "en":
        text = " ".join(re.sub(r"[^a-z0-9'.,?!;: -]+", " ", normalized.lower()).split())
        return espeak_phonemes(text) if re.search(r"[a-z0-9]", text) else ""
    if lang == "zh":
        text = normalized.lower().replace("ü", "v")
        return " ".join(re.findall(r"[a-z]+[1-5]", text))
    raise ValueError(f"unknown language {lang!r}: expected 'en' or 'zh'")


def labels(texts: list[str], lang: str, workers: int = 4) -> list[str]:
    """:func:`label_text` of many texts (espeak-ng calls run in parallel threads)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(lambda t: label_text(t, lang), texts))


@lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    # periodic Hann of WIN samples, centred in an N_FFT frame
    w = np.zeros(N_FFT, np.float32)
    start = (N_FFT - WIN) // 2
    w[start:start + WIN] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)
    return w


def resample_to_16k(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz (soxr through librosa)."""
    wav = np.asarray(wav, np.float32)
    if wav.ndim > 1:
        wav = wav.mean(axis=-1)
    if sample_rate != SAMPLE_RATE:
        import librosa

        wav = librosa.resample(wav, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return wav.astype(np.float32)


def log_mel_16k(wav: np.ndarray) -> np.ndarray:
    """``[1 + len // HOP, N_MELS]`` natural-log mel of a 16 kHz waveform (centred frames,
    reflect padding), computed with numpy's real FFT over all frames at once."""
    wav = np.asarray(wav, np.float32)
    if len(wav) < 2:
        wav = np.zeros(2, np.float32)
    pad = N_FFT // 2
    padded = np.pad(wav, pad, mode="reflect" if len(wav) > pad else "constant")
    n_frames = 1 + len(wav) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    need = idx[-1, -1] + 1
    if need > len(padded):
        padded = np.pad(padded, (0, need - len(padded)))
    frames = padded[idx] * _window()
    mag = np.abs(np.fft.rfft(frames, axis=-1)).astype(np.float32)
    return np.log(np.maximum(mag @ _filterbank().T, FLOOR)).astype(np.float32)


def judge_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """The judge's input for any waveform: 16 kHz, peak-normalised, log-mel ``[frames, 80]``.

    The per-band standardisation is part of the model (its statistics are weights), so
    this is the raw log-mel.
    """
    wav = resample_to_16k(wav, sample_rate)
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    if peak > 1e-4:
        wav = wav * (0.9 / peak)
    return log_mel_16k(wav)
