"""Run directories: exclusive locks so two processes never write into the same one.

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

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

__all__ = ["DirectoryLock", "DirectoryBusy"]


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
