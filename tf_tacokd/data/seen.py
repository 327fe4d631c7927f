"""Which sentences a model was trained on, so that an in-domain test never scores it on them.

A run trained here knows its training text through its data directory (the ``train`` split).
A shipped model does not ship its data, so :func:`tf_tacokd.pretrained.pack` stores a
fingerprint of every training sentence in its ``data.json`` (``training_texts``). The built-in
corpus draws its sentences from one pool (fortunes and templates), so another draw — the main
job's corpus on a user's machine — shares sentences with the shipped models' training data;
without this check they would land in the in-domain test split and flatter the shipped models.

A run that starts from another model's weights (``tacokd train --init``, a KD student from
its teacher) has also learnt that model's sentences: its ``data.json`` records them as
``inherited_texts``, the fingerprints of every ancestor's training text that its own train split
lacks (``""``: none; ``null``: an ancestor's training text is unknown, so nothing can be checked).

A fingerprint is the first :data:`FP_CHARS` hex digits of the SHA-256 of the normalised
text, casefolded, NFKC-normalised and with runs of white space made one space.

Example:
    >>> text_fingerprint("It is  raining again.") == text_fingerprint("it is raining again.")
    True
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["FP_CHARS", "TRAINING_TEXTS_KEY", "text_fingerprint", "encode_fingerprints", "decode_fingerprints",
           "training_fingerprints", "run_fingerprints", "inherited_fingerprints", "drop_seen"]

FP_CHARS = 12  # 48 bits: a chance collision among 10^4 training and 10^2 test sentences is ~1e-9
TRAINING_TEXTS_KEY = "training_texts"  # the data.json key of a shipped model's fingerprints
INHERITED_KEY = "inherited_texts"  # the data.json key of what a run's ancestors trained on

T = TypeVar("T")


def text_fingerprint(text: str) -> str:
    """The fingerprint of one sentence (see the module docstring)."""
    canonical = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:FP_CHARS]


def encode_fingerprints(texts: Iterable[str]) -> str:
    """The fingerprints of ``texts``, sorted and joined into one string (for ``data.json``)."""
    return "".join(sorted({text_fingerprint(t) for t in texts}))


def decode_fingerprints(blob: str) -> set[str]:
    """The inverse of :func:`encode_fingerprints`; a clear error if ``blob`` is not one."""
    if len(blob) % FP_CHARS or any(c not in "0123456789abcdef" for c in blob):
        raise ValueError(f"{TRAINING_TEXTS_KEY}: not a string of {FP_CHARS}-digit hex fingerprints")
    return {blob[i : i + FP_CHARS] for i in range(0, len(blob), FP_CHARS)}


def training_fingerprints(data_dir: str | Path) -> set[str]:
    """The fingerprints of the ``train`` split of a preprocessed data directory."""
    from .dataset import load_manifest

    return {text_fingerprint(text) for _, text, _ in load_manifest(data_dir).texts("train")}


def run_fingerprints(data: Mapping[str, Any]) -> set[str] | None:
    """What a run's ``data.json`` says it was trained on: the shipped fingerprints, else the
    train split of its data directory, and what its ancestors were trained on; None when any
    of that is unknown (its data is not on this machine, an ancestor's text was not known)."""
    if data.get(INHERITED_KEY, "") is None:
        return None
    inherited = decode_fingerprints(data.get(INHERITED_KEY) or "")
    if data.get(TRAINING_TEXTS_KEY):
        return decode_fingerprints(data[TRAINING_TEXTS_KEY]) | inherited
    from .layout import DataPaths

    data_dir = data.get("data_dir")
    if data_dir and DataPaths(data_dir).manifest.is_file():
        return training_fingerprints(data_dir) | inherited
    return None


def inherited_fingerprints(ancestors: Iterable[Mapping[str, Any] | None], own: set[str]) -> str | None:
    """The ``inherited_texts`` entry of a run: what its ancestors were trained on and its own
    train split (``own``) lacks, encoded; None when an ancestor's training text is unknown.

    Args:
        ancestors: the ``data.json`` of each model the run started from (None: unreadable).
        own: the fingerprints of the run's own train split.
    """
    extra: set[str] = set()
    for data in ancestors:
        fps = None if data is None else run_fingerprints(data)
        if fps is None:
            return None
        extra |= fps - own
    return "".join(sorted(extra))


def drop_seen(items: Sequence[T], text_of: Any, runs: Mapping[str, Mapping[str, Any]],
              test_data_dir: str | Path | None) -> tuple[list[T], dict[str, Any]]:
    """The test items no run was trained on, and what was left out.

    Args:
        items: test sentences.
        text_of: item -> its normalised text.
        runs: ``data.json`` contents by system name.
        test_data_dir: the data directory the items come from: a run trained on it has
            disjoint splits by construction and is not read again.

    Returns:
        ``(kept, info)``; ``info`` has ``left_out`` (how many items were dropped), ``seen_by``
        (per system, how many of the items it was trained on) and ``unknown`` (systems whose
        training text is not known here, so nothing could be checked for them).
    """
    same = Path(test_data_dir).resolve() if test_data_dir else None
    seen: set[str] = set()
    seen_by: dict[str, int] = {}
    unknown: list[str] = []
    prints = [text_fingerprint(text_of(item)) for item in items]
    for name, data in runs.items():
        if same is not None and data.get("data_dir") and Path(data["data_dir"]).resolve() == same \
                and not data.get(TRAINING_TEXTS_KEY) and data.get(INHERITED_KEY, "") == "":
            seen_by[name] = 0
            continue
        fps = run_fingerprints(data)
        if fps is None:
            unknown.append(name)
            continue
        seen_by[name] = sum(p in fps for p in prints)
        seen |= fps
    kept = [item for item, p in zip(items, prints) if p not in seen]
    return kept, {"left_out": len(items) - len(kept), "seen_by": seen_by, "unknown": unknown}
