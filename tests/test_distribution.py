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

    # no dropout: random masks cannot match between 1 and 2 devices. The two halves of
    # the batch have different text and mel lengths: the masked means must still agree.
    cfg = load_config("tiny_en", ["model.encoder_dropout=0.0", "model.prenet_dropout=0.0",
                                  "model.postnet_dropout=0.0", "train.learning_rate=3e-3"] + sys.argv[2:])
    base = make_batch(frames=40)
    batch = {k: np.concatenate([v[:1], v[2:3], v[1:2], v[1:2]]) for k, v in base.items()}
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_workers(cmd: list[str], workers: int) -> list[str]:
    import json
    import os
    from pathlib import Path

    ports = [free_port() for _ in range(workers)]
    procs = []
    for index in range(workers):
        env = dict(os.environ, TF_CONFIG=json.dumps({
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, cwd=str(Path(__file__).parents[1])))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return outputs


def step_losses(output: str) -> list[float]:
    return [float(line.split(" loss ")[1].split()[0]) for line in output.splitlines()
            if line.startswith("step ") and " loss " in line]


def test_multiworker_two_processes_train_like_one_worker(tmp_path) -> None:
    """Two worker processes on this machine (TF_CONFIG on localhost) against one worker."""
    import json

    import keras

    import tf_tacokd.model  # noqa: F401

    from .conftest import preprocessed_ljspeech

    # no dropout (random masks cannot agree across processes), one bucket and no example
    # shuffling (each worker buckets and shuffles its own examples), no batch norm layers
    # (their statistics would include each worker's own padding)
    # an even number of training examples (6), so the workers' shards wrap around together
    settings = ["data.val_size=3", "data.test_size=1", "data.shard_size=4", "train.batch_size=2",
                "train.checkpoint_every=2", "train.log_every=1", "model.encoder_dropout=0.0",
                "model.prenet_dropout=0.0", "model.postnet_dropout=0.0", "data.bucket_count=1",
                "model.encoder_conv_layers=0", "model.postnet_layers=0", "data.shuffle_buffer=1"]
    data = preprocessed_ljspeech(tmp_path, settings)
    runs = {}
    for workers in (1, 2):
        run = tmp_path / f"workers-{workers}"
        cmd = [sys.executable, "-m", "tf_tacokd.cli", "train", "--config", "tiny_en", "--data", str(data),
               "--out", str(run), "--steps", "4", "--strategy", "multiworker"]
        for s in settings:
            cmd += ["--set", s]
        outputs = run_workers(cmd, workers)
        assert f"{workers} replicas" in outputs[0] and "step 4/4" in outputs[0]
        assert json.loads((run / "state.json").read_text())["step"] == 4
        runs[workers] = (step_losses(outputs[0]), keras.saving.load_model(run / "model.keras", compile=False))
    (loss_1, model_1), (loss_2, model_2) = runs[1], runs[2]
    # the same global batches and the same global losses, step by step
    assert len(loss_1) == len(loss_2) == 4
    np.testing.assert_allclose(loss_2, loss_1, rtol=1e-4)
    # weights: Adam turns float noise in near-zero gradients into steps of up to lr, so
    # the bound is a fraction of lr * steps (1e-3 * 4), not float precision
    diff = max(float(np.abs(a - b).max()) for a, b in zip(model_1.get_weights(), model_2.get_weights()))
    assert diff < 2e-3, diff
