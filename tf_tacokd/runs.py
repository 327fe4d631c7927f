"""Run directories: what one says about itself (:func:`load_run`), exclusive locks so two
processes never write into the same one, and the status of every run under a folder
(``tacokd runs status``).

Training, distillation, tuning, preprocessing and evaluation each hold an exclusive
``fcntl`` lock on ``DIR/.lock`` while they write into ``DIR``. The lock file names the
holder (pid, host, command, start time). The operating system releases the lock when its
process ends, however it ends, so a lock left by a killed process is simply taken over.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, DirectoryLock(d, "train"):
    ...     pass
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import socket
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config, load_config

__all__ = ["RunInfo", "load_run", "load_model", "DirectoryLock", "DirectoryBusy", "RunStatus", "run_status", "find_runs", "holder"]


@dataclass
class RunInfo:
    """What a run directory says about itself (for synthesis, evaluation, export)."""

    run_dir: Path
    config: Config
    data: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.keras"


def load_run(run_dir: str | Path) -> RunInfo:
    """Config and data description of a run directory (clear errors if incomplete)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file() or not (run_dir / "data.json").is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.toml / data.json)")
    return RunInfo(run_dir, load_config(run_dir / "config.toml"),
                   json.loads((run_dir / "data.json").read_text(encoding="utf-8")))


def load_model(path: str | Path):
    """A saved ``.keras`` model (a Tacotron2, a student, a judge) for inference, with the
    package's classes registered; a missing or damaged file is named in the error."""
    import keras

    from . import model as _registers_model_classes  # noqa: F401  (Tacotron2 and its layers)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model file (training writes model.keras at each checkpoint)")
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .keras model ({type(e).__name__}: {str(e)[:160]}); "
                         "the file may be truncated: copy or train it again") from None


class DirectoryBusy(RuntimeError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """Exclusive lock on a directory (created if missing) for the life of a ``with`` block.

    Args:
        directory: the run, data or output directory.
        what: what this process does there ("train", "preprocess", ...), for the message
            another process gets.

    Raises:
        DirectoryBusy: another live process holds it; the message names its pid and command.
    """

    def __init__(self, directory: str | Path, what: str) -> None:
        self.directory, self.what = Path(directory), what
        self._fd: int | None = None

    def __enter__(self) -> "DirectoryLock":
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DirectoryBusy(
                f"{self.directory} is in use by process {holder.get('pid', '?')} on {holder.get('host', '?')} "
                f"({holder.get('what', '?')} since {holder.get('since', '?')}: {holder.get('command', '?')}); "
                "wait for it to finish or stop it, or use another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                  "command": " ".join(sys.argv)[:300]}).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def holder(directory: str | Path) -> dict | None:
    """Who holds ``directory``'s lock right now (pid, command, since), or None if nobody."""
    path = Path(directory) / ".lock"
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or {"pid": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@dataclass
class RunStatus:
    """One run directory at a glance."""

    path: Path
    step: int
    steps: int | None
    status: str  # from state.json: running | finished | interrupted | diverged
    alive: bool  # a live process holds the run's lock
    pid: object = None
    updated: float = 0.0  # state.json's modification time
    last: dict = field(default_factory=dict)  # the last history.csv row

    @property
    def state(self) -> str:
        """What is true now: a run whose state says running but that no process holds was
        stopped without saving its status (killed, or the machine went away)."""
        if self.alive:
            return f"running (pid {self.pid})"
        return "stopped" if self.status == "running" else self.status


def run_status(run_dir: str | Path) -> RunStatus:
    """The status of one run directory (``state.json``, ``history.csv``, ``config.toml``, lock)."""
    run_dir = Path(run_dir)
    state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    steps = None
    try:
        import tomllib  # Python 3.11+; the config loader covers 3.10

        cfg = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
        steps = cfg.get("train", {}).get("steps")
        if (run_dir / "teacher.json").is_file():  # a KD student counts distillation steps
            steps = cfg.get("distill", {}).get("steps", steps)
    except (OSError, ValueError, ImportError):
        pass
    last: dict = {}
    if (run_dir / "history.csv").is_file():
        with open(run_dir / "history.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows:
            last = rows[-1]
    who = holder(run_dir)
    return RunStatus(run_dir, int(state.get("step", 0)), steps, str(state.get("status", "?")), who is not None,
                     (who or {}).get("pid"), (run_dir / "state.json").stat().st_mtime, last)


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """Run directories (holding ``state.json``) at most ``depth`` levels under ``root``."""
    root = Path(root)
    found = []
    for level in range(depth + 1):
        found += [p.parent for p in sorted(root.glob("/".join(["*"] * level + ["state.json"])))]
    return sorted(set(found))
