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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config, load_config

__all__ = ["RunPaths", "RunInfo", "load_run", "load_model", "model_file", "run_and_model", "run_of_model", "ancestors", "DirectoryLock", "DirectoryBusy", "RunStatus", "run_status", "find_runs", "holder"]


@dataclass(frozen=True)
class RunPaths:
    """The files of a run directory, by name: the one place that knows the layout.

    Training, distillation and tuning write them; synthesis, evaluation, export, plots and
    ``tacokd runs status`` read them. A judge's training directory uses the same names for
    its checkpoints, history and logs.

    Example:
        >>> RunPaths("runs/en").model.as_posix()
        'runs/en/model.keras'
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        """The full configuration the run trains with (``config.toml``)."""
        return self.root / "config.toml"

    @property
    def data(self) -> Path:
        """Its data: directory, symbol table, mel statistics (``data.json``)."""
        return self.root / "data.json"

    @property
    def model(self) -> Path:
        """The latest model, rewritten at every checkpoint (``model.keras``)."""
        return self.root / "model.keras"

    @property
    def state(self) -> Path:
        """Step, status and last validation figures (``state.json``)."""
        return self.root / "state.json"

    @property
    def history(self) -> Path:
        """One row of losses per log interval (``history.csv``)."""
        return self.root / "history.csv"

    @property
    def teacher(self) -> Path:
        """A KD student's teacher: its path, step and free-running figures (``teacher.json``)."""
        return self.root / "teacher.json"

    @property
    def checkpoints(self) -> Path:
        """Model and optimizer state to resume from (``checkpoints/``)."""
        return self.root / "checkpoints"

    @property
    def snapshots(self) -> Path:
        """Permanent copies of the model every ``train.snapshot_every`` steps (``snapshots/``)."""
        return self.root / "snapshots"

    @property
    def init(self) -> Path:
        """Where a fine-tuned run's first weights came from (``init.json``, ``--init``)."""
        return self.root / "init.json"

    def snapshot(self, step: int) -> Path:
        return self.snapshots / f"model-{step:07d}.keras"

    @property
    def logs(self) -> Path:
        """TensorBoard logs (``logs/``)."""
        return self.root / "logs"

    @property
    def lock(self) -> Path:
        """The lock a writing process holds (``.lock``, see :class:`DirectoryLock`)."""
        return self.root / ".lock"


@dataclass
class RunInfo:
    """What a run directory says about itself (for synthesis, evaluation, export)."""

    run_dir: Path
    config: Config
    data: dict[str, Any]

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.run_dir)

    @property
    def model_path(self) -> Path:
        return self.paths.model


def load_run(run_dir: str | Path) -> RunInfo:
    """Config and data description of a run directory (clear errors if incomplete)."""
    files = RunPaths(run_dir)
    if not files.config.is_file() or not files.data.is_file():
        raise FileNotFoundError(f"{files.root}: not a run directory (no {files.config.name} / {files.data.name})")
    return RunInfo(files.root, load_config(files.config), json.loads(files.data.read_text(encoding="utf-8")))


def ancestors(run_dir: str | Path) -> dict[str, dict[str, Any] | None]:
    """The models a run started from (``init.json``: ``--init``; ``teacher.json``: a KD
    student's teacher), each with its run's ``data.json``, or None where that is not readable
    (the model or its run directory is gone)."""
    files = RunPaths(run_dir)
    found: dict[str, dict[str, Any] | None] = {}
    for record, key in ((files.init, "init"), (files.teacher, "teacher")):
        if not record.is_file():
            continue
        source = json.loads(record.read_text(encoding="utf-8")).get(key)
        if not source:
            continue
        try:
            found[source] = load_run(run_of_model(model_file(source))).data
        except (OSError, ValueError):
            found[source] = None
    return found


def run_of_model(path: str | Path) -> Path:
    """The run directory a ``.keras`` file belongs to: its folder (``RUN/model.keras``) or, for
    a permanent snapshot (``RUN/snapshots/model-0008000.keras``), the folder above it.

    Example:
        >>> run_of_model("runs/teacher/snapshots/model-0008000.keras").as_posix()  # doctest: +SKIP
        'runs/teacher'
    """
    folder = Path(path).parent
    if not RunPaths(folder).config.is_file() and folder.name == "snapshots" \
            and RunPaths(folder.parent).config.is_file():
        return folder.parent
    return folder


def run_and_model(source: str | Path) -> tuple[Path, Path]:
    """``(run directory, .keras file)`` of a run directory (its ``model.keras``) or of a
    ``.keras`` file in a run or its ``snapshots/`` (:func:`run_of_model`)."""
    source = Path(source)
    return (source, RunPaths(source).model) if source.is_dir() else (run_of_model(source), source)


def model_symbols(source: str | Path) -> list[str] | None:
    """The symbol table a model read in training (its run's ``data.json``), for a run
    directory, a ``.keras`` file in a run or its snapshots, or a shipped name; None when the
    file has no run directory around it."""
    try:
        return list(load_run(run_of_model(model_file(source))).data["symbols"]["symbols"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None


def reads_symbols(source: str | Path, n_symbols: int, symbols: Sequence[str]) -> bool:
    """Whether the model of ``source`` (``n_symbols`` rows in its text embedding) read the
    table ``symbols``: the same size and, where its run directory says which, the same symbols."""
    return n_symbols == len(symbols) and model_symbols(source) in (None, list(symbols))


def model_file(source: str | Path) -> Path:
    """The ``.keras`` file of any model source: a run directory (its ``model.keras``), a
    ``.keras`` file, or a shipped model's name (``en_student``, ``zh_teacher``, ... as
    :func:`tf_tacokd.pretrained.available` lists them; unpacked on first use)."""
    path = Path(source)
    if path.is_dir():
        return RunPaths(path).model
    name = shipped_name(source)
    if name is None:
        return path
    from .pretrained import pretrained_run

    lang, which = name.split("_")
    return RunPaths(pretrained_run(lang, which)).model


def shipped_name(source: str | Path) -> str | None:
    """``source`` if it names a shipped model (``en_teacher``, ...) rather than a file or
    folder that exists, else None."""
    if Path(source).exists():
        return None
    from .pretrained import available

    return str(source) if str(source) in available() else None


def load_model(source: str | Path):
    """A saved model (a Tacotron2, a student, a judge) for inference, with the package's
    classes registered, from a run directory, a ``.keras`` file or a shipped model's name
    (:func:`model_file`); a missing or damaged file is named in the error.

    Example:
        >>> model = load_model("en_student")  # doctest: +SKIP
    """
    import keras

    from . import model as _registers_model_classes  # noqa: F401  (Tacotron2 and its layers)

    path = model_file(source)
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
        path = RunPaths(self.directory).lock
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
    path = RunPaths(directory).lock
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
    step: int  # the last checkpoint's: where a resume starts
    steps: int | None
    status: str  # from state.json: running | finished | interrupted | diverged
    alive: bool  # a live process holds the run's lock
    pid: object = None
    updated: float | None = 0.0  # when the last checkpoint was saved (None: none yet; older runs: state.json's mtime)
    last: dict = field(default_factory=dict)  # the last history.csv row
    at: int | None = None  # the live step a running process last reported (every train.log_every)

    @property
    def trained(self) -> int:
        """The furthest step reached: the live step while running, else the checkpoint's."""
        return max(self.step, self.at or 0) if self.alive else self.step

    @property
    def state(self) -> str:
        """What is true now: a run whose state says running but that no process holds was
        stopped without saving its status (killed, or the machine went away)."""
        if self.alive:
            return f"running (pid {self.pid})"
        return "stopped" if self.status == "running" else self.status


def run_status(run_dir: str | Path) -> RunStatus:
    """The status of one run directory (``state.json``, ``history.csv``, ``config.toml``, lock)."""
    files = RunPaths(run_dir)
    state = json.loads(files.state.read_text(encoding="utf-8"))
    steps = None
    try:
        import tomllib  # Python 3.11+; the config loader covers 3.10

        cfg = tomllib.loads(files.config.read_text(encoding="utf-8"))
        steps = cfg.get("train", {}).get("steps")
        if files.teacher.is_file():  # a KD student counts distillation steps
            steps = cfg.get("distill", {}).get("steps", steps)
    except (OSError, ValueError, ImportError):
        pass
    last: dict = {}
    if files.history.is_file():
        with open(files.history, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows:
            last = rows[-1]
    who = holder(files.root)
    if "saved_time" not in state:  # written before the key existed: its file's time is the best guess
        updated: float | None = files.state.stat().st_mtime
    else:  # null: no checkpoint yet (the file is rewritten with the live step, so its time says nothing)
        updated = None if state["saved_time"] is None else float(state["saved_time"])
    return RunStatus(files.root, int(state.get("step", 0)), steps, str(state.get("status", "?")), who is not None,
                     (who or {}).get("pid"), updated, last, int(state["at"]) if state.get("at") is not None else None)


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """Run directories (holding ``state.json``) at most ``depth`` levels under ``root``."""
    root = Path(root)
    found = []
    for level in range(depth + 1):
        found += [p.parent for p in sorted(root.glob("/".join(["*"] * level + [RunPaths(".").state.name])))]
    return sorted(set(found))
