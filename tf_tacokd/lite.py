"""What an exported model needs on a device, in numpy only (no TensorFlow import):
prenet dropout masks, the sidecar JSON and its validation, the vocoder with the sidecar's
settings (:mod:`tf_tacokd.dsp`, the host's vocoder too), and :class:`LiteSynthesizer`
(text -> wav with a LiteRT interpreter).

The mobile demo (``mobile_demo/synthesize.py``) and the export verification both use these,
so a device and the exporting machine compute the same thing.

Example:
    >>> m = prenet_masks(steps=3, batch=1, width=4, rate=0.5, seed=0)
    >>> m.shape, sorted(set(m.ravel().tolist()))
    ((3, 1, 4), [0.0, 2.0])
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import dsp

__all__ = ["SIDECAR_VERSION", "LiteSynthesizer", "build_sidecar", "griffin_lim_np", "load_interpreter", "load_sidecar",
           "mel_to_audio_np", "mel_to_linear_np", "prenet_masks", "sidecar_path", "validate_sidecar",
           "write_wav"]

SIDECAR_VERSION = 2  # 2: the step_limit input (1: decode up to max_steps)


def prenet_masks(steps: int, batch: int, width: int, rate: float, seed: int) -> np.ndarray:
    """Inverted-dropout masks ``[steps, batch, width]`` (float32: 0 or 1 / (1 - rate)) drawn
    with ``numpy.random.default_rng(seed)``: the exported model's ``prenet_masks`` input.

    Tacotron2 keeps prenet dropout on at inference; an exported model takes the masks as an
    input instead of drawing them (TFLite has no builtin stateless random op), so TF and
    TFLite decode identically for the same seed.
    """
    if rate <= 0:
        return np.ones((steps, batch, width), np.float32)
    keep = np.random.default_rng(seed).random((steps, batch, width)) >= rate
    return (keep / (1.0 - rate)).astype(np.float32)


def sidecar_path(model_path: str | Path) -> Path:
    """``export/NAME.tflite`` -> ``export/NAME.json``."""
    return Path(model_path).with_suffix(".json")


def load_sidecar(model_path: str | Path) -> dict[str, Any]:
    """The JSON sidecar next to an exported ``.tflite``, validated (:func:`validate_sidecar`):
    a clear error naming the file and the field if it is missing, too new, or malformed."""
    path = sidecar_path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the sidecar JSON written by `tacokd export` is missing; "
                                "copy it next to the .tflite file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable sidecar JSON ({e}); export the model again") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a sidecar (a JSON object expected); export the model again")
    version = data.get("format_version", 0)
    if isinstance(version, int) and version > SIDECAR_VERSION:
        raise ValueError(f"{path}: sidecar format {version} is newer than this "
                         f"package understands ({SIDECAR_VERSION}); upgrade tf_tacokd")
    validate_sidecar(data, path)
    return data


def build_sidecar(cfg: Any, text: dict[str, Any], max_steps: int, max_text: int, quantize: str,
                  alignments: bool, ops: list[str], source: dict[str, Any], mel_stats: dict[str, Any] | None,
                  verification: dict[str, Any]) -> dict[str, Any]:
    """The sidecar of an exported model: the contract between ``tacokd export`` (which writes
    it) and :class:`LiteSynthesizer` (which reads it), documented in ``export/README.md``.
    Validated (:func:`validate_sidecar`) before it is returned.

    Args:
        cfg: the run's :class:`~tf_tacokd.config.Config`.
        text: the text front end's ``get_config()`` (settings and symbol table).
        max_steps, max_text: the exported buffers' sizes (decoder steps, tokens).
        quantize, alignments: the export's options.
        ops: the builtin op types in the model.
        source: where the model came from (paths, hashes).
        mel_stats: the corpus' per-band mean and std (None if the mel is not normalised).
        verification: what the export measured (tolerance, per-text rows).

    Many parameters because each is one section of the sidecar (the export's settings and what it
    measured); :func:`validate_sidecar` checks the result field by field.
    """
    from . import __version__

    m, a = cfg.model, cfg.audio
    width = sum(m.prenet_units)
    sidecar = {
        "format_version": SIDECAR_VERSION,
        "created_by": f"tf_tacokd {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "quantize": quantize,
        "signature": "serve",
        "inputs": {
            "text_ids": {"dtype": "int32", "shape": [1, -1], "max_tokens": max_text,
                         "note": "TextFrontEnd(text settings below).encode(text); ends with the EOS id"},
            "prenet_masks": {"dtype": "float32", "shape": [max_steps, 1, width], "rate": m.prenet_dropout,
                             "rule": "keep = numpy.random.default_rng(seed).random(shape) >= rate; "
                                     "masks = keep / (1 - rate)"},
            "step_limit": {"dtype": "int32", "shape": [1],
                           "rule": "min(model.max_steps, tf_tacokd.decoding.decoder_bound(tokens, audio, "
                                   "model.reduction_factor, model.min_decoder_steps + 1)): the decoder "
                                   "stops there if the stop token has not fired"},
        },
        "outputs": {"mel": {"dtype": "float32", "shape": [1, -1, a.n_mels],
                            "note": "log-mel, normalised with mel_stats when audio.normalize_mel"},
                    "mel_before_postnet": {"dtype": "float32", "shape": [1, -1, a.n_mels]},
                    "mel_frames": {"dtype": "int32", "shape": [1]},
                    "stop_probs": {"dtype": "float32", "shape": [1, -1]},
                    "finished": {"dtype": "int32", "shape": [1]},
                    **({"alignments": {"dtype": "float32", "shape": [1, -1, -1]}} if alignments else {})},
        "model": {"reduction_factor": m.reduction_factor, "n_mels": a.n_mels, "max_steps": max_steps,
                  "min_decoder_steps": m.min_decoder_steps, "stop_threshold": m.stop_threshold,
                  "attention_window": m.attention_window, "prenet_units": list(m.prenet_units)},
        "text": text,
        "audio": {k: getattr(a, k) for k in (
            "sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax", "mel_floor",
            "normalize_mel", "magnitude_power")},
        "mel_stats": mel_stats,
        "griffin_lim": {"iters": a.griffin_lim_iters, "momentum": a.griffin_lim_momentum,
                        "magnitude_power": a.magnitude_power},
        "builtin_ops": ops,
        "verification": verification,
    }
    validate_sidecar(sidecar, "the sidecar being written")
    return sidecar


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and np.isfinite(v)


def _choice(key: str) -> tuple[Any, str]:
    """A check for one of the values ``[text] key`` allows in a config (its ``Literal``)."""
    from typing import get_args, get_type_hints

    from .config import TextConfig  # dataclasses only: no TensorFlow

    allowed = get_args(get_type_hints(TextConfig)[key])
    return (lambda v: v in allowed), " or ".join(f'"{a}"' for a in allowed)


#: field -> (check, what it must be); every field the on-device synthesis reads
_SIDECAR_FIELDS: dict[str, tuple[Any, str]] = {
    "format_version": (_is_int, "an integer"),
    "signature": (lambda v: isinstance(v, str) and v != "", "a signature name"),
    "inputs.text_ids.max_tokens": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "inputs.prenet_masks.shape": (lambda v: isinstance(v, list) and len(v) == 3
                                  and all(_is_int(x) and x >= 1 for x in v), "3 integers >= 1"),
    "inputs.prenet_masks.rate": (lambda v: _is_number(v) and 0 <= v < 1,
                                 "a number in [0, 1) (1 would drop every prenet unit: silence)"),
    "model.reduction_factor": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.max_steps": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "model.min_decoder_steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "model.n_mels": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    **{f"text.{key}": _choice(key) for key in ("language", "prosody_marks", "latin_in_mandarin")},
    "text.strict": (lambda v: isinstance(v, bool), "true or false"),
    "text.symbols": (lambda v: isinstance(v, list) and len(v) > 1 and all(isinstance(x, str) for x in v),
                     "a list of symbol strings"),
    "audio.sample_rate": (lambda v: _is_int(v) and v >= 1000, "an integer >= 1000 (Hz)"),
    "audio.n_fft": (lambda v: _is_int(v) and v >= 16, "an integer >= 16"),
    "audio.hop_length": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "audio.win_length": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "audio.n_mels": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "audio.fmin": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "audio.fmax": (lambda v: v is None or (_is_number(v) and v > 0), "a number > 0 or null"),
    "audio.mel_floor": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "audio.normalize_mel": (lambda v: isinstance(v, bool), "true or false"),
    "audio.magnitude_power": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "griffin_lim.iters": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "griffin_lim.momentum": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
}


def validate_sidecar(data: dict[str, Any], path: str | Path = "sidecar") -> None:
    """Raise ``ValueError`` naming the file and the first missing or wrong-typed field.

    Checks every field :class:`LiteSynthesizer` reads (types and ranges), that the mel sizes
    agree, and that ``mel_stats`` has one mean and one positive std per band when the mel is
    normalised.
    """
    missing = object()
    for field_name, (check, what) in _SIDECAR_FIELDS.items():
        value: Any = data
        for key in field_name.split("."):
            value = value.get(key, missing) if isinstance(value, dict) else missing
        if value is missing:
            raise ValueError(f"{path}: sidecar field {field_name!r} is missing; export the model again")
        if not check(value):
            raise ValueError(f"{path}: sidecar field {field_name!r} must be {what}, got {value!r}")
    audio = data["audio"]
    if audio["n_mels"] != data["model"]["n_mels"]:
        raise ValueError(f"{path}: sidecar fields 'audio.n_mels' ({audio['n_mels']}) and 'model.n_mels' "
                         f"({data['model']['n_mels']}) disagree")
    if audio["win_length"] > audio["n_fft"]:
        raise ValueError(f"{path}: sidecar field 'audio.win_length' ({audio['win_length']}) exceeds "
                         f"'audio.n_fft' ({audio['n_fft']})")
    if audio["normalize_mel"]:
        stats = data.get("mel_stats")
        for key in ("mean", "std"):
            values = stats.get(key) if isinstance(stats, dict) else None
            if (not isinstance(values, list) or len(values) != audio["n_mels"]
                    or not all(_is_number(v) for v in values)):
                raise ValueError(f"{path}: sidecar field 'mel_stats.{key}' must be {audio['n_mels']} numbers "
                                 "(the mel is normalised)")
        if min(stats["std"]) <= 0:
            raise ValueError(f"{path}: sidecar field 'mel_stats.std' must be positive")


def mel_to_linear_np(mel: np.ndarray, audio: dict[str, Any], stats: dict[str, Any] | None) -> np.ndarray:
    """Model output ``[frames, n_mels]`` -> linear magnitude ``[frames, n_fft // 2 + 1]``, with a
    sidecar's ``audio`` and ``mel_stats`` (:func:`tf_tacokd.dsp.mel_to_linear`)."""
    return dsp.mel_to_linear(mel, audio["sample_rate"], audio["n_fft"], audio["n_mels"], audio["fmin"],
                             audio["fmax"], audio["magnitude_power"], (stats or {}).get("mean"),
                             (stats or {}).get("std"))


def griffin_lim_np(magnitude: np.ndarray, audio: dict[str, Any], n_iter: int = 60, momentum: float = 0.99,
                   seed: int = 0) -> np.ndarray:
    """Fast Griffin-Lim with a sidecar's ``audio`` settings (:func:`tf_tacokd.dsp.griffin_lim`:
    the host's vocoder too)."""
    return dsp.griffin_lim(magnitude, audio["n_fft"], audio["hop_length"], audio["win_length"], n_iter, momentum,
                           seed)


def mel_to_audio_np(mel: np.ndarray, sidecar: dict[str, Any], n_iter: int | None = None,
                    seed: int = 0) -> np.ndarray:
    """Exported model output ``[frames, n_mels]`` -> waveform, with the sidecar's settings."""
    gl = sidecar["griffin_lim"]
    lin = mel_to_linear_np(mel, sidecar["audio"], sidecar.get("mel_stats"))
    return griffin_lim_np(lin, sidecar["audio"], gl["iters"] if n_iter is None else n_iter, gl["momentum"], seed)


def load_interpreter(model_path: str | Path | None = None, threads: int | None = None,
                     model_content: bytes | None = None):
    """LiteRT's interpreter (``ai-edge-litert``), or ``tflite_runtime``'s on devices that only
    have that, for a file or for model bytes. Never imports TensorFlow."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ImportError("no TFLite interpreter: pip install ai-edge-litert "
                              "(or tflite-runtime on old devices)") from None
    kwargs = {"num_threads": threads} if threads else {}
    if model_content is not None:
        return Interpreter(model_content=model_content, **kwargs)
    return Interpreter(model_path=str(model_path), **kwargs)


class LiteSynthesizer:
    """Text -> wav with an exported model, its sidecar, the text front end and numpy only.

    Args:
        model_path: the ``.tflite`` (its ``.json`` sidecar next to it).
        threads: interpreter threads.

    Example:
        >>> synth = LiteSynthesizer("export/kd_en.tflite")  # doctest: +SKIP
        >>> wav, timings, info = synth.synthesize("Hello there.", seed=0)  # doctest: +SKIP
    """

    def __init__(self, model_path: str | Path, threads: int | None = 2) -> None:
        from .text import TextFrontEnd

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path}: no such model (export one with `tacokd export`)")
        self.sidecar = side = load_sidecar(self.model_path)
        t = side["text"]
        self.front_end = TextFrontEnd.from_settings(t)
        if list(self.front_end.symbols.symbols) != list(t["symbols"]):
            raise ValueError(f"{self.model_path}: its symbol table differs from this tf_tacokd's front end; "
                             f"use the version that exported it ({side.get('created_by')})")
        t0 = time.perf_counter()
        try:
            self._runner = load_interpreter(self.model_path, threads).get_signature_runner(side["signature"])
        except (ValueError, RuntimeError) as e:  # a truncated or foreign file, a missing signature
            raise ValueError(f"{self.model_path}: not a readable exported model ({str(e).strip()[:200]}); "
                             "the file may be truncated or not from `tacokd export`: export or copy it again"
                             ) from None
        self.load_ms = (time.perf_counter() - t0) * 1000

    @property
    def sample_rate(self) -> int:
        return int(self.sidecar["audio"]["sample_rate"])

    def step_limit(self, n_tokens: int) -> int:
        """Decoder steps allowed for an utterance of ``n_tokens`` (as on the host:
        :func:`tf_tacokd.decoding.decoder_bound`, at most the exported ``max_steps``)."""
        from .decoding import decoder_bound

        m = self.sidecar["model"]
        return min(m["max_steps"], decoder_bound(n_tokens, self.sidecar["audio"], m["reduction_factor"],
                                                 m["min_decoder_steps"] + 1))

    def synthesize(self, text: str, seed: int = 0, gl_iters: int | None = None, pause: float = 0.15
                   ) -> tuple[np.ndarray, dict[str, float], dict[str, Any]]:
        """``(wav float32, timings in ms, info)``; info has frames, tokens, finished (every
        utterance stopped) and the utterances. Text is normalised, then split into utterances
        as on the host (:func:`tf_tacokd.text.splitting.split_sentences`), joined with
        ``pause`` seconds of silence."""
        from .text.splitting import split_sentences

        spec = self.sidecar["inputs"]["prenet_masks"]
        max_tokens = self.sidecar["inputs"]["text_ids"]["max_tokens"]
        steps, batch, width = spec["shape"]
        t0 = time.perf_counter()
        pieces = split_sentences(self.front_end.normalize(text), self.front_end.language)
        mels, finished, tokens = [], [], 0
        for i, piece in enumerate(pieces):
            ids = np.asarray([self.front_end.encode(piece)], np.int32)
            if ids.shape[1] > max_tokens:
                raise ValueError(f"an utterance is {ids.shape[1]} tokens; this model takes at most {max_tokens}: "
                                 f"{piece[:60]!r}")
            inputs = {"text_ids": ids, "prenet_masks": prenet_masks(steps, batch, width, spec["rate"], seed + i)}
            if "step_limit" in self.sidecar["inputs"]:  # format 2; format 1 decodes up to max_steps
                inputs["step_limit"] = np.asarray([self.step_limit(ids.shape[1])], np.int32)
            out = self._runner(**inputs)
            frames = int(out["mel_frames"][0])
            mels.append(out["mel"][0, :frames])
            finished.append(bool(out["finished"][0]))
            tokens += int(ids.shape[1])
        t1 = time.perf_counter()
        gap = np.zeros(int(pause * self.sample_rate), np.float32)
        parts = []
        for i, mel in enumerate(mels):
            parts += [mel_to_audio_np(mel, self.sidecar, n_iter=gl_iters, seed=seed + i), gap]
        wav = np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32)
        peak = float(np.abs(wav).max()) if wav.size else 0.0
        if peak > 0:
            wav = wav / peak * 0.95
        t2 = time.perf_counter()
        timings = {"load": self.load_ms, "text_to_mel": (t1 - t0) * 1000, "griffin_lim": (t2 - t1) * 1000}
        info = {"frames": sum(len(m) for m in mels), "finished": all(finished), "tokens": tokens,
                "utterances": pieces, "incomplete": [p for p, f in zip(pieces, finished) if not f]}
        return wav.astype(np.float32), timings, info


def write_wav(path: str | Path, wav: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM mono with the standard library's ``wave`` (no soundfile on small devices)."""
    import wave

    path = Path(path)
    pcm = (np.clip(wav, -1.0, 1.0) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return path
