"""Audio: load, resample, trim, log-mel features, and the vocoder (Griffin-Lim).

- :func:`log_mel` (numpy + librosa's STFT) makes the training features, in preprocessing
  workers without TensorFlow: the Slaney mel filterbank (:func:`mel_basis`), a periodic
  Hann window, frames centred on ``t * hop`` with reflect padding, the magnitude (not
  power) spectrum and a natural log with a floor.
- :func:`mel_to_audio` inverts a log-mel with the filterbank's least-squares pseudo-inverse
  (far cheaper than librosa's NNLS) and fast Griffin-Lim (the momentum variant of
  Perraudin et al. 2013, seeded initial phase). Both come from :mod:`tf_tacokd.dsp`, the
  TensorFlow-free implementation the on-device demo runs too.

Example:
    >>> import numpy as np
    >>> from tf_tacokd.config import load_config
    >>> cfg = load_config("tiny_en").audio
    >>> wav = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype("float32")
    >>> log_mel(wav, cfg).shape
    (126, 20)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dsp

if TYPE_CHECKING:
    from .config import AudioConfig

__all__ = [
    "AudioError",
    "load_audio",
    "mel_basis",
    "log_mel",
    "stft_magnitude",
    "MelStats",
    "mel_to_linear",
    "griffin_lim",
    "mel_to_audio",
    "spectral_convergence",
]

# Below this peak amplitude a clip counts as silent (about -80 dBFS).
SILENCE_PEAK = 1e-4


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the reason."""


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_audio(path: str | Path, cfg: "AudioConfig") -> np.ndarray:
    """Read a wav/flac file as mono float32 at ``cfg.sample_rate``, trimmed and normalised.

    Args:
        path: the audio file.
        cfg: sample rate, trimming (``trim_silence``, ``trim_top_db``), peak
            normalisation and the allowed duration range.

    Raises:
        AudioError: the file is missing, unreadable or corrupt, silent, sampled too low
            for the mel range (its Nyquist frequency is below ``fmax``), or shorter or
            longer than the allowed duration after trimming.
    """
    import librosa
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: missing audio file")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: unreadable or corrupt audio ({e})") from None
    wav = wav.mean(axis=1)
    if wav.size == 0:
        raise AudioError(f"{path}: no samples")
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if sr / 2 < cfg.fmax:
        raise AudioError(
            f"{path}: sampled at {sr} Hz, too low for mel bands up to fmax={cfg.fmax:g} Hz "
            f"(needs at least {int(2 * cfg.fmax)} Hz)"
        )
    if np.max(np.abs(wav)) < SILENCE_PEAK:
        raise AudioError(f"{path}: silent (peak below {SILENCE_PEAK:g})")
    if sr != cfg.sample_rate:
        wav = librosa.resample(wav, orig_sr=sr, target_sr=cfg.sample_rate, res_type="soxr_hq")
    if cfg.trim_silence:
        wav, _ = librosa.effects.trim(
            wav, top_db=cfg.trim_top_db, frame_length=cfg.win_length, hop_length=cfg.hop_length
        )
    duration = wav.size / cfg.sample_rate
    if duration < cfg.min_duration:
        raise AudioError(f"{path}: too short ({duration:.2f} s < min_duration {cfg.min_duration} s)")
    if duration > cfg.max_duration:
        raise AudioError(f"{path}: too long ({duration:.2f} s > max_duration {cfg.max_duration} s)")
    if cfg.peak_normalize:
        wav = wav / np.max(np.abs(wav)) * 0.95
    return wav.astype(np.float32)


# ---------------------------------------------------------------------------
# Features (numpy / librosa)
# ---------------------------------------------------------------------------


def mel_basis(cfg: "AudioConfig") -> np.ndarray:
    """The Slaney mel filterbank (librosa's default), ``[n_mels, n_fft // 2 + 1]`` float32."""
    return dsp.mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)


def stft_magnitude(wav: np.ndarray, cfg: "AudioConfig") -> np.ndarray:
    """``|STFT|`` as ``[frames, n_fft // 2 + 1]``: centred frames, reflect padding."""
    import librosa

    spec = librosa.stft(
        wav, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
        window="hann", center=True, pad_mode="reflect",
    )
    return np.abs(spec).T


def log_mel(wav: np.ndarray, cfg: "AudioConfig") -> np.ndarray:
    """Natural-log mel spectrogram ``[frames, n_mels]`` float32 (``1 + len // hop`` frames).

    The filterbank product runs on one BLAS thread: OpenBLAS splits a matrix product
    differently for different thread counts, and the rounding then differs in the last
    bit, so features (and preprocessed shards) would depend on how many threads the
    process had (1 in each preprocessing worker, all cores in a single process).
    """
    from threadpoolctl import threadpool_limits

    magnitude = stft_magnitude(wav, cfg)
    with threadpool_limits(limits=1, user_api="blas"):
        mel = magnitude @ mel_basis(cfg).T
    return np.log(np.maximum(mel, cfg.mel_floor)).astype(np.float32)


@dataclass(frozen=True)
class MelStats:
    """Per-band mean and standard deviation of the log-mel over a corpus' training split."""

    mean: np.ndarray
    std: np.ndarray

    def normalize(self, mel: Any) -> Any:
        """(mel - mean) / std; works on numpy arrays and tensors."""
        return (mel - self.mean) / self.std

    def denormalize(self, mel: Any) -> Any:
        return mel * self.std + self.mean

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(x) for x in self.mean], "std": [float(x) for x in self.std]}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> "MelStats":
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32))

    @classmethod
    def from_moments(cls, count: float, total: np.ndarray, total_sq: np.ndarray) -> "MelStats":
        """From frame count, per-band sum and sum of squares (std floored at 1e-3)."""
        mean = total / max(count, 1.0)
        var = np.maximum(total_sq / max(count, 1.0) - mean**2, 0.0)
        return cls(mean.astype(np.float32), np.maximum(np.sqrt(var), 1e-3).astype(np.float32))


# ---------------------------------------------------------------------------
# The vocoder (tf_tacokd.dsp: the same code as on a device)
# ---------------------------------------------------------------------------


def mel_to_linear(log_mel_: np.ndarray, cfg: "AudioConfig", stats: MelStats | None = None) -> np.ndarray:
    """Log-mel ``[frames, n_mels]`` -> linear magnitude ``[frames, bins]`` (numpy float32).

    Undoes the normalisation (if ``stats``), the log, and the filterbank by its
    least-squares pseudo-inverse (clipped at zero), then raises the magnitude to
    ``cfg.magnitude_power`` (> 1 sharpens harmonics before Griffin-Lim).
    """
    return dsp.mel_to_linear(np.asarray(log_mel_, np.float32), cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin,
                             cfg.fmax, cfg.magnitude_power, None if stats is None else stats.mean,
                             None if stats is None else stats.std)


def griffin_lim(magnitude: np.ndarray, cfg: "AudioConfig", n_iter: int | None = None,
                momentum: float | None = None, seed: int = 0) -> np.ndarray:
    """Fast Griffin-Lim: linear magnitude ``[..., frames, bins]`` -> waveform
    ``[..., (frames - 1) * hop]`` (numpy float32; leading dimensions are looped over).

    Args:
        magnitude: linear STFT magnitude (for example from :func:`mel_to_linear`).
        cfg: STFT parameters; ``griffin_lim_iters`` and ``griffin_lim_momentum`` are the
            defaults for ``n_iter`` and ``momentum``.
        n_iter: iterations.
        momentum: 0 gives classic Griffin-Lim; ~0.99 the fast variant (Perraudin et
            al. 2013), which converges in far fewer iterations.
        seed: the initial phase is uniform random from this seed (deterministic).
    """
    n_iter = cfg.griffin_lim_iters if n_iter is None else n_iter
    momentum = cfg.griffin_lim_momentum if momentum is None else momentum
    mag = np.asarray(magnitude, np.float32)
    if mag.ndim > 2:
        return np.stack([griffin_lim(m, cfg, n_iter, momentum, seed) for m in mag])
    return dsp.griffin_lim(mag, cfg.n_fft, cfg.hop_length, cfg.win_length, n_iter, momentum, seed)


def mel_to_audio(
    log_mel_: np.ndarray,
    cfg: "AudioConfig",
    stats: MelStats | None = None,
    n_iter: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Log-mel ``[frames, n_mels]`` -> waveform as numpy float32 (the vocoder)."""
    return griffin_lim(mel_to_linear(log_mel_, cfg, stats), cfg, n_iter=n_iter, seed=seed)


def spectral_convergence(reference: np.ndarray, wav: np.ndarray, cfg: "AudioConfig") -> float:
    """``||S - |STFT(wav)|||_F / ||S||_F`` for a target magnitude ``S`` ``[frames, bins]``."""
    estimate = stft_magnitude(wav, cfg)
    n = min(len(estimate), len(reference))
    return float(np.linalg.norm(reference[:n] - estimate[:n]) / np.linalg.norm(reference[:n]))
