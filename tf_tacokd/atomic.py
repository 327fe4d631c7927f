"""Atomic file writes: a reader, a second process or a crash sees the old file or the new one,
never half of one.

Each write goes to a temporary file in the target's folder, named ``.<name>.<pid>.<random>.tmp``
(hidden, and ending in ``.tmp``, so that no ``*.json``, ``*.npz`` or ``model-*.keras`` pattern
matches it; ``keep_suffix`` adds the target's suffix for writers that insist on one, as Keras does
for ``.keras``), and is then renamed over the target in one step (:func:`os.replace`). A failed
write removes the temporary file and leaves the target as it was. Files get the process's usual
permissions (``tempfile.mkstemp`` would make them private to the owner).

Example:
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> write_json(d / "state.json", {"step": 3})
    PosixPath('...state.json')
    >>> json.loads((d / "state.json").read_text())
    {'step': 3}
    >>> with atomic_path(d / "model.keras", keep_suffix=True) as tmp:
    ...     _ = tmp.write_bytes(b"weights")
    >>> tmp.name.endswith(".tmp.keras"), tmp.exists(), sorted(p.name for p in d.iterdir())
    (True, False, ['model.keras', 'state.json'])
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "write_bytes", "write_text", "write_json"]


@contextlib.contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    without an exception, removed when it raises.

    Args:
        path: the file to write.
        keep_suffix: end the temporary name with ``path``'s suffix (``.tmp.keras``).
    """
    path = Path(path)
    suffix = ".tmp" + (path.suffix if keep_suffix else "")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_json(path: str | Path, obj: Any, indent: int | None = 1, ensure_ascii: bool = True) -> Path:
    """Write ``obj`` as JSON (``json.dumps`` with these options) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii))
