"""MirroredStrategy over two logical CPUs trains like one device (same weights)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

CODE = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tf_tacokd.config import load_config
    from tf_tacokd.distill import Distiller
    from tf_tacokd.model import Tacotron2
    from tests.test_model import make_batch

    # no dropout: random masks cannot match between 1 and 2 devices; equal lengths per half,
    # so that each replica's masked mean weighs like the global one
    cfg = load_config("tiny_en", ["model.encoder_dropout=0.0", "model.prenet_dropout=0.0",
                                  "model.postnet_dropout=0.0", "train.learning_rate=3e-3"] + sys.argv[2:])
    base = make_batch(frames=40)
    batch = {k: np.concatenate([v[:2], v[:2]]) for k, v in base.items()}
    ds = tf.data.Dataset.from_tensors(batch).repeat()

    def run(strategy, kind):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = Tacotron2.from_settings(cfg.model, 37, cfg.audio.n_mels)
            if kind == "kd":
                model = Distiller(model, Distiller.student_from(model), cfg.distill)
            model.compile_for_training(cfg.train)
        model.fit(ds, steps_per_epoch=4, epochs=1, verbose=0)
        target = model.student if kind == "kd" else model
        return [w.copy() for w in target.get_weights()]

    kind = sys.argv[1]
    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"), kind)
    two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), kind)
    diffs = [float(np.abs(a - b).max()) for a, b in zip(one, two)]
    moved = max(float(np.abs(a).max()) for a in one)
    print("MAXDIFF", max(diffs), moved)
""")


def run_case(kind: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CODE, kind], capture_output=True, text=True,
                         timeout=600, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MAXDIFF"))
    _, diff, scale = line.split()
    return float(diff), float(scale)


def test_mirrored_two_replicas_match_one_device_teacher() -> None:
    diff, scale = run_case("teacher")
    assert diff < 1e-4 * max(1.0, scale), diff


def test_mirrored_two_replicas_match_one_device_distiller() -> None:
    diff, scale = run_case("kd")
    assert diff < 1e-4 * max(1.0, scale), diff
