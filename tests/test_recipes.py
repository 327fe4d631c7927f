"""recipes/shipped_voice.sh: the shipped voices' recipe runs end to end (tiny config)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import requires_espeak

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "shipped_voice.sh"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RECIPE), *args], capture_output=True, text=True, env=env, timeout=1200)


def test_recipe_refuses_bad_arguments() -> None:
    env = dict(os.environ)
    r = _run(["fr", "/tmp/x"], env)
    assert r.returncode == 2 and "LANG must be en or zh, not 'fr'" in r.stderr
    r = _run(["en", "/tmp/x", "train"], env)
    assert r.returncode == 2 and "unknown stage 'train'" in r.stderr
    subprocess.run(["bash", "-n", str(RECIPE)], check=True)


@pytest.mark.slow
@requires_espeak
def test_recipe_makes_a_shipped_pair(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, CONFIG="tiny_en", SIZE="16", TEACHER_STEP="2", STUDENT_STEPS="2",
               PACK_DEST=str(tmp_path / "shipped"), TACOKD=str(bindir / "tacokd"), PYTHON=sys.executable,
               SET="train.steps=2 train.snapshot_every=1 train.checkpoint_every=1 train.validate_every=100 "
                   "train.audio_every=100 train.batch_size=2 data.shard_size=4")
    work = tmp_path / "voice"
    r = _run(["en", str(work)], env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (work / "teacher" / "snapshots" / "model-0000002.keras").is_file()
    r = _run(["en", str(work), "student"], dict(env, TEACHER_STEP="5"))  # a snapshot not there yet
    assert r.returncode == 1 and "no teacher snapshot" in r.stderr and "model-0000005.keras" in r.stderr
    r = _run(["en", str(work), "corpus", "data", "teacher", "student", "pack"], env)  # done stages resume
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    from tf_tacokd.data.dataset import load_manifest
    from tf_tacokd.data.seen import decode_fingerprints, text_fingerprint

    train = {text_fingerprint(t) for _, t, _ in load_manifest(work / "data").texts("train")}
    for which in ("teacher", "student"):
        data = json.loads((tmp_path / "shipped" / f"en_{which}" / "data.json").read_text())
        assert decode_fingerprints(data["training_texts"]) == train
    student = json.loads((work / "student" / "teacher.json").read_text())
    assert Path(student["teacher"]).name == "model-0000002.keras"
    with np.load(tmp_path / "shipped" / "en_teacher" / "weights.npz") as t, \
            np.load(tmp_path / "shipped" / "en_student" / "weights.npz") as s:
        assert sorted(t.files) == sorted(s.files) and any(not np.array_equal(t[k], s[k]) for k in t.files)
