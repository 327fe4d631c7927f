"""Atomic writes (tf_tacokd.atomic): the target is the old file or the new one, never a part."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tf_tacokd.atomic import atomic_path, write_bytes, write_json, write_text


def test_writes_replace_the_target_whole_with_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json(target, {"step": 1, "text": "好"})
    assert target.read_text(encoding="utf-8") == json.dumps({"step": 1, "text": "好"}, indent=1)
    write_json(target, {"text": "好"}, ensure_ascii=False)
    assert json.loads(target.read_text(encoding="utf-8")) == {"text": "好"} and "好" in target.read_text(encoding="utf-8")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what the process's umask gives a file (mkstemp would give 0600)
    assert write_text(tmp_path / "a.txt", "abc").stat().st_mode == plain.stat().st_mode
    assert write_bytes(tmp_path / "b.bin", b"\0\1").read_bytes() == b"\0\1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "plain.txt", "state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    target.write_bytes(b"old weights")
    with pytest.raises(KeyboardInterrupt), atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.keras.") and tmp.name.endswith(".tmp.keras")
        tmp.write_bytes(b"half of the new")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a save
    assert target.read_bytes() == b"old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass  # nothing was written to the temporary path: an error, and the old file stays
    assert target.read_bytes() == b"old weights"


def test_two_writers_of_one_file_never_share_a_temporary_name(tmp_path: Path) -> None:
    target = tmp_path / "experiment.json"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b and a.name.endswith(".tmp") and f".{os.getpid()}." in a.name
        a.write_text("first")
        b.write_text("second")
    assert target.read_text() == "first"  # the outer block ends last and wins
    assert not list(tmp_path.glob("*.json.*"))
