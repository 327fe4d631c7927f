"""Quality proxies: DNSMOS (speechmos + onnxruntime) and mel-cepstral distance with DTW
against a natural recording (mel-cepstral-distance), both optional (the ``eval`` extra:
:func:`dnsmos_available` / :func:`mcd_available` say whether they can run); and the speech
structure of a clip (:func:`speech_structure`), which needs only librosa.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["DNSMOS_SAMPLE_RATE", "dnsmos", "dnsmos_available", "mcd", "mcd_available", "onnx_threads",
           "speech_structure"]

DNSMOS_SAMPLE_RATE = 16000


def dnsmos_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("speechmos", "onnxruntime"))


def mcd_available() -> bool:
    return importlib.util.find_spec("mel_cepstral_distance") is not None


def dnsmos(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 (``sig``, ``bak``, ``ovrl``) and P.808 (``p808``) scores of one clip.

    The clip is resampled to 16 kHz and peak-normalised; clips shorter than the model's
    9 s window are looped by speechmos. onnxruntime uses :func:`onnx_threads` threads.
    """
    import soxr

    x = np.asarray(wav, np.float32)
    if x.size == 0 or not np.any(x):
        raise ValueError("DNSMOS of a silent or empty clip is undefined")
    if sample_rate != DNSMOS_SAMPLE_RATE:
        x = soxr.resample(x, sample_rate, DNSMOS_SAMPLE_RATE).astype(np.float32)
    x = x / np.abs(x).max() * 0.95
    out = _dnsmos_scorer()(x, DNSMOS_SAMPLE_RATE, False)
    return {"sig": float(out["sig_mos"]), "bak": float(out["bak_mos"]), "ovrl": float(out["ovrl_mos"]),
            "p808": float(out["p808_mos"])}


_SCORER = None  # the process's DNSMOS scorer (two onnxruntime sessions), built on first use


def onnx_threads() -> int:
    """onnxruntime's intra-op threads for this process: ``OMP_NUM_THREADS`` when set (the
    evaluation workers and one-thread background runs set it), else 0 (onnxruntime's default,
    one per core). onnxruntime reads no environment variable itself: left alone, DNSMOS in an
    evaluation meant to use one thread ran on both cores of this machine."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() else 0


def _dnsmos_scorer():
    """speechmos's DNSMOS scorer with its sessions limited to :func:`onnx_threads`
    (``speechmos.dnsmos.run`` builds them with onnxruntime's defaults and no way to pass options)."""
    global _SCORER
    if _SCORER is None:
        import onnxruntime as ort
        from speechmos import dnsmos as _dnsmos

        options = ort.SessionOptions()
        options.intra_op_num_threads = onnx_threads()
        options.inter_op_num_threads = 1
        models = Path(_dnsmos.__file__).parent / "dnsmos_models"
        scorer = object.__new__(_dnsmos.DNSMOS)  # its __init__ would build default sessions first
        scorer.primary_model_path = str(models / "sig_bak_ovr.onnx")
        scorer.onnx_sess = ort.InferenceSession(scorer.primary_model_path, options,
                                                providers=["CPUExecutionProvider"])
        scorer.p808_onnx_sess = ort.InferenceSession(str(models / "model_v8.onnx"), options,
                                                     providers=["CPUExecutionProvider"])
        _SCORER = scorer
    return _SCORER


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


def speech_structure(wav: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """How much a clip's spectrum moves: ``(temporal modulation, global variance)``.

    Of the dB log-mel (80 bands up to 8 kHz, 1024-sample frames, hop 256 at 22.05 kHz, 80 dB
    range): temporal modulation = mean absolute change between consecutive frames (dB per
    frame); GV = the per-band variance over time, averaged over bands (dB², the
    over-smoothing measure of statistical TTS). A drone has almost none of either; read them
    as ratios to a natural recording of the same text.
    """
    import librosa

    x = np.asarray(wav, np.float32)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sample_rate != 22050:
        x = librosa.resample(x, orig_sr=sample_rate, target_sr=22050)
    if x.size < 1024 or not np.any(x):
        return 0.0, 0.0
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=22050, n_fft=1024, hop_length=256,
                                                             n_mels=80, fmax=8000), top_db=80)
    return float(np.mean(np.abs(np.diff(mel, axis=1)))), float(np.mean(np.var(mel, axis=1)))
