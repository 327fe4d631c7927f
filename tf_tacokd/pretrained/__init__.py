"""Pretrained espeak-ng checkpoints shipped with the package (teacher and KD student, en and zh).

Each shipped model is a folder ``<lang>_<teacher|student>/`` holding the run's
``config.toml`` and ``data.json`` and its weights as float16 in ``weights.npz`` (half the
size of a ``.keras`` file, so four models fit in a few MB each). :func:`pretrained_run`
rebuilds an ordinary float32 run directory with ``model.keras`` from them, once, in a cache
directory (``$TF_TACOKD_CACHE`` or ``~/.cache/tf_tacokd``), so ``tacokd synthesize
--pretrained en``, ``tacokd export --pretrained en`` and the main job work right after
installation. The models were trained with this project's code and packed with :func:`pack`;
RESULTS.md has their numbers. English: the long ``voice_en`` teacher (phonemes; ``tacokd
train --config voice_en``, 12000 steps and 3000 more continued from them) and a student
distilled from it for 1000 steps with ``voice_en``'s recipe (``tacokd distill``: the defaults +
``distill.gv_weight = 2`` + ``distill.feature_alignment = "dtw"``, training seed 1).
Mandarin: the long ``voice_zh`` teacher (``tacokd train --config voice_zh``, 6000 steps) and a
student distilled from it for 1000 steps with the default recipe.

Example:
    >>> from tf_tacokd.pretrained import available
    >>> sorted(available())  # doctest: +SKIP
    ['en_student', 'en_teacher', 'zh_student', 'zh_teacher']
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..data.seen import INHERITED_KEY, TRAINING_TEXTS_KEY, decode_fingerprints, run_fingerprints, text_fingerprint
from ..runs import RunPaths

__all__ = ["available", "pack", "pretrained_run"]

WEIGHTS = "weights.npz"
FILES = (RunPaths(".").config.name, RunPaths(".").data.name, WEIGHTS)  # a shipped model's folder


def _root() -> Path:
    return Path(str(importlib.resources.files("tf_tacokd.pretrained")))


def _cache() -> Path:
    return Path(os.environ.get("TF_TACOKD_CACHE", Path.home() / ".cache" / "tf_tacokd")) / "pretrained"


def available() -> list[str]:
    """Names (``<lang>_<teacher|student>``) of the shipped models."""
    return sorted(p.name for p in _root().iterdir() if all((p / f).is_file() for f in FILES))


def _training_fingerprints(data: dict, run_root: Path, training_texts: Iterable[str] | None) -> str:
    """``training_texts`` for a shipped model's ``data.json``: its own training sentences
    (``training_texts``, else its data directory's train split) and its ancestors'."""
    from ..data.layout import DataPaths

    inherited = data.get(INHERITED_KEY, "")
    if training_texts is not None:
        fps = {text_fingerprint(t) for t in training_texts}
        return "".join(sorted(fps | decode_fingerprints(inherited or "")))
    data_dir = data.get("data_dir")
    if not data.get(TRAINING_TEXTS_KEY) and (not data_dir or not DataPaths(data_dir).manifest.is_file()):
        raise ValueError(f"{run_root}: its training data ({data_dir}) is not here, so the sentences it "
                         "was trained on cannot be recorded; pass training_texts")
    fps = run_fingerprints(data)
    if fps is None:
        raise ValueError(f"{run_root}: the training text of the model it started from (init.json / "
                         "teacher.json) was unknown when it started, so what it learnt cannot be recorded; "
                         "pass training_texts (every sentence it and that model were trained on)")
    return "".join(sorted(fps))


def pack(run_dir: str | Path, lang: str, which: str, dest: str | Path | None = None,
         training_texts: Iterable[str] | None = None) -> Path:
    """Store a trained run's ``model.keras`` as a shipped model (float16 weights + its config).

    Args:
        run_dir: a finished run (teacher or KD student), or a ``.keras`` file in a run or its
            ``snapshots/`` (a teacher's snapshot: the step its student was distilled from).
        lang, which: the shipped name, ``<lang>_<which>``.
        dest: the folder to write into (default: this package's folder).
        training_texts: the normalised sentences it was trained on (default: the train split
            of its data directory), to which its ancestors' (``inherited_texts``) are added; stored
            as fingerprints (:mod:`tf_tacokd.data.seen`) so that
            an in-domain evaluation leaves them out.
    """
    import json

    from ..runs import load_model, run_and_model

    run_root, model_path = run_and_model(run_dir)
    run = RunPaths(run_root)
    model = load_model(model_path)
    out = Path(dest or _root()) / f"{lang}_{which}"
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / WEIGHTS, **{f"w{i:03d}": np.asarray(w, np.float16)
                                                for i, w in enumerate(model.get_weights())})
    shipped = RunPaths(out)
    shutil.copy2(run.config, shipped.config)
    data = json.loads(run.data.read_text(encoding="utf-8"))
    # what it and the models it started from trained on, so that no test scores it on that
    data[TRAINING_TEXTS_KEY] = _training_fingerprints(data, run_root, training_texts)
    data.pop(INHERITED_KEY, None)
    data["data_dir"] = None  # the training data is not shipped
    shipped.data.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def _materialize(src: Path) -> Path:
    """A float32 run directory rebuilt from a shipped model (cached by content hash)."""
    import json

    h = hashlib.sha256()
    for name in FILES:
        h.update((src / name).read_bytes())
    run = _cache() / f"{src.name}-{h.hexdigest()[:12]}"
    if RunPaths(run).model.is_file():
        return run
    from ..config import load_config
    from ..model import Tacotron2

    shipped = RunPaths(src)
    cfg = load_config(shipped.config)
    data = json.loads(shipped.data.read_text(encoding="utf-8"))
    model = Tacotron2.from_settings(cfg.model, n_symbols=len(data["symbols"]["symbols"]), n_mels=cfg.audio.n_mels)
    model.run(np.array([[2, 3, 1]], np.int32), max_steps=2)  # build every layer
    with np.load(src / WEIGHTS) as z:
        weights = [z[k].astype(np.float32) for k in sorted(z.files)]
    model.set_weights(weights)
    tmp = run.with_name(f"{run.name}.tmp-{os.getpid()}")  # this process's own: others may be unpacking too
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    unpacked = RunPaths(tmp)
    shutil.copy2(shipped.config, unpacked.config)
    shutil.copy2(shipped.data, unpacked.data)
    model.save(unpacked.model)
    _publish(tmp, run)
    return run


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished cache entry into place in one step. When another process got there first
    (two commands started together unpack the same model), its entry stays and ``tmp`` goes:
    nobody deletes a directory another process may be reading."""
    try:
        os.rename(tmp, final)  # atomic; fails when ``final`` exists and is not empty
    except OSError as e:
        if not RunPaths(final).model.is_file():
            raise OSError(f"cannot unpack into {final}: a folder without {RunPaths(final).model.name} is in "
                          f"the way ({e.strerror}); delete it (the cache is rebuilt from the package)") from e
        shutil.rmtree(tmp, ignore_errors=True)


def pretrained_run(lang: str, which: str = "student", missing_ok: bool = False) -> Path | None:
    """A run directory (``model.keras``, ``config.toml``, ``data.json``) of a shipped model.

    Args:
        lang: "en" or "zh".
        which: "teacher" or "student".
        missing_ok: return None instead of raising when it is not shipped.
    """
    if lang not in ("en", "zh") or which not in ("teacher", "student"):
        raise ValueError(f"no pretrained model {lang!r}/{which!r}: languages en, zh; teacher or student")
    src = _root() / f"{lang}_{which}"
    if all((src / f).is_file() for f in FILES):
        try:
            return _materialize(src)
        except OSError as e:  # an unwritable or read-only home
            raise FileNotFoundError(
                f"cannot unpack the pretrained {lang} {which} into {_cache()}: {e.strerror} ({e.filename}); "
                "set TF_TACOKD_CACHE to a writable folder") from None
    if missing_ok:
        return None
    raise FileNotFoundError(f"no pretrained {lang} {which} in this installation ({src}); "
                            f"train one with `tacokd run --lang {lang} --train`")
