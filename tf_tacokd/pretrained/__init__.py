"""Pretrained espeak-ng checkpoints shipped with the package (teacher and KD student, en and zh).

Each is a run directory (``model.keras``, ``config.toml``, ``data.json``) trained with this
project's own code by ``tacokd run --lang LANG --train`` (the ``quick_LANG`` config), so
``tacokd synthesize --pretrained en`` and the TFLite export work right after installation.

Example:
    >>> from tf_tacokd.pretrained import available
    >>> sorted(available())  # doctest: +SKIP
    ['en_student', 'en_teacher', 'zh_student', 'zh_teacher']
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["available", "pretrained_run"]


def _root() -> Path:
    return Path(str(importlib.resources.files("tf_tacokd.pretrained")))


def available() -> list[str]:
    """Names (``<lang>_<teacher|student>``) of the shipped checkpoints."""
    return sorted(p.name for p in _root().iterdir() if (p / "model.keras").is_file())


def pretrained_run(lang: str, which: str = "student", missing_ok: bool = False) -> Path | None:
    """The run directory of a shipped checkpoint.

    Args:
        lang: "en" or "zh".
        which: "teacher" or "student".
        missing_ok: return None instead of raising when it is not shipped.
    """
    if lang not in ("en", "zh") or which not in ("teacher", "student"):
        raise ValueError(f"no pretrained model {lang!r}/{which!r}: languages en, zh; teacher or student")
    run = _root() / f"{lang}_{which}"
    if (run / "model.keras").is_file():
        return run
    if missing_ok:
        return None
    raise FileNotFoundError(f"no pretrained {lang} {which} in this installation ({run}); "
                            f"train one with `tacokd run --lang {lang} --train`")
