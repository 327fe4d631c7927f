"""Quality proxies: DNSMOS (speechmos + onnxruntime) and mel-cepstral distance with DTW
against a natural recording (mel-cepstral-distance). Both are optional (the ``eval`` extra):
:func:`dnsmos_available` / :func:`mcd_available` say whether they can run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np

__all__ = ["DNSMOS_SAMPLE_RATE", "dnsmos", "dnsmos_available", "mcd", "mcd_available"]

DNSMOS_SAMPLE_RATE = 16000


def dnsmos_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("speechmos", "onnxruntime"))


def mcd_available() -> bool:
    return importlib.util.find_spec("mel_cepstral_distance") is not None


def dnsmos(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 (``sig``, ``bak``, ``ovrl``) and P.808 (``p808``) scores of one clip.

    The clip is resampled to 16 kHz and peak-normalised; clips shorter than the model's
    9 s window are looped by speechmos.
    """
    import soxr
    from speechmos import dnsmos as _dnsmos

    x = np.asarray(wav, np.float32)
    if x.size == 0 or not np.any(x):
        raise ValueError("DNSMOS of a silent or empty clip is undefined")
    if sample_rate != DNSMOS_SAMPLE_RATE:
        x = soxr.resample(x, sample_rate, DNSMOS_SAMPLE_RATE).astype(np.float32)
    x = x / np.abs(x).max() * 0.95
    out = _dnsmos.run(x, DNSMOS_SAMPLE_RATE)
    return {"sig": float(out["sig_mos"]), "bak": float(out["bak_mos"]), "ovrl": float(out["ovrl_mos"]),
            "p808": float(out["p808_mos"])}


def mcd(natural: str | Path, synthesized: str | Path, sample_rate: int = 16000) -> float:
    """Mean mel-cepstral distance (dB, coefficients 1-15 of 20 mel bands) after DTW alignment.

    Both files are resampled to ``sample_rate`` (16 kHz: a 512-sample FFT for the package's
    32 ms window); identical audio gives 0.
    """
    from mel_cepstral_distance import compare_audio_files

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        value, _penalty = compare_audio_files(str(natural), str(synthesized), sample_rate=sample_rate,
                                              aligning="dtw")
    return float(value)
