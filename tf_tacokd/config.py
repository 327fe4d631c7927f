"""TOML configuration loaded into typed, validated dataclasses.

A config file has up to eight sections (``audio``, ``text``, ``model``, ``train``,
``distill``, ``data``, ``eval``, ``export``). Every key is optional (the defaults are
the paper's English setup), but an unknown section or key, a value of the wrong type
or a value out of range is a :class:`ConfigError` naming the file, the key and what
was expected.

Example:
    >>> from tf_tacokd.config import load_config
    >>> cfg = load_config("espeak_en", overrides=["train.batch_size=8"])
    >>> cfg.train.batch_size
    8
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "AudioConfig",
    "TextConfig",
    "ModelConfig",
    "TrainConfig",
    "DistillConfig",
    "DataConfig",
    "EvalConfig",
    "ExportConfig",
    "Config",
    "ConfigError",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "resolve_config_path",
    "list_builtin_configs",
]


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


def _key(toml_name: str, *, doc: str = "", **checks: Any) -> dict[str, Any]:
    """Field metadata: the TOML key (when it is not a Python identifier), docs, checks."""
    return {"toml": toml_name, "doc": doc, **checks}


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioConfig:
    """Waveform and feature parameters (shared by preprocessing, Griffin-Lim and export)."""

    sample_rate: int = field(default=22050, metadata={"min": 8000})
    n_fft: int = field(default=1024, metadata={"min": 64})
    hop_length: int = field(default=256, metadata={"min": 1})
    win_length: int = field(default=1024, metadata={"min": 1})
    n_mels: int = field(default=80, metadata={"min": 1})
    fmin: float = field(default=0.0, metadata={"min": 0.0})
    fmax: float = 8000.0
    mel_floor: float = field(default=1e-5, metadata={"min_exclusive": 0.0})
    normalize_mel: bool = True
    trim_silence: bool = True
    trim_top_db: float = field(default=40.0, metadata={"min_exclusive": 0.0})
    peak_normalize: bool = True
    min_duration: float = field(default=0.3, metadata={"min": 0.0})
    max_duration: float = field(default=12.0, metadata={"min_exclusive": 0.0})
    griffin_lim_iters: int = field(default=60, metadata={"min": 1})
    griffin_lim_momentum: float = field(default=0.99, metadata={"min": 0.0, "max": 1.0})
    # 1.5 (Tacotron 1's sharpening) made Griffin-Lim of pinv-inverted mels unintelligible to
    # pocketsphinx: WER 77% vs 42% at 1.0 and 42% for the natural espeak audio (25 clips)
    magnitude_power: float = field(default=1.0, metadata={"min_exclusive": 0.0})


@dataclass(frozen=True)
class TextConfig:
    """Text front end: language, unknown-character policy, Mandarin options."""

    language: Literal["en", "zh"] = "en"
    strict: bool = False
    # DataBaker prosody marks #1-#4: dropped ("strip"), or kept as pause symbols ("pause").
    prosody_marks: Literal["strip", "pause"] = "strip"
    # Latin letters inside Mandarin text: read by their Mandarin letter names ("spell"),
    # or dropped with a warning ("drop").
    latin_in_mandarin: Literal["spell", "drop"] = "spell"
    # English only: "espeak-ng" = the model reads espeak-ng's IPA of the text instead of its
    # letters (tf_tacokd.text.phonemes; espeak-ng needed wherever the model reads text).
    phonemizer: Literal["none", "espeak-ng"] = "none"


@dataclass(frozen=True)
class ModelConfig:
    """Tacotron2 sizes (paper: section 2; defaults are the full-size model)."""

    embedding_dim: int = field(default=512, metadata={"min": 1})
    encoder_conv_layers: int = field(default=3, metadata={"min": 0})
    encoder_conv_channels: int = field(default=512, metadata={"min": 1})
    encoder_kernel_size: int = field(default=5, metadata={"min": 1})
    encoder_dropout: float = field(default=0.5, metadata={"min": 0.0, "max_exclusive": 1.0})
    encoder_lstm_units: int = field(default=256, metadata={"min": 1})
    attention_dim: int = field(default=128, metadata={"min": 1})
    attention_filters: int = field(default=32, metadata={"min": 1})
    attention_kernel_size: int = field(default=31, metadata={"min": 1})
    prenet_units: list[int] = field(default_factory=lambda: [256, 256], metadata={"nonempty": True})
    prenet_dropout: float = field(default=0.5, metadata={"min": 0.0, "max_exclusive": 1.0})
    decoder_lstm_units: int = field(default=1024, metadata={"min": 1})
    decoder_lstm_layers: int = field(default=2, metadata={"min": 1})
    reduction_factor: int = field(default=2, metadata={"min": 1})
    postnet_layers: int = field(default=5, metadata={"min": 0})
    postnet_channels: int = field(default=512, metadata={"min": 1})
    postnet_kernel_size: int = field(default=5, metadata={"min": 1})
    postnet_dropout: float = field(default=0.5, metadata={"min": 0.0, "max_exclusive": 1.0})
    max_decoder_steps: int = field(default=1000, metadata={"min": 1})
    min_decoder_steps: int = field(default=5, metadata={"min": 0})
    stop_threshold: float = field(default=0.5, metadata={"min_exclusive": 0.0, "max_exclusive": 1.0})
    # Inference only (ESPnet style): attention may move at most window_backward tokens
    # back and window_forward tokens ahead of its previous peak.
    attention_window: bool = False
    window_backward: int = field(default=1, metadata={"min": 0})
    window_forward: int = field(default=3, metadata={"min": 1})


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and training-mode settings (paper: section 4.1)."""

    mode: Literal["teacher_forcing", "scheduled_sampling", "free_running"] = "teacher_forcing"
    steps: int = field(default=150_000, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})
    learning_rate: float = field(default=1e-3, metadata={"min_exclusive": 0.0})
    final_learning_rate: float = field(default=1e-5, metadata={"min_exclusive": 0.0})
    decay_start: int = field(default=50_000, metadata={"min": 0})
    decay_steps: int = field(default=100_000, metadata={"min": 1})
    # Linear learning-rate warm-up over the first N steps (0: none, the paper). For a run
    # started from trained weights with --init, whose Adam state starts empty.
    warmup_steps: int = field(default=0, metadata={"min": 0})
    adam_beta1: float = field(default=0.9, metadata={"min": 0.0, "max_exclusive": 1.0})
    adam_beta2: float = field(default=0.999, metadata={"min": 0.0, "max_exclusive": 1.0})
    adam_epsilon: float = field(default=1e-6, metadata={"min_exclusive": 0.0})
    l2_weight: float = field(default=1e-6, metadata={"min": 0.0})
    grad_clip_norm: float = field(default=1.0, metadata={"min": 0.0})
    stop_pos_weight: float = field(default=1.0, metadata={"min_exclusive": 0.0})
    # Free-running / scheduled-sampling: stop gradients through the fed-back predictions.
    free_running_stop_gradient: bool = False
    # Scheduled sampling: probability of feeding the natural frame, decaying from
    # ss_start to ss_floor over ss_decay_steps.
    ss_schedule: Literal["linear", "exponential", "inverse_sigmoid"] = "linear"
    ss_start: float = field(default=1.0, metadata={"min": 0.0, "max": 1.0})
    ss_floor: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    ss_decay_steps: int = field(default=50_000, metadata={"min": 1})
    # Guided attention loss (Tachibana et al. 2018): a deviation from the paper, used
    # only by the small espeak configs so alignment is learned fast on a CPU.
    guided_attention: bool = False
    ga_weight: float = field(default=1.0, metadata={"min": 0.0})
    ga_sigma: float = field(default=0.2, metadata={"min_exclusive": 0.0})
    ga_decay_steps: int = field(default=10_000, metadata={"min": 1})  # the weight halves every N steps
    checkpoint_every: int = field(default=1000, metadata={"min": 1})
    # Also a checkpoint when this many minutes have passed since the last one (0: steps only):
    # a step count is ~10 minutes at one speed only, and a run sharing its cores slows down.
    # (The multi-worker strategy saves by steps only: its workers must save at the same step.)
    checkpoint_minutes: float = field(default=0.0, metadata={"min": 0.0})
    keep_checkpoints: int = field(default=3, metadata={"min": 1})
    # Every N steps also keep RUN/snapshots/model-STEP.keras for good (0: never): the
    # learning curve of a long run can then be measured afterwards (e.g. with the judge).
    snapshot_every: int = field(default=0, metadata={"min": 0})
    audio_every: int = field(default=5000, metadata={"min": 1})  # TensorBoard alignment + audio
    validate_every: int = field(default=1000, metadata={"min": 1})
    log_every: int = field(default=100, metadata={"min": 1})
    seed: int = 1234
    strategy: Literal["default", "mirrored", "multiworker"] = "default"
    mixed_precision: bool = False


@dataclass(frozen=True)
class DistillConfig:
    """Teacher-student distillation (paper: section 3.3, equations 6-8)."""

    lambda_: float = field(default=1.0, metadata=_key("lambda", min=0.0))
    # Which decoder LSTM layers' outputs are distilled (0-based indices).
    layers: list[int] = field(default_factory=lambda: [0, 1], metadata={"nonempty": True, "min": 0})
    # Loss_d over hidden units: "mean" (MSE, the scale of our per-element mean feature loss) or
    # "sum" (equation 7's |s - ŝ|² literally). With "sum" and λ = 1 the distillation term was
    # ~30x the feature loss on espeak_en (64 vs 2) and wrecked the student's alignment in 400 steps.
    loss_reduction: Literal["mean", "sum"] = "mean"
    train_encoder: bool = False
    student_init: Literal["teacher", "random"] = "teacher"
    # Loss_f's target: the natural frames (the paper) or the teacher's teacher-forced output,
    # which is time-locked to the hidden states Loss_d pulls the student towards.
    feature_target: Literal["natural", "teacher"] = "natural"
    # Loss_f's distance: L2 (the paper) or L1 + L2 (ESPnet's Tacotron2 loss).
    feature_loss: Literal["l2", "l1+l2"] = "l2"
    # Not the paper: Loss_f's mel terms compare the student's frames with the natural ones
    # paired at the same step ("step", the paper) or along each utterance's DTW path ("dtw"):
    # three quarters of a free-running English teacher's same-step L2 is timing (RESULTS.md
    # section 10.17), so the same-step loss mostly teaches timing. With "teacher" targets the
    # path pairs the student's frames with the teacher's output.
    feature_alignment: Literal["step", "dtw"] = "step"
    # Not the paper: Loss_d compares the student's and the teacher's decoder states at the same
    # step ("step", the paper) or at the decoder steps the same DTW path pairs ("dtw"; the
    # teacher's teacher-forced states are time-locked to the natural frames, and a student
    # whose timing has drifted is otherwise pulled towards the states of a neighbouring sound).
    state_alignment: Literal["step", "dtw"] = "step"
    # The DTW path's Sakoe-Chiba radius, a fraction of the utterance's length (1: unconstrained).
    dtw_band: float = field(default=0.25, metadata={"min_exclusive": 0.0, "max": 1.0})
    # Weight of Loss_f's mel terms (1: the paper; the stop term always has weight 1).
    feature_weight: float = field(default=1.0, metadata={"min": 0.0})
    # Not the paper: weight of a global-variance term (Toda & Tokuda 2007) that matches each
    # utterance's per-band standard deviation over time of the student's mel (before and after
    # the postnet) to the natural one's. L2 alone is lowest for the per-utterance mean frame
    # when the free-running output correlates poorly with the natural frames: the drone.
    gv_weight: float = field(default=0.0, metadata={"min": 0.0})
    # The same for the distilled decoder states: each unit's standard deviation over time
    # matched to the teacher's (Loss_d alone is lowest for the teacher's mean state).
    state_gv_weight: float = field(default=0.0, metadata={"min": 0.0})
    # Not the paper: weight of an attention term, the squared distance between the student's
    # free-running attention weights and the teacher's teacher-forced ones (per decoder step,
    # summed over text positions). It holds the student's timing to the natural frames' that
    # Loss_f and Loss_d compare it with step by step.
    attention_weight: float = field(default=0.0, metadata={"min": 0.0})
    # Not the paper: weight of the student's own teacher-forced loss (mel L2 before and after
    # the postnet, stop and guided attention, as the teacher trains): the student also decodes
    # with the natural frames fed back. In English, 1000 more teacher-forced steps improved the
    # free-running words more than 1000 distillation steps (RESULTS.md section 10.17); this
    # keeps that learning in the student beside Loss_f and Loss_d. One more decoder pass a step.
    teacher_forced_weight: float = field(default=0.0, metadata={"min": 0.0})
    # The student's Adam learning rate (the rest of the schedule, Adam's betas and clipping come
    # from [train]). Not the paper's: the paper trains the student like the teacher, at 1e-3.
    # Measured (RESULTS.md section 10.2): a fresh Adam state at 1e-3 moves a teacher-initialised
    # decoder off the teacher's solution within ~150 steps and the L2 loss then holds it at the
    # flat "drone" optimum; at 1e-4 the student keeps the teacher's spectral structure.
    # The paper's literal recipe: distill.learning_rate = 1e-3.
    learning_rate: float = field(default=1e-4, metadata={"min_exclusive": 0.0})
    steps: int = field(default=150_000, metadata={"min": 1})
    tune_lambda_min: float = field(default=0.01, metadata={"min_exclusive": 0.0})
    tune_lambda_max: float = field(default=100.0, metadata={"min_exclusive": 0.0})
    tune_learning_rate: bool = False


@dataclass(frozen=True)
class DataConfig:
    """Corpus layout, splits, sharding and batching."""

    corpus_format: Literal["ljspeech", "databaker"] = "ljspeech"
    # DataBaker: use the pinyin label line ("label") or re-derive pinyin from the Hanzi ("hanzi").
    databaker_text: Literal["label", "hanzi"] = "label"
    val_size: int = field(default=100, metadata={"min": 0})
    test_size: int = field(default=100, metadata={"min": 0})
    split_seed: int = 1234
    shard_size: int = field(default=500, metadata={"min": 1})
    max_text_len: int = field(default=300, metadata={"min": 1})
    max_frames: int = field(default=1000, metadata={"min": 1})
    shuffle_buffer: int = field(default=2000, metadata={"min": 1})
    bucket_count: int = field(default=8, metadata={"min": 1})
    corpus_size: int = field(default=3000, metadata={"min": 1})


@dataclass(frozen=True)
class EvalConfig:
    """Robustness metrics and evaluation settings."""

    skip_threshold: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    repeat_tokens: int = field(default=2, metadata={"min": 1})
    incomplete_tail_tokens: int = field(default=2, metadata={"min": 0})
    asr_noise_dbfs: float = field(default=-50.0, metadata={"max": 0.0})
    bootstrap_samples: int = field(default=1000, metadata={"min": 1})
    seed: int = 1234
    # evaluate only the first N sentences of a test set (0: all); --limit overrides
    limit: int = field(default=0, metadata={"min": 0})


@dataclass(frozen=True)
class ExportConfig:
    """TFLite export of the student."""

    quantize: Literal["none", "dynamic", "float16"] = "none"
    max_steps: int = field(default=1000, metadata={"min": 1})
    tolerance: float = field(default=1e-4, metadata={"min_exclusive": 0.0})
    alignments: bool = False


SECTIONS: dict[str, type] = {
    "audio": AudioConfig,
    "text": TextConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "distill": DistillConfig,
    "data": DataConfig,
    "eval": EvalConfig,
    "export": ExportConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole configuration: one typed dataclass per section.

    ``source`` records where it came from (a path, or ``<dict>``); it is not saved.
    """

    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    source: str = field(default="<defaults>", compare=False)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The config as plain TOML-ready data (TOML key names)."""
        out: dict[str, dict[str, Any]] = {}
        for name in SECTIONS:
            section = getattr(self, name)
            out[name] = {
                _toml_name(f): _plain(getattr(section, f.name)) for f in dataclasses.fields(section)
            }
        return out

    def to_toml(self) -> str:
        """The resolved config as TOML text (loads back to an equal Config)."""
        header = f"# Resolved tf_tacokd config (from {self.source})\n"
        return header + tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path) -> Path:
        """Write the resolved config (e.g. into a run directory) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from .atomic import write_text

        return write_text(path, self.to_toml())

    def hash(self) -> str:
        """A short, stable hash of the resolved values (not of formatting or source)."""
        return hashlib.sha256(tomli_w.dumps(self.to_dict()).encode()).hexdigest()[:16]

    def replace(self, **sections: Any) -> "Config":
        """A copy with whole sections replaced."""
        return dataclasses.replace(self, **sections)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _toml_name(f: dataclasses.Field) -> str:
    return f.metadata.get("toml", f.name)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, typing.List):
        (inner,) = get_args(tp)
        return f"list of {_type_name(inner)}"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    return {int: "int", float: "float", bool: "bool", str: "string"}.get(tp, str(tp))


def _describe(value: Any) -> str:
    kind = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "table"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to float)."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value in choices and type(value) is type(choices[0]):
            return value
    elif origin in (list, typing.List):
        (inner,) = get_args(tp)
        if isinstance(value, list):
            return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**31) <= value < 2**31:  # steps, sizes and seeds are int32 in the graphs
                raise ConfigError(f"{where}: {value} is out of range (at most {2**31 - 1:,})")
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where}: must be a finite number, got {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a programming error in the dataclasses above
        raise TypeError(f"unsupported config annotation {tp!r} for {where}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_describe(value)}")


def _check_range(value: Any, meta: typing.Mapping[str, Any], where: str) -> None:
    values = value if isinstance(value, list) else [value]
    if meta.get("nonempty") and isinstance(value, list) and not value:
        raise ConfigError(f"{where}: must not be empty")
    for v in values:
        if "min" in meta and v < meta["min"]:
            raise ConfigError(f"{where}: must be >= {meta['min']}, got {v!r}")
        if "max" in meta and v > meta["max"]:
            raise ConfigError(f"{where}: must be <= {meta['max']}, got {v!r}")
        if "min_exclusive" in meta and v <= meta["min_exclusive"]:
            raise ConfigError(f"{where}: must be > {meta['min_exclusive']}, got {v!r}")
        if "max_exclusive" in meta and v >= meta["max_exclusive"]:
            raise ConfigError(f"{where}: must be < {meta['max_exclusive']}, got {v!r}")


def _unknown(kind: str, name: str, known: typing.Iterable[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"{where}: unknown {kind} {name!r}{hint}; known {kind}s: {', '.join(sorted(known))}"
    )


def _build_section(cls: type, values: dict[str, Any], base: Any, origin: str, section: str) -> Any:
    hints = get_type_hints(cls)
    by_toml = {_toml_name(f): f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{origin}: [{section}] {key}"
        if key not in by_toml:
            raise _unknown("key", key, by_toml, f"{origin}: [{section}]")
        f = by_toml[key]
        coerced = _coerce(value, hints[f.name], where)
        _check_range(coerced, f.metadata, where)
        kwargs[f.name] = coerced
    return dataclasses.replace(base, **kwargs)


def _cross_checks(cfg: Config, origin: str) -> None:
    """Constraints that involve more than one key."""
    a, t, m, d = cfg.audio, cfg.train, cfg.model, cfg.distill
    if a.win_length > a.n_fft:
        raise ConfigError(f"{origin}: [audio] win_length ({a.win_length}) must be <= n_fft ({a.n_fft})")
    if a.fmax <= a.fmin or a.fmax > a.sample_rate / 2:
        raise ConfigError(
            f"{origin}: [audio] fmax must be in (fmin, sample_rate/2] = "
            f"({a.fmin}, {a.sample_rate / 2}], got {a.fmax}"
        )
    if a.min_duration >= a.max_duration:
        raise ConfigError(f"{origin}: [audio] min_duration must be < max_duration")
    if t.final_learning_rate > t.learning_rate:
        raise ConfigError(f"{origin}: [train] final_learning_rate must be <= learning_rate")
    if t.ss_floor > t.ss_start:
        raise ConfigError(f"{origin}: [train] ss_floor must be <= ss_start")
    if d.tune_lambda_min >= d.tune_lambda_max:
        raise ConfigError(f"{origin}: [distill] tune_lambda_min must be < tune_lambda_max")
    if max(d.layers) >= m.decoder_lstm_layers:
        raise ConfigError(
            f"{origin}: [distill] layers {d.layers} name a decoder LSTM layer that does not exist "
            f"(model.decoder_lstm_layers = {m.decoder_lstm_layers}; indices are 0-based)"
        )
    if m.min_decoder_steps >= m.max_decoder_steps:
        raise ConfigError(f"{origin}: [model] min_decoder_steps must be < max_decoder_steps")
    if cfg.text.phonemizer != "none" and cfg.text.language != "en":
        raise ConfigError(f"{origin}: [text] phonemizer = {cfg.text.phonemizer!r} is for English; "
                          f"{cfg.text.language} text is read as pinyin, which is phonemic: use phonemizer = \"none\"")


# [train] keys that decide when a run writes checkpoints and logs, never the weights it learns
# (tests/test_train.py trains with and without them): a run or an experiment resumed with other
# values is the same run.
RECORD_KEEPING_KEYS = ("checkpoint_every", "checkpoint_minutes", "keep_checkpoints", "snapshot_every", "log_every")


def learning_settings(data: dict[str, Any], origin: str = "<dict>") -> dict[str, Any]:
    """A config dictionary (:meth:`Config.to_dict`, perhaps written by an older version) as
    resolved now — keys added since take their defaults — without :data:`RECORD_KEEPING_KEYS`:
    two configs that train the same weights compare equal.

    Example:
        >>> a = load_config("voice_en").to_dict()
        >>> b = load_config("voice_en", ["train.checkpoint_every=7"]).to_dict()
        >>> a == b, learning_settings(a) == learning_settings(b)
        (False, True)
    """
    d = config_from_dict(data, origin).to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in RECORD_KEEPING_KEYS}
    return d


def config_from_dict(data: dict[str, Any], origin: str = "<dict>", base: Config | None = None) -> Config:
    """Validate TOML-shaped data (``{"section": {"key": value}}``) into a :class:`Config`.

    Args:
        data: parsed TOML.
        origin: the file name used in error messages.
        base: values not given in ``data`` come from here (default: :class:`Config` defaults).
    """
    base = base or Config()
    sections: dict[str, Any] = {}
    for name, values in data.items():
        if name not in SECTIONS:
            if not isinstance(values, dict):
                raise ConfigError(
                    f"{origin}: top-level key {name!r} is not inside a section; "
                    f"put it under one of [{'], ['.join(SECTIONS)}]"
                )
            raise _unknown("section", name, SECTIONS, origin)
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{name}] must be a table of keys, got {_describe(values)}")
        sections[name] = _build_section(SECTIONS[name], values, getattr(base, name), origin, name)
    cfg = dataclasses.replace(base, **sections, source=origin)
    _cross_checks(cfg, origin)
    return cfg


def _parse_override(text: str) -> tuple[str, str, Any]:
    where = f"--set {text}"
    if "=" not in text:
        raise ConfigError(f"{where}: expected section.key=value (e.g. train.batch_size=16)")
    dotted, raw = (s.strip() for s in text.split("=", 1))
    if dotted.count(".") != 1:
        raise ConfigError(f"{where}: expected section.key=value, got key {dotted!r}")
    section, key = dotted.split(".")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as `zh` or `free_running` is a string
    return section, key, value


def apply_overrides(cfg: Config, overrides: typing.Sequence[str]) -> Config:
    """Apply ``section.key=value`` overrides (values in TOML syntax; bare words are strings).

    Each override is validated like a file entry; errors name the ``--set`` argument.
    """
    source = cfg.source
    for text in overrides:
        section, key, value = _parse_override(text)
        cfg = config_from_dict({section: {key: value}}, origin=f"--set {text}", base=cfg)
    return dataclasses.replace(cfg, source=source + "".join(f" --set {o}" for o in overrides))


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _builtin_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    # Source checkout / editable install: <repo>/configs. Wheel: tf_tacokd/configs.
    return [d for d in (here.parent / "configs", here / "configs") if d.is_dir()]


def list_builtin_configs() -> list[str]:
    """Names of the configs shipped in ``configs/`` (usable as ``--config NAME``)."""
    names: set[str] = set()
    for d in _builtin_dirs():
        names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to an existing TOML file, or the name of a built-in config (``espeak_en``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix != ".toml" and len(path.parts) == 1:
        for d in _builtin_dirs():
            candidate = d / f"{path.name}.toml"
            if candidate.is_file():
                return candidate
    raise ConfigError(
        f"config {str(name_or_path)!r} not found: give a path to a .toml file or one of the "
        f"built-in names: {', '.join(list_builtin_configs())}"
    )


def load_config(name_or_path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Load a TOML config file (or built-in name), validate it and apply overrides.

    Args:
        name_or_path: a ``.toml`` path, or a built-in name such as ``"ljspeech_en"``.
        overrides: ``section.key=value`` strings, as given to ``--set``.

    Raises:
        ConfigError: the file is missing, is not valid TOML, or has an unknown key or a
            wrong type or value; the message names the file and the key.
    """
    cfg = _load_file(resolve_config_path(name_or_path), chain=())
    return apply_overrides(cfg, overrides)


def _load_file(path: Path, chain: tuple[Path, ...]) -> Config:
    """One TOML file; a top-level ``base = "NAME_OR_PATH"`` key loads that config first and
    this file lists only its differences (a relative path is taken from this file's folder)."""
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"{path}: base configs form a cycle: {cycle}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    base_cfg = None
    if "base" in data:
        base_name = data.pop("base")
        if not isinstance(base_name, str):
            raise ConfigError(f"{path}: base: expected the name or path of a config, got {_describe(base_name)}")
        candidate = path.parent / base_name
        try:
            base_path = candidate if candidate.suffix == ".toml" and candidate.is_file() else resolve_config_path(base_name)
        except ConfigError as e:
            raise ConfigError(f"{path}: base: {e}") from None
        base_cfg = _load_file(base_path, (*chain, path.resolve()))
    return config_from_dict(data, origin=str(path), base=base_cfg)
