"""Audio: load, resample, trim, log-mel features, and Griffin-Lim in TensorFlow.

Two implementations of the same log-mel, one per place it is needed:

- :func:`log_mel` (numpy + librosa) runs in preprocessing workers, without TensorFlow.
- :func:`log_mel_tf` (``tf.signal``) runs inside graphs (training, export).

Both use librosa's Slaney mel filterbank (:func:`mel_basis`), a periodic Hann window,
frames centred on ``t * hop`` with reflect padding, the magnitude (not power)
spectrum and a natural log with a floor; they agree to < 1e-3 on real speech (test).

Griffin-Lim (:func:`griffin_lim`) runs batched in TensorFlow with the fast
(momentum) variant of Perraudin et al. (2013) and a seeded initial phase; the mel
is inverted to a linear magnitude with the filterbank's least-squares
pseudo-inverse (:func:`mel_to_linear`), far cheaper than librosa's NNLS.

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
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

    from .config import AudioConfig

__all__ = [
    "AudioError",
    "load_audio",
    "mel_basis",
    "log_mel",
    "stft_magnitude",
    "MelStats",
    "log_mel_tf",
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


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    basis.setflags(write=False)
    return basis


def mel_basis(cfg: "AudioConfig") -> np.ndarray:
    """librosa's Slaney mel filterbank, ``[n_mels, n_fft // 2 + 1]`` float32 (cached)."""
    return _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)


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
# Features and Griffin-Lim (TensorFlow)
# ---------------------------------------------------------------------------


def _stft_tf(wav: "tf.Tensor", cfg: "AudioConfig", pad_mode: str = "REFLECT") -> "tf.Tensor":
    """Complex STFT ``[..., frames, bins]`` with the same framing as :func:`stft_magnitude`.

    librosa centres an ``n_fft`` frame on ``t * hop`` with the window in its middle;
    ``tf.signal.stft`` zero-pads a ``win_length`` frame at its end instead. Padding the
    signal by ``win_length // 2`` (not ``n_fft // 2``) makes the windowed samples the
    same, so the magnitudes agree (the phases differ by a linear term).
    """
    import tensorflow as tf

    pad = cfg.win_length // 2
    paddings = tf.concat([tf.zeros([tf.rank(wav) - 1, 2], tf.int32), [[pad, pad]]], axis=0)
    wav = tf.pad(wav, paddings, mode=pad_mode)
    return tf.signal.stft(
        wav, frame_length=cfg.win_length, frame_step=cfg.hop_length, fft_length=cfg.n_fft,
        window_fn=tf.signal.hann_window, pad_end=False,
    )


def _istft_tf(spec: "tf.Tensor", cfg: "AudioConfig") -> "tf.Tensor":
    """Inverse of :func:`_stft_tf`: ``[..., frames, bins]`` -> ``[..., (frames - 1) * hop]``."""
    import tensorflow as tf

    wav = tf.signal.inverse_stft(
        spec, frame_length=cfg.win_length, frame_step=cfg.hop_length, fft_length=cfg.n_fft,
        window_fn=tf.signal.inverse_stft_window_fn(cfg.hop_length, tf.signal.hann_window),
    )
    pad = cfg.win_length // 2
    n = (tf.shape(spec)[-2] - 1) * cfg.hop_length
    return wav[..., pad : pad + n]


def log_mel_tf(wav: "tf.Tensor", cfg: "AudioConfig", precision: str = "float64") -> "tf.Tensor":
    """TensorFlow twin of :func:`log_mel`: ``[..., samples]`` -> ``[..., frames, n_mels]`` float32.

    Args:
        precision: the STFT's float type. TF's float32 FFT is off by up to ~2e-3 in
            log-mel bands near the floor (low-energy bands, measured against a float64
            reference), where numpy's float32 path is off by < 1e-6; "float64" keeps the
            two paths within 1e-3. "float32" is faster and TFLite-compatible.
    """
    import tensorflow as tf

    dtype = tf.as_dtype(precision)
    wav = tf.cast(tf.convert_to_tensor(wav), dtype)
    mag = tf.abs(_stft_tf(wav, cfg))
    mel = tf.tensordot(mag, tf.constant(mel_basis(cfg).T, dtype=dtype), axes=1)
    return tf.cast(tf.math.log(tf.maximum(mel, cfg.mel_floor)), tf.float32)


@lru_cache(maxsize=8)
def _mel_pinv(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    return np.linalg.pinv(_mel_basis(sr, n_fft, n_mels, fmin, fmax)).astype(np.float32)


def mel_to_linear(log_mel_: "tf.Tensor", cfg: "AudioConfig", stats: MelStats | None = None) -> "tf.Tensor":
    """Log-mel ``[..., frames, n_mels]`` -> linear magnitude ``[..., frames, bins]``.

    Undoes the normalisation (if ``stats``), the log, and the filterbank by its
    least-squares pseudo-inverse (clipped at zero), then raises the magnitude to
    ``cfg.magnitude_power`` (> 1 sharpens harmonics before Griffin-Lim).
    """
    import tensorflow as tf

    mel = tf.convert_to_tensor(log_mel_, tf.float32)
    if stats is not None:
        mel = stats.denormalize(mel)
    pinv = _mel_pinv(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    linear = tf.tensordot(tf.exp(mel), tf.constant(pinv.T), axes=1)
    return tf.maximum(linear, 0.0) ** cfg.magnitude_power


def griffin_lim(
    magnitude: "tf.Tensor",
    cfg: "AudioConfig",
    n_iter: int | None = None,
    momentum: float | None = None,
    seed: int = 0,
) -> "tf.Tensor":
    """Batched fast Griffin-Lim: linear magnitude ``[..., frames, bins]`` -> waveform.

    Args:
        magnitude: linear STFT magnitude (for example from :func:`mel_to_linear`).
        cfg: STFT parameters; ``griffin_lim_iters`` and ``griffin_lim_momentum`` are the
            defaults for ``n_iter`` and ``momentum``.
        n_iter: iterations.
        momentum: 0 gives classic Griffin-Lim; ~0.99 the fast variant (Perraudin et
            al. 2013), which converges in far fewer iterations.
        seed: the initial phase is uniform random from this seed (deterministic).

    Returns:
        ``[..., (frames - 1) * hop]`` float32 waveform.
    """
    import tensorflow as tf

    n_iter = cfg.griffin_lim_iters if n_iter is None else n_iter
    momentum = cfg.griffin_lim_momentum if momentum is None else momentum
    mag = tf.convert_to_tensor(magnitude, tf.float32)
    return _griffin_lim_graph(cfg)(mag, tf.constant(n_iter), tf.constant(momentum, tf.float32),
                                   tf.constant(seed, tf.int64))


@lru_cache(maxsize=8)
def _griffin_lim_graph(cfg: "AudioConfig"):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(mag: tf.Tensor, n_iter: tf.Tensor, momentum: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        phase = tf.random.stateless_uniform(tf.shape(mag), seed=tf.stack([seed, 0]), maxval=2 * np.pi)
        mag_c = tf.cast(mag, tf.complex64)
        angles = tf.complex(tf.cos(phase), tf.sin(phase))
        rebuilt = tf.zeros_like(mag_c)
        alpha = tf.cast(momentum / (1.0 + momentum), tf.complex64)
        for _ in tf.range(n_iter):
            previous = rebuilt
            rebuilt = _stft_tf(_istft_tf(mag_c * angles, cfg), cfg, "CONSTANT")
            angles = rebuilt - alpha * previous
            angles = angles / tf.cast(tf.abs(angles) + 1e-16, tf.complex64)
        return _istft_tf(mag_c * angles, cfg)

    return run


def mel_to_audio(
    log_mel_: "tf.Tensor | np.ndarray",
    cfg: "AudioConfig",
    stats: MelStats | None = None,
    n_iter: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Log-mel (``[frames, n_mels]`` or batched) -> waveform as numpy float32."""
    return griffin_lim(mel_to_linear(log_mel_, cfg, stats), cfg, n_iter=n_iter, seed=seed).numpy()


def spectral_convergence(reference: np.ndarray, wav: np.ndarray, cfg: "AudioConfig") -> float:
    """``||S - |STFT(wav)|||_F / ||S||_F`` for a target magnitude ``S`` ``[frames, bins]``."""
    estimate = stft_magnitude(wav, cfg)
    n = min(len(estimate), len(reference))
    return float(np.linalg.norm(reference[:n] - estimate[:n]) / np.linalg.norm(reference[:n]))
