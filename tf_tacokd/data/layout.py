"""The files of a preprocessed data directory, by name (``tacokd preprocess`` writes them;
training, distillation and evaluation read them through :func:`~tf_tacokd.data.dataset.load_manifest`).

No TensorFlow here: preprocessing workers import this module.

Example:
    >>> DataPaths("data/en").shard_record("train-00000").as_posix()
    'data/en/shards/train-00000.tfrecord'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataPaths"]


@dataclass(frozen=True)
class DataPaths:
    """Where each file of a data directory lives.

    Layout::

        plan.json                 which utterance goes to which shard (fixed on the first run)
        shards/<split>-NNNNN.tfrecord, shards/<split>-NNNNN.json   one record file + its summary
        manifest.json             counts, durations, mel statistics, symbols, audio parameters
        rejected.tsv              every item left out, with where and why
        config.toml               the resolved config
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    SHARDS = "shards"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected.tsv"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def shards(self) -> Path:
        return self.root / self.SHARDS

    @staticmethod
    def shard_relative(name: str) -> str:
        """A shard's record file relative to the directory, as the manifest lists it."""
        return f"{DataPaths.SHARDS}/{name}.tfrecord"

    def shard_record(self, name: str) -> Path:
        return self.root / self.shard_relative(name)

    def shard_summary(self, name: str) -> Path:
        return self.shards / f"{name}.json"
