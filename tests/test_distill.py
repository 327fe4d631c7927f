"""The KD student: equation 7 against numpy, frozen teacher and encoder, standalone student."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tf_tacokd.cli import main
from tf_tacokd.config import load_config
from tf_tacokd.distill import Distiller, attention_distance, distill, distillation_loss
from tf_tacokd.model import Tacotron2
from tf_tacokd.synthesize import Synthesizer
from tf_tacokd.train import train

from .conftest import preprocessed_ljspeech
from .test_model import CFG, N_MELS, N_SYMBOLS, make_batch

SETTINGS = ["data.val_size=2", "data.test_size=1", "data.shard_size=4", "train.batch_size=2",
            "train.checkpoint_every=2", "train.validate_every=4", "train.log_every=2",
            "train.audio_every=4"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kd")
    data = preprocessed_ljspeech(root, SETTINGS)
    train(load_config("tiny_en", SETTINGS), data, root / "teacher", steps=4, verbose=0)
    return data, root / "teacher"


def test_distillation_loss_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    units = 4
    s, s_hat = rng.normal(size=(2, 2, 5, 2 * units)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    for layers in ([0, 1], [0], [1]):
        cols = np.concatenate([np.arange(i * units, (i + 1) * units) for i in layers])
        for reduction, reduce in (("sum", np.sum), ("mean", np.mean)):
            per_step = reduce((s[..., cols] - s_hat[..., cols]) ** 2, axis=-1)
            expected = (per_step * mask).sum() / mask.sum()
            got = float(distillation_loss(s, s_hat, mask, units, layers, reduction))
            np.testing.assert_allclose(got, expected, rtol=1e-5)


def tiny_teacher() -> Tacotron2:
    keras.utils.set_random_seed(0)
    return Tacotron2.from_settings(CFG.model, N_SYMBOLS, N_MELS)


def test_total_loss_is_feature_plus_lambda_times_distill() -> None:
    b = {k: tf.constant(v) for k, v in make_batch().items()}
    teacher = tiny_teacher()
    for lam in (0.0, 1.0, 7.5):
        d = load_config("tiny_en", [f"distill.lambda={lam}"]).distill
        model = Distiller(teacher, Distiller.student_from(teacher), d)
        model.compile_for_training(CFG.train)
        losses, _ = model._forward(b, 0, training=False)
        np.testing.assert_allclose(float(losses["loss"]),
                                   float(losses["feature_loss"]) + lam * float(losses["distill_loss"]),
                                   rtol=1e-5)
        assert float(losses["distill_loss"]) > 0  # free running vs teacher forcing differ


def forward_with(teacher: Tacotron2, batch, *settings: str):
    """One distillation forward pass (losses, student outputs) with ``[distill]`` overrides."""
    model = Distiller.build_from(teacher, load_config("tiny_en", list(settings)).distill, CFG.train)
    return model._forward(batch, 0, training=False)


def test_feature_loss_options() -> None:
    """Defaults are the paper's Loss_f; the options change only what they say."""
    b = {k: tf.constant(v) for k, v in make_batch().items()}
    teacher = tiny_teacher()

    def forward(*settings):
        return forward_with(teacher, b, *settings)

    base, out = forward()
    stop_and_ga = float(base["feature_loss"]) - float(base["mel_loss"]) - float(base["postnet_loss"])
    half, _ = forward("distill.feature_weight=0.5")
    np.testing.assert_allclose(float(half["feature_loss"]),
                               stop_and_ga + 0.5 * (float(base["mel_loss"]) + float(base["postnet_loss"])), rtol=1e-5)
    l1, _ = forward("distill.feature_loss='l1+l2'")
    mae = np.mean(np.abs(out["mel_before"].numpy() - b["mel"].numpy()), -1)
    mae_post = np.mean(np.abs(out["mel"].numpy() - b["mel"].numpy()), -1)
    mask = b["mel_mask"].numpy()
    extra = ((mae * mask).sum() + (mae_post * mask).sum()) / mask.sum()
    np.testing.assert_allclose(float(l1["feature_loss"]) - float(base["feature_loss"]), extra, rtol=1e-4)
    to_teacher, _ = forward("distill.feature_target='teacher'")
    assert abs(float(to_teacher["mel_loss"]) - float(base["mel_loss"])) > 1e-6  # another target
    assert float(to_teacher["stop_loss"]) == pytest.approx(float(base["stop_loss"]))
    # the student starts as the teacher, decoding freely: nearer the teacher than a random step, but not equal
    assert 0.0 < float(base["distill_relative"]) < 5.0


def _reference_dtw_cost(x: np.ndarray, y: np.ndarray) -> float:
    """The minimum summed squared-Euclidean cost of a monotone path from (0, 0) to the end with
    steps (1, 1), (1, 0), (0, 1): the textbook dynamic programme, written out."""
    n, m = len(x), len(y)
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return float(acc[n, m])


def test_dtw_path_is_the_cheapest_monotone_path_and_forgives_a_shift() -> None:
    from tf_tacokd.model.losses import dtw_path, masked_mse

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 9, 4)).astype(np.float32), rng.normal(size=(2, 9, 4)).astype(np.float32)
    mask = np.ones((2, 9), np.float32)
    mask[1, 6:] = 0.0  # the second example has 6 real frames
    pairs, on_path = (t.numpy() for t in dtw_path(tf.constant(x), tf.constant(y), tf.constant(mask), 1.0))
    for k, n in enumerate((9, 6)):
        path = pairs[k][on_path[k] > 0]
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, n - 1)
        steps = np.diff(path, axis=0)
        assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(1) >= 1).all()  # monotone, no repeats
        walked = float(((x[k, path[:, 0]] - y[k, path[:, 1]]) ** 2).sum())
        assert walked == pytest.approx(_reference_dtw_cost(x[k, :n], y[k, :n]), rel=1e-5)
    # a smooth sequence three frames late: large at the same step, small along the path
    t = np.linspace(0, 4 * np.pi, 60)
    target = np.stack([np.sin(t), np.cos(0.5 * t)], -1)[None].astype(np.float32)
    late = np.concatenate([np.repeat(target[:, :1], 3, 1), target[:, :-3]], 1)
    m = tf.ones([1, 60])
    same_step = float(masked_mse(tf.constant(late), tf.constant(target), m))
    pairs, on_path = dtw_path(tf.constant(late), tf.constant(target), m, 0.25)
    aligned = float(masked_mse(tf.gather(late, pairs[..., 0], batch_dims=1),
                               tf.gather(target, pairs[..., 1], batch_dims=1), on_path))
    assert aligned < 0.05 * same_step


def test_dtw_feature_alignment_trains_and_the_default_is_the_papers() -> None:
    b = {k: tf.constant(v) for k, v in make_batch().items()}
    teacher = tiny_teacher()
    base = forward_with(teacher, b)[0]
    step = forward_with(teacher, b, "distill.feature_alignment='step'", "distill.feature_weight=1.0")[0]
    assert float(step["feature_loss"]) == pytest.approx(float(base["feature_loss"]), rel=1e-6)
    aligned, out = forward_with(teacher, b, "distill.feature_alignment='dtw'", "distill.dtw_band=1.0")
    stop_and_ga = float(base["feature_loss"]) - float(base["mel_loss"]) - float(base["postnet_loss"])
    # the postnet term along the cheapest path is at most its same-step value (the diagonal is a path)
    assert stop_and_ga < float(aligned["feature_loss"]) < float(base["feature_loss"]) + float(base["mel_loss"])
    keras.utils.set_random_seed(0)
    model = Distiller.build_from(teacher, load_config("tiny_en", ["distill.feature_alignment='dtw'"]).distill,
                                 CFG.train)
    before = [w.copy() for w in model.student.decoder.get_weights()]
    history = model.fit(tf.data.Dataset.from_tensors(b).repeat(), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["feature_loss"][-1])
    assert any(not np.array_equal(a, c) for a, c in zip(before, model.student.decoder.get_weights()))


def test_dtw_state_alignment_pairs_the_decoder_steps_of_the_mel_path(monkeypatch) -> None:
    """Loss_d along the DTW path against numpy: frame pairs (i, j) of the postnet output and
    the natural mel give the student's step i // r and the teacher's step j // r."""
    import tf_tacokd.distill as distill_module
    from tf_tacokd.model.losses import dtw_path

    b = {k: tf.constant(v) for k, v in make_batch().items()}
    teacher = tiny_teacher()
    base = forward_with(teacher, b)[0]
    same = forward_with(teacher, b, "distill.state_alignment='step'")[0]
    assert float(same["distill_loss"]) == pytest.approx(float(base["distill_loss"]), rel=1e-6)
    seen = []
    real = distill_module.distillation_loss
    monkeypatch.setattr(distill_module, "distillation_loss", lambda *a, **k: seen.append(a) or real(*a, **k))
    losses, out = forward_with(teacher, b, "distill.state_alignment='dtw'", "distill.dtw_band=1.0")
    s = seen[1][0].numpy()  # the second call measures the spread of the teacher's own states
    s_hat = out["hidden"].numpy()
    pairs, on_path = (t.numpy() for t in dtw_path(out["mel"], b["mel"], b["mel_mask"], 1.0))
    r = teacher.r
    per_pair = np.mean((np.take_along_axis(s, pairs[..., 1:] // r, 1)
                        - np.take_along_axis(s_hat, pairs[..., :1] // r, 1)) ** 2, -1)
    expected = (per_pair * on_path).sum() / on_path.sum()
    assert float(losses["distill_loss"]) == pytest.approx(expected, rel=1e-5)
    assert abs(expected - float(base["distill_loss"])) > 1e-6  # the path is not the diagonal here
    # the feature loss stays the paper's unless feature_alignment says otherwise
    assert float(losses["feature_loss"]) == pytest.approx(float(base["feature_loss"]), rel=1e-6)


def test_teacher_forced_term_is_the_students_own_teacher_forced_loss() -> None:
    b = {k: tf.constant(v) for k, v in make_batch().items()}
    teacher = tiny_teacher()
    base = forward_with(teacher, b)[0]
    model = Distiller.build_from(teacher, load_config("tiny_en", ["distill.teacher_forced_weight=0.5"]).distill,
                                 CFG.train)
    losses, _ = model._forward(b, 0, training=False)
    # the reference: the student decoding the batch with natural frames fed back, scored as a teacher
    student = model.student
    from tf_tacokd.config import TrainConfig

    seed = tf.stack([tf.constant((student.train_settings or TrainConfig()).seed, tf.int32), tf.constant(0, tf.int32)])
    forced = student.run(b["text_ids"], b["mel"], teacher_prob=1.0, seed=seed, training=False,
                         memory=teacher.encode(b["text_ids"], training=False))
    expected = float(student.losses_for(b, forced, 0)["loss"])
    assert float(losses["forced_loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(losses["loss"]) == pytest.approx(float(base["loss"]) + 0.5 * expected, rel=1e-5)
    assert abs(expected - float(base["feature_loss"])) > 1e-6  # another pass than the free-running one
    assert "forced_loss" not in base or float(base["forced_loss"]) == 0.0


def _masked_std(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.stack([x[b, mask[b] > 0].std(0) for b in range(len(x))])


def test_variance_measures_match_numpy() -> None:
    """gv_loss, spread_ratio and frame_correlation against numpy on ragged examples."""
    from tf_tacokd.model.losses import gv_loss, spread_ratio
    from tf_tacokd.model.losses import frame_correlation

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 3, 7, 5)).astype(np.float32)
    x[1] *= 0.3
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 6 + [0]], np.float32)
    x[1, 4:] = 99.0  # padding must not count
    expected_gv = np.mean(((np.sqrt(_masked_std(x, mask) ** 2 + 1e-6) - np.sqrt(_masked_std(y, mask) ** 2 + 1e-6)) ** 2))
    np.testing.assert_allclose(float(gv_loss(x, y, mask)), expected_gv, rtol=1e-4)
    var = lambda a: (_masked_std(a, mask) ** 2).sum(-1)  # noqa: E731
    np.testing.assert_allclose(float(spread_ratio(x, y, mask)), np.mean(var(x) / var(y)), rtol=1e-4)
    corr = []
    for b in range(3):
        xs, ys = x[b, mask[b] > 0], y[b, mask[b] > 0]
        corr.append(np.corrcoef((xs - xs.mean(0)).ravel(), (ys - ys.mean(0)).ravel())[0, 1])
    np.testing.assert_allclose(float(frame_correlation(x, y, mask)), np.mean(corr), rtol=1e-4, atol=1e-6)
    # a flat output: no spread, the largest gv loss; an exact copy: correlation 1, gv 0
    flat = np.broadcast_to(y.mean(1, keepdims=True), y.shape).copy()
    assert float(spread_ratio(flat, y, mask)) < 1e-3 < float(gv_loss(flat, y, mask))
    assert float(frame_correlation(y, y, mask)) == pytest.approx(1.0, abs=1e-5)
    assert float(gv_loss(y, y, mask)) == pytest.approx(0.0, abs=1e-6)


def test_variance_terms_add_to_the_total_with_their_weights() -> None:
    b = {k: tf.constant(v) for k, v in make_batch().items()}
    teacher = tiny_teacher()

    def forward(*settings):
        return forward_with(teacher, b, *settings)[0]

    base = forward()
    assert "gv_loss" not in base and 0.0 < float(base["mel_spread"]) and 0.0 < float(base["state_spread"])
    both = forward("distill.gv_weight=2.0", "distill.state_gv_weight=0.5")
    np.testing.assert_allclose(float(both["loss"]), float(base["loss"]) + 2.0 * float(both["gv_loss"])
                               + 0.5 * float(both["state_gv_loss"]), rtol=1e-5)
    assert float(both["gv_loss"]) > 0 and float(both["state_gv_loss"]) > 0


def test_attention_distance_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.dirichlet(np.ones(6), size=(2, 2, 5)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    expected = (((a - b) ** 2).sum(-1) * mask).sum() / mask.sum()
    np.testing.assert_allclose(float(attention_distance(a, b, mask)), expected, rtol=1e-5)
    assert float(attention_distance(a, a, mask)) == 0.0


def test_the_attention_term_adds_to_the_total_and_pulls_the_attention_to_the_teachers() -> None:
    b = {k: tf.constant(v) for k, v in make_batch().items()}
    teacher = tiny_teacher()
    base = forward_with(teacher, b)[0]
    held = forward_with(teacher, b, "distill.attention_weight=3.0")[0]
    assert "attention_loss" not in base and float(held["attention_loss"]) > 0
    np.testing.assert_allclose(float(held["loss"]), float(base["loss"]) + 3.0 * float(held["attention_loss"]),
                               rtol=1e-5)

    def attention_after_training(weight: float) -> float:
        keras.utils.set_random_seed(0)
        model = Distiller.build_from(teacher, load_config("tiny_en", [f"distill.attention_weight={weight}",
                                                                     "distill.learning_rate=1e-2"]).distill, CFG.train)
        model.fit(tf.data.Dataset.from_tensors(b).repeat(), steps_per_epoch=8, epochs=1, verbose=0)
        measured = Distiller.build_from(teacher, load_config("tiny_en", ["distill.attention_weight=1.0"]).distill,
                                        CFG.train)
        measured.student.set_weights(model.student.get_weights())
        return float(measured._forward(b, 0, training=False)[0]["attention_loss"])

    # an untrained model attends almost uniformly (distance ~1e-4): a weight that makes the term
    # as large as the feature loss
    assert attention_after_training(1e4) < 0.5 * attention_after_training(0.0)


def test_only_the_student_decoder_and_postnet_learn_by_default() -> None:
    b = make_batch()
    teacher = tiny_teacher()
    before = [w.copy() for w in teacher.get_weights()]
    model = Distiller(teacher, Distiller.student_from(teacher), CFG.distill)
    model.compile_for_training(CFG.train)
    assert {v.path.split("/")[0] for v in model.trainable_variables} <= {"decoder", "postnet"}
    model.fit(tf.data.Dataset.from_tensors(b).repeat(), steps_per_epoch=3, epochs=1, verbose=0)
    for a, c in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, c)  # the teacher is frozen
    for a, c in zip(teacher.encoder.get_weights(), model.student.encoder.get_weights()):
        np.testing.assert_array_equal(a, c)  # the student uses the teacher's encoder
    assert any(not np.array_equal(a, c) for a, c in
               zip(teacher.decoder.get_weights(), model.student.decoder.get_weights()))
    tuned = Distiller(teacher, Distiller.student_from(teacher),
                      load_config("tiny_en", ["distill.train_encoder=true"]).distill)
    assert any(v.path.startswith("encoder") for v in tuned.trainable_variables)


def test_student_init_options() -> None:
    teacher = tiny_teacher()
    same = Distiller.student_from(teacher, "teacher")
    fresh = Distiller.student_from(teacher, "random")
    for a, c in zip(teacher.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, c)
    for a, c in zip(teacher.encoder.get_weights(), fresh.encoder.get_weights()):
        np.testing.assert_array_equal(a, c)
    assert not np.array_equal(teacher.decoder.frame_projection.kernel.numpy(),
                              fresh.decoder.frame_projection.kernel.numpy())


def test_the_student_learns_at_its_own_rate_and_the_papers_is_selectable() -> None:
    teacher = tiny_teacher()
    for settings, lr, final in (([], 1e-4, 1e-5), (["distill.learning_rate=1e-3"], 1e-3, 1e-5),
                                (["distill.learning_rate=3e-6"], 3e-6, 3e-6)):
        cfg = load_config("tiny_en", settings)
        model = Distiller.build_from(teacher, cfg.distill, cfg.train)
        assert model.optimizer is model.student.optimizer
        np.testing.assert_allclose(float(model.optimizer.learning_rate), lr, rtol=1e-6)
        model.optimizer.iterations.assign(10**9)  # past the decay
        np.testing.assert_allclose(float(model.optimizer.learning_rate), final, rtol=1e-5)
        assert cfg.train.learning_rate == 1e-3  # the teacher's rate is untouched


def test_distill_command_writes_a_standalone_student(teacher_run, tmp_path: Path) -> None:
    data, teacher = teacher_run
    args = ["distill", "--config", "tiny_en", "--data", str(data), "--teacher", str(teacher),
            "--out", str(tmp_path / "student"), "--lambda", "0.5", "--steps", "4"]
    for s in SETTINGS:
        args += ["--set", s]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "KD student (lambda = 0.5" in result.output
    # a 4-step teacher follows nothing: the collapse warning names why (RESULTS.md section 10)
    assert "teacher decoding freely: frame correlation" in result.output
    assert "the student is expected to collapse to a drone" in result.output
    rho = json.loads((tmp_path / "student" / "teacher.json").read_text())["free_running_correlation"]
    assert -1.0 <= rho < 0.5
    assert load_config(tmp_path / "student" / "config.toml").distill.lambda_ == 0.5
    history = (tmp_path / "student" / "history.csv").read_text().splitlines()[0]
    assert "distill_loss" in history and "val_fr_mel_loss" in history
    student = keras.saving.load_model(tmp_path / "student" / "model.keras", compile=False)
    assert type(student) is Tacotron2
    out = Synthesizer.from_run(tmp_path / "student").synthesize("Hello.", max_steps=4)
    assert out.wav.size > 0
    again = CliRunner().invoke(main, args)  # finished: nothing left to do
    assert again.exit_code == 0 and "nothing to do" in again.output

    # training curves on one budget axis: the student starts after its teacher's 4 steps
    from tf_tacokd.plots import budget_offset, read_history

    assert budget_offset(tmp_path / "student") == 4 and budget_offset(teacher) == 0
    assert [r["step"] for r in read_history(tmp_path / "student")] == [4.0]
    png = tmp_path / "curves.png"
    curves = CliRunner().invoke(main, ["curves", "--run", str(teacher), "--run", str(tmp_path / "student"),
                                       "--names", "TF,KD", "--out", str(png)])
    assert curves.exit_code == 0, curves.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(main, ["curves", "--run", str(teacher), "--metric", "no_such_column",
                                    "--out", str(png)])
    assert bad.exit_code == 1 and "no_such_column" in bad.output
    missing = CliRunner().invoke(main, ["curves", "--run", str(tmp_path), "--out", str(png)])
    assert missing.exit_code == 1 and "no training history" in missing.output


def test_student_must_match_the_teacher(teacher_run, tmp_path: Path) -> None:
    data, teacher = teacher_run
    result = CliRunner().invoke(main, ["distill", "--config", "tiny_en", "--data", str(data),
                                       "--teacher", str(teacher), "--out", str(tmp_path / "s"),
                                       "--set", "model.decoder_lstm_units=8", "--steps", "2"])
    assert result.exit_code == 1 and "teacher's architecture" in result.output
    assert f"({teacher / 'config.toml'})" in result.output
    # a snapshot of the teacher is checked against its run's config too
    import shutil

    snap = teacher / "snapshots" / "model-0000099.keras"
    snap.parent.mkdir(exist_ok=True)
    try:
        shutil.copy(teacher / "model.keras", snap)
        result = CliRunner().invoke(main, ["distill", "--config", "tiny_en", "--data", str(data),
                                           "--teacher", str(snap), "--out", str(tmp_path / "s2"),
                                           "--set", "model.decoder_lstm_units=8", "--steps", "2"])
        assert result.exit_code == 1 and "teacher's architecture" in result.output
        assert "decoder_lstm_units = 8" in result.output
    finally:
        shutil.rmtree(snap.parent)


def test_a_teacher_that_read_another_symbol_table_of_the_same_size_is_refused(teacher_run, tmp_path: Path) -> None:
    data, teacher = teacher_run
    run_data = teacher / "data.json"
    original = run_data.read_text()
    described = json.loads(original)
    described["symbols"]["symbols"] = [*described["symbols"]["symbols"][:2], *described["symbols"]["symbols"][:1:-1]]
    try:  # the teacher's run says it read the letters in another order
        run_data.write_text(json.dumps(described))
        result = CliRunner().invoke(main, ["distill", "--config", "tiny_en", "--data", str(data),
                                           "--teacher", str(teacher), "--out", str(tmp_path / "s"), "--steps", "1",
                                           *[f"--set={x}" for x in SETTINGS]])
    finally:
        run_data.write_text(original)
    assert result.exit_code == 1 and "another symbol table" in result.output, result.output


def _tune_args(teacher_run, out: Path, *extra: str) -> list[str]:
    """``tacokd tune`` with 2 trials x 2 steps of the tiny model into ``out``."""
    data, teacher = teacher_run
    args = ["tune", "--config", "tiny_en", "--data", str(data), "--teacher", str(teacher),
            "--trials", "2", "--steps", "2", "--out", str(out), *extra]
    for s in SETTINGS:
        args += ["--set", s]
    return args


def test_lambda_search_table_and_csv(teacher_run, tmp_path: Path) -> None:
    args = _tune_args(teacher_run, tmp_path / "tune", "--strategy", "mirrored",
                      "--set", "distill.tune_lambda_min=0.1", "--set", "distill.tune_lambda_max=10")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "tune" / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,lambda,learning_rate,val_fr_mel_loss,steps")
    assert len(rows) == 3
    for row in rows[1:]:
        fields = row.split(",")
        assert 0.1 <= float(fields[1]) <= 10 and fields[6] == "COMPLETED" and int(fields[4]) == 2
        assert float(fields[3]) > 0
    assert "best lambda" in result.output
    said = [line for line in result.output.splitlines() if line.startswith("trial: lambda ")]
    assert len(said) == 4 and said[0].endswith(", 2 steps ...") and " val_fr_mel_loss " in said[1]  # progress
    assert (tmp_path / "tune" / "trials.png").read_bytes()[:4] == b"\x89PNG"
    # the same command again resumes: nothing retrained, and the table keeps every trial's steps
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert (tmp_path / "tune" / "trials.csv").read_text().splitlines() == rows


def test_failed_trials_are_visible_and_all_failing_is_an_error(teacher_run, tmp_path: Path,
                                                               monkeypatch) -> None:
    from tf_tacokd import tune

    def broken(self, hp, model, *args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(tune.LambdaHyperModel, "fit", broken)
    args = _tune_args(teacher_run, tmp_path / "tune")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "every trial failed" in result.output and "FAILED" in result.output
    assert "out of memory (simulated)" in result.output
    assert "FAILED" in (tmp_path / "tune" / "trials.csv").read_text()


def test_an_interrupted_search_says_so_exits_130_and_resumes(teacher_run, tmp_path: Path, monkeypatch) -> None:
    from tf_tacokd import tune

    real, calls = tune.LambdaHyperModel.fit, []

    def stopped_in_the_second_trial(self, hp, model, *args, **kwargs):
        calls.append(hp.values["lambda"])
        if len(calls) == 2:
            raise KeyboardInterrupt("SIGTERM")  # what the CLI's signal handler raises
        return real(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(tune.LambdaHyperModel, "fit", stopped_in_the_second_trial)
    args = _tune_args(teacher_run, tmp_path / "tune")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130, result.output
    assert "was interrupted (SIGTERM) with 1 of 2 trials finished; run the same command to resume" in result.output
    assert "Aborted" not in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    rows = [r.split(",") for r in (tmp_path / "tune" / "trials.csv").read_text().splitlines()[1:]]
    assert [r[6] for r in rows] == ["COMPLETED", "COMPLETED"]
    assert sorted(float(r[1]) for r in rows) == pytest.approx(sorted(calls[:2]), rel=1e-5)  # the same trial, again
    assert calls[2] == calls[1] and len(calls) == 3  # only the interrupted trial trained again


def test_tune_refuses_multiworker_with_the_reason(teacher_run, tmp_path: Path) -> None:
    data, teacher = teacher_run
    result = CliRunner().invoke(main, ["tune", "--config", "tiny_en", "--data", str(data), "--teacher",
                                       str(teacher), "--out", str(tmp_path), "--strategy", "multiworker"])
    assert result.exit_code == 1 and "keras-team/keras#20585" in result.output


def test_teacher_readiness_is_measured_once_per_teacher_file(teacher_run, tmp_path: Path, monkeypatch) -> None:
    """Students of one teacher (an experiment's systems, a resumed run) reuse its readiness
    figure; a changed teacher file or other data settings are measured again."""
    import os

    from tf_tacokd import distill as distill_module
    from tf_tacokd.evaluate import free_running

    data, teacher = teacher_run
    monkeypatch.setattr(distill_module, "_READINESS", {})
    calls = []
    real = free_running.free_running_correlation

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(free_running, "free_running_correlation", counting)
    snapshot = tmp_path / "teacher.keras"
    snapshot.write_bytes((teacher / "model.keras").read_bytes())
    cfg = load_config("tiny_en", SETTINGS)
    lines: list[str] = []
    distill(cfg, data, snapshot, tmp_path / "a", steps=1, verbose=0, echo=lines.append)
    assert len(calls) == 1
    distill(cfg, data, snapshot, tmp_path / "b", steps=1, verbose=0, echo=lines.append)
    assert len(calls) == 1 and any("measured before" in line for line in lines)
    first = json.loads((tmp_path / "a" / "teacher.json").read_text())
    assert json.loads((tmp_path / "b" / "teacher.json").read_text()) == first

    monkeypatch.setattr(distill_module, "_READINESS", {})  # a new process resuming "a"
    distill(cfg, data, snapshot, tmp_path / "a", steps=2, verbose=0, echo=lines.append)
    assert len(calls) == 1

    other = load_config("tiny_en", SETTINGS + ["data.max_frames=300"])
    distill(other, data, snapshot, tmp_path / "c", steps=1, verbose=0, echo=lines.append)
    assert len(calls) == 2  # other [data] settings read other utterances
    stat = snapshot.stat()
    os.utime(snapshot, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the teacher file replaced
    distill(cfg, data, snapshot, tmp_path / "a", steps=3, verbose=0, echo=lines.append)
    assert len(calls) == 3
