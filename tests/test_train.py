"""Training runs: resume after SIGKILL, NaN guard, run directory, synthesis from a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from click.testing import CliRunner

from tf_tacokd.cli import main
from tf_tacokd.config import load_config
from tf_tacokd.model import Tacotron2
from tf_tacokd.synthesize import Synthesizer, split_sentences
from tf_tacokd.text import symbol_table
from tf_tacokd.train import TrainingDiverged, train

from .conftest import preprocessed_ljspeech, requires_espeak

SETTINGS = ["data.val_size=2", "data.test_size=1", "data.shard_size=4", "train.batch_size=2",
            "train.checkpoint_every=2", "train.validate_every=4", "train.log_every=2",
            "train.audio_every=4"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return preprocessed_ljspeech(tmp_path_factory.mktemp("train"), SETTINGS)


def test_run_directory_is_self_describing_and_synthesis_works(data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    began = time.time()
    result = train(load_config("tiny_en", SETTINGS), data_dir, run, mode="ss", steps=6, verbose=0)
    assert result.status == "finished" and result.step == 6
    for name in ("config.toml", "data.json", "model.keras", "history.csv", "state.json"):
        assert (run / name).is_file(), name
    assert load_config(run / "config.toml").train.mode == "scheduled_sampling"
    state = json.loads((run / "state.json").read_text())
    assert began - 1 <= state.pop("saved_time") <= time.time() + 0.05 and state == {"step": 6, "status": "finished"}
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index")) == \
        ["ckpt-2.index", "ckpt-4.index", "ckpt-6.index"]
    history = (run / "history.csv").read_text().splitlines()
    assert "val_fr_mel_loss" in history[0] and "teacher_prob" in history[0]
    assert list((run / "logs").rglob("events.out.tfevents.*"))
    # finished runs do nothing more
    assert train(load_config("tiny_en", SETTINGS), data_dir, run, mode="ss", steps=6, verbose=0).seconds == 0

    synth = Synthesizer.from_run(run)
    out = synth.synthesize("Hello there. How are you?", seed=1, max_steps=6)
    assert len(out.sentences) == 2 and out.wav.dtype == np.float32 and out.wav.size > 0
    again = synth.synthesize("Hello there. How are you?", seed=1, max_steps=6)
    np.testing.assert_array_equal(out.wav, again.wav)  # deterministic for a seed
    assert not any(out.finished)  # an untrained model never stops: bounded by max steps
    assert all(a.shape[0] <= 6 for a in out.alignments)

    # a fresh process (no model classes imported yet) can load the run
    code = (f"from tf_tacokd.synthesize import Synthesizer; s = Synthesizer.from_run({str(run)!r}); "
            "print(s.synthesize('hi', max_steps=3).wav.size > 0)")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert fresh.stdout.strip().endswith("True"), fresh.stderr[-1500:]

    wav, png = tmp_path / "x.wav", tmp_path / "a.png"
    cli = CliRunner().invoke(main, ["synthesize", "Hi there!", "--run", str(run), "--out", str(wav),
                                    "--plot", str(png), "--max-steps", "5", "--allow-incomplete"])
    assert cli.exit_code == 0, cli.output
    assert sf.info(str(wav)).samplerate == 16000 and png.read_bytes()[:4] == b"\x89PNG"
    assert "warning: no stop token within the decoder bound" in cli.output


def test_other_architecture_in_the_same_run_dir_is_refused(data_dir: Path, tmp_path: Path) -> None:
    train(load_config("tiny_en", SETTINGS), data_dir, tmp_path, steps=2, verbose=0)
    with pytest.raises(Exception, match="different model"):
        train(load_config("tiny_en", [*SETTINGS, "model.decoder_lstm_units=8"]), data_dir, tmp_path,
              steps=4, verbose=0)


def test_init_from_a_shipped_model_records_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tf_tacokd.runs import shipped_name
    from tf_tacokd.train import initial_weights

    lines: list[str] = []
    assert initial_weights("en_teacher", load_config("voice_en"), tmp_path / "run", lines.append) is not None
    record = json.loads((tmp_path / "run" / "init.json").read_text())
    assert record["pretrained"] == "en_teacher" and Path(record["init"]).name == "model.keras"
    assert Path(record["init"]).is_file() and lines[0].startswith("fine-tuning from en_teacher (")
    assert shipped_name("en_teacher") == "en_teacher" and shipped_name("xx_teacher") is None
    # a folder of that name in the working directory is a path, not the shipped model
    (tmp_path / "en_teacher").mkdir()
    monkeypatch.chdir(tmp_path)
    assert shipped_name("en_teacher") is None


def test_init_fine_tunes_from_a_model_and_resuming_ignores_it(data_dir: Path, tmp_path: Path) -> None:
    from tf_tacokd.runs import load_model

    cfg = load_config("tiny_en", SETTINGS)
    teacher = tmp_path / "teacher"
    train(cfg, data_dir, teacher, steps=2, verbose=0)
    weights = lambda m: [v.numpy() for v in m.trainable_variables]  # noqa: E731  (not batch-norm statistics)
    start = weights(load_model(teacher))
    # a learning rate too small to move the weights: the fine-tuned run keeps the teacher's
    still = load_config("tiny_en", [*SETTINGS, "train.final_learning_rate=1e-12", "train.learning_rate=1e-12"])
    lines: list[str] = []
    ft = tmp_path / "ss"
    result = train(still, data_dir, ft, mode="ss", steps=2, verbose=0, init=teacher, echo=lines.append)
    assert result.step == 2 and any("fine-tuning from" in line for line in lines)
    assert json.loads((ft / "init.json").read_text())["init"] == str((teacher / "model.keras").resolve())
    got = weights(load_model(ft))
    assert len(got) == len(start)
    for a, b in zip(start, got):
        np.testing.assert_allclose(a, b, atol=1e-6)
    fresh = load_model(train(still, data_dir, tmp_path / "fresh", mode="ss", steps=2, verbose=0).run_dir)
    assert not all(np.allclose(a, b, atol=1e-3) for a, b in zip(start, weights(fresh)))
    # resuming: the run's own checkpoint wins
    lines.clear()
    train(still, data_dir, ft, mode="ss", steps=4, verbose=0, init=tmp_path / "fresh", echo=lines.append)
    assert any("is not used" in line for line in lines)
    for a, b in zip(start, weights(load_model(ft))):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # another architecture: a clean error naming the key
    other = CliRunner().invoke(main, ["train", "--config", "tiny_en", "--data", str(data_dir), "--out",
                                      str(tmp_path / "bad"), "--steps", "1", "--init", str(teacher),
                                      *[f"--set={x}" for x in [*SETTINGS, "model.decoder_lstm_units=8"]]])
    assert other.exit_code != 0 and "decoder_lstm_units = 8" in other.output, other.output


@requires_espeak
def test_init_from_a_letter_model_onto_phoneme_data_needs_new_embedding_and_keeps_the_rest(
        data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tf_tacokd.runs import load_model

    tmp_path = tmp_path_factory.mktemp("newemb")
    letters = tmp_path / "letters"
    train(load_config("tiny_en", SETTINGS), data_dir, letters, steps=2, verbose=0)
    ph_settings = [*SETTINGS, "text.phonemizer=espeak-ng"]
    ph_data = preprocessed_ljspeech(tmp_path / "ph", ph_settings)
    args = ["train", "--config", "tiny_en", "--data", str(ph_data), "--steps", "2", "--init", str(letters),
            *[f"--set={x}" for x in [*ph_settings, "train.final_learning_rate=1e-12", "train.learning_rate=1e-12"]]]
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "refused")])
    assert refused.exit_code != 0 and "add --new-embedding" in refused.output, refused.output
    ok = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "ph_run"), "--new-embedding"])
    assert ok.exit_code == 0 and "the text embedding starts fresh" in ok.output, ok.output
    before, after = load_model(letters), load_model(tmp_path / "ph_run")
    assert (before.n_symbols, after.n_symbols) == (len(symbol_table("en")), len(symbol_table("en", phonemes=True)))
    pairs = list(zip(before.trainable_variables, after.trainable_variables, strict=True))
    assert sum("embedding" in b.path for _, b in pairs) == 1
    for a, b in pairs:  # same layers in the same order (layer names carry counters)
        if "embedding" in b.path:
            assert a.shape != b.shape
        else:
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=b.path)
    same = CliRunner().invoke(main, ["train", "--config", "tiny_en", "--data", str(data_dir), "--steps", "1",
                                     "--init", str(letters), "--new-embedding", "--out", str(tmp_path / "same"),
                                     *[f"--set={x}" for x in SETTINGS]])
    assert same.exit_code != 0 and "drop --new-embedding" in same.output, same.output


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(data_dir: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    real = Tacotron2.losses_for

    def poisoned(self, batch, out, step):
        losses = real(self, batch, out, step)
        losses["loss"] = tf.where(step >= 5, tf.constant(np.nan), losses["loss"])
        return losses

    monkeypatch.setattr(Tacotron2, "losses_for", poisoned)
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite at step 6.*ckpt-4"):
        train(load_config("tiny_en", SETTINGS), data_dir, tmp_path, steps=20, verbose=0)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["status"] == "diverged" and state["bad_step"] == 6
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    import keras

    model = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_checkpoints_by_the_clock_save_without_changing_what_is_learnt(data_dir: Path, tmp_path: Path) -> None:
    from tf_tacokd.config import RECORD_KEEPING_KEYS
    from tf_tacokd.runs import load_model

    steps_only = load_config("tiny_en", [*SETTINGS, "train.checkpoint_every=1000"])
    clock = load_config("tiny_en", [*SETTINGS, "train.checkpoint_every=500", "train.checkpoint_minutes=1e-9",
                                    "train.keep_checkpoints=10", "train.snapshot_every=2", "train.log_every=1"])
    a = train(steps_only, data_dir, tmp_path / "a", steps=3, verbose=0)
    b = train(clock, data_dir, tmp_path / "b", steps=3, verbose=0)
    assert sorted(p.name for p in (a.run_dir / "checkpoints").glob("*.index")) == ["ckpt-3.index"]
    assert sorted(p.name for p in (b.run_dir / "checkpoints").glob("*.index")) == \
        ["ckpt-1.index", "ckpt-2.index", "ckpt-3.index"]  # the clock ran out at every step
    assert {k for k in RECORD_KEEPING_KEYS if getattr(steps_only.train, k) != getattr(clock.train, k)} == \
        set(RECORD_KEEPING_KEYS)  # every key the experiment plan ignores differs here, yet:
    for x, y in zip(load_model(a.run_dir).get_weights(), load_model(b.run_dir).get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_killed_training_resumes_at_the_right_step(data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "tf_tacokd.cli", "train", "--config", "tiny_en", "--data", str(data_dir),
           "--mode", "teacher", "--out", str(run), "--steps", "400"]
    for s in SETTINGS:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            index = list((run / "checkpoints").glob("ckpt-*.index"))
            if index and max(int(p.stem.split("-")[1]) for p in index) >= 6:
                break
            time.sleep(0.5)
        else:
            pytest.fail("training subprocess made no checkpoints")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = max(int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("ckpt-*.index"))
    assert saved < 400
    result = CliRunner().invoke(main, [*cmd[3:-2], "--steps", str(saved + 4)])
    assert result.exit_code == 0, result.output
    assert f"resuming at step {saved}" in result.output
    assert json.loads((run / "state.json").read_text())["step"] == saved + 4


def test_sigterm_saves_and_exits_143(data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "tf_tacokd.cli", "train", "--config", "tiny_en", "--data", str(data_dir),
           "--out", str(run), "--steps", "5000"]
    for s in [*SETTINGS, "train.checkpoint_every=1000"]:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # some steps into the run: the first scalars (train.log_every = 2) grow the event file;
    # a fixed sleep raced the first step's tracing on a loaded machine
    deadline = time.time() + 240

    def event_bytes() -> int:
        return sum(p.stat().st_size for p in (run / "logs" / "train").glob("events.out.tfevents.*")) \
            if (run / "logs" / "train").is_dir() else 0

    while time.time() < deadline and not event_bytes():
        time.sleep(0.5)
    first = event_bytes()
    while time.time() < deadline and event_bytes() <= first:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # what schedulers (and Ctrl-C's SIGINT, 130) send
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output[-2000:]  # saved, and the caller sees it stopped
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "interrupted" and 0 < state["step"] < 1000
    assert "interrupted: saved step" in output
    assert (run / "checkpoints" / f"ckpt-{state['step']}.index").is_file()


def test_split_sentences() -> None:
    # normalised text (synthesis normalises first; see tests/test_robustness.py)
    assert split_sentences("one. two!  three?") == ["one.", "two!", "three?"]
    assert split_sentences("ni3 hao3. shi4 jie4!", "zh") == ["ni3 hao3.", "shi4 jie4!"]
    long = "word, " * 60
    pieces = split_sentences(long)
    assert all(len(p) <= 150 for p in pieces) and " ".join(pieces) == long.strip()


def test_mixed_precision_trains_and_saves_a_float32_model(data_dir: Path, tmp_path: Path) -> None:
    import keras

    cfg = load_config("tiny_en", [*SETTINGS, "train.mixed_precision=true"])
    result = train(cfg, data_dir, tmp_path, steps=4, verbose=0)
    assert result.status == "finished" and result.step == 4
    assert all(np.isfinite(row["loss"]) for row in result.history)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert model.dtype_policy.name == "float32"
    assert all(w.dtype == np.float32 and np.all(np.isfinite(w)) for w in model.get_weights())
    out = model.infer(np.array([[5, 6, 7, 1]]), max_steps=3)
    assert out["mel"].dtype == np.float32


def test_a_failing_example_preview_does_not_end_training(capsys) -> None:
    """The TensorBoard preview (synthesis + Griffin-Lim every audio_every steps) is a nicety:
    a run of many hours must not die in it (it once did, at step 2000 of the long teacher)."""
    from types import SimpleNamespace

    from tf_tacokd.train import ExampleLogger

    writer = tf.summary.create_noop_writer()
    logger = ExampleLogger(writer, {}, load_config("tiny_en"), None, every=5, log_every=1000)
    logger.set_model(SimpleNamespace(optimizer=SimpleNamespace(iterations=tf.Variable(10))))

    def broken(step):
        raise RuntimeError("vocoder exploded")

    logger.log_example = broken
    logger.on_train_batch_end(0)  # step 10: a preview step
    err = capsys.readouterr().err
    assert "step 10: the example preview" in err and "vocoder exploded" in err
