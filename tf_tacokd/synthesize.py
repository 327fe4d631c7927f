"""Synthesis: text -> ids -> Tacotron2 (free running) -> mel -> Griffin-Lim -> wav.

Example:
    >>> from tf_tacokd.synthesize import Synthesizer
    >>> synth = Synthesizer.from_run("runs/teacher")  # doctest: +SKIP
    >>> result = synth.synthesize("Hello there. How are you?", seed=0)  # doctest: +SKIP
    >>> result.save("hello.wav")  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import MelStats, mel_to_audio
from .config import Config
from .decoding import decoder_bound
from .text import TextFrontEnd, UnknownCharacterWarning
from .text.splitting import MAX_UNITS, split_sentences

__all__ = ["Synthesizer", "SynthesisResult", "split_sentences", "decoder_bound", "IncompleteSynthesis",
           "MAX_UNITS"]

class IncompleteSynthesis(RuntimeError):
    """An utterance reached its decoder bound without a stop token (cut off)."""


@dataclass
class SynthesisResult:
    """Audio and what produced it, one entry per sentence in the lists."""

    wav: np.ndarray
    sample_rate: int
    sentences: list[str]
    normalized: list[str]
    mels: list[np.ndarray]
    alignments: list[np.ndarray]
    finished: list[bool]
    tokens: list[list[str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bounds: list[int] = field(default_factory=list)

    def incomplete(self) -> list[str]:
        """The normalised sentences that hit their decoder bound without a stop token."""
        return [n for n, done in zip(self.normalized, self.finished) if not done]

    @property
    def seconds(self) -> float:
        return self.wav.size / self.sample_rate

    def save(self, path: str | Path) -> Path:
        import soundfile as sf

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), self.wav, self.sample_rate)
        return path

    def plot(self, path: str | Path) -> list[Path]:
        """Alignment plot(s): ``path``, or ``stem-1.png``, ``stem-2.png``... for several sentences."""
        from .plots import save_alignment

        path = Path(path)
        if len(self.alignments) == 1:
            return [save_alignment(path, self.alignments[0], self.tokens[0] + ["~"], self.normalized[0])]
        return [save_alignment(path.with_name(f"{path.stem}-{i}{path.suffix}"), a, t + ["~"], n)
                for i, (a, t, n) in enumerate(zip(self.alignments, self.tokens, self.normalized), 1)]


class Synthesizer:
    """A trained Tacotron2 with its text front end, mel statistics and audio settings.

    Args:
        model: a :class:`~tf_tacokd.model.Tacotron2`.
        config: the run's config.
        stats: mel normalisation statistics (None if the run did not normalise).
    """

    def __init__(self, model, config: Config, stats: MelStats | None) -> None:
        self.model, self.config, self.stats = model, config, stats
        self.front_end = TextFrontEnd.from_config(config.text)

    @classmethod
    def from_run(cls, run_dir: str | Path, model_path: str | Path | None = None) -> "Synthesizer":
        """Load ``model.keras`` (or ``model_path``) with the run directory's config and stats."""
        from .runs import load_model, load_run

        info = load_run(run_dir)
        model = load_model(Path(model_path) if model_path else info.model_path)
        stats = MelStats.from_dict(info.data["mel_stats"]) if info.config.audio.normalize_mel else None
        return cls(model, info.config, stats)

    @classmethod
    def from_model(cls, path: str | Path) -> "Synthesizer":
        """Load a ``.keras`` file in its run directory (config.toml, data.json) or in the run's
        ``snapshots/``."""
        from .runs import run_of_model

        return cls.from_run(run_of_model(path), path)

    def synthesize(self, text: str, seed: int = 0, max_steps: int | None = None,
                   window: bool | None = None, pause: float = 0.15, split: bool = True) -> SynthesisResult:
        """Synthesise ``text`` (normalised, split into utterances, joined with ``pause`` s of silence).

        Args:
            split: False decodes the whole text as one utterance (evaluation of long or
                oddly punctuated sentences: "A. B. C." stays one item).
            seed: prenet dropout and Griffin-Lim phase seed: same seed, same audio.
            max_steps: decoder step bound for every utterance (default: :func:`decoder_bound`
                of each utterance's length).
            window: attention window constraint (default ``model.attention_window``).

        The front end's warnings (characters it cannot read and drops) are kept in
        ``result.warnings``; ``result.incomplete()`` lists utterances cut at their bound.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        lang = self.config.text.language
        notes: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownCharacterWarning)
            whole = self.front_end.process(text).normalized  # ValueError: nothing to pronounce
        notes += [str(w.message) for w in caught if issubclass(w.category, UnknownCharacterWarning)]
        sentences = split_sentences(whole, lang) if split else [whole]
        a, m = self.config.audio, self.config.model
        parts, normalized, mels, aligns, finished, tokens, bounds = [], [], [], [], [], [], []
        for i, sentence in enumerate(sentences):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnknownCharacterWarning)
                try:
                    p = self.front_end.process(sentence)
                except ValueError:
                    continue  # a piece with nothing to say ("...") is skipped
            bound = max_steps or decoder_bound(len(p.ids), a, m.reduction_factor, m.min_decoder_steps + 1)
            out = self.model.infer([p.ids], seed=seed + i, max_steps=bound, window=window)
            n = int(out["lengths"][0])
            mel = out["mel"][0, :n]
            steps = n // self.model.r
            parts.append(mel_to_audio(mel, a, self.stats, seed=seed + i) if n > 1 else np.zeros(0, np.float32))
            normalized.append(p.normalized)
            mels.append(mel)
            aligns.append(out["alignments"][0, :steps, : len(p.ids)])
            finished.append(bool(out["finished"][0]))
            tokens.append(p.tokens)
            bounds.append(bound)
        if not parts:
            raise ValueError(f"nothing to pronounce in {text!r}")
        gap = np.zeros(int(pause * a.sample_rate), np.float32)
        pieces = [x for part in parts for x in (part, gap)][:-1]
        wav = np.concatenate(pieces).astype(np.float32)
        peak = np.abs(wav).max() if wav.size else 0.0
        if peak > 0:
            wav = wav / peak * 0.95
        return SynthesisResult(wav, a.sample_rate, list(normalized), normalized, mels, aligns, finished, tokens,
                               notes, bounds)
