"""Tacotron2: shapes and masks, mode identities, overfitting one batch, save/load, inference."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tf_tacokd.config import load_config
from tf_tacokd.model import PaperSchedule, Tacotron2, masked_mse, teacher_prob_at
from tf_tacokd.model.losses import guided_attention_loss

CFG = load_config("tiny_en")
N_SYMBOLS, N_MELS, R = 37, CFG.audio.n_mels, CFG.model.reduction_factor


def make_batch(seed: int = 0, frames: int = 40) -> dict[str, np.ndarray]:
    """Three utterances of different text and mel lengths, padded like the pipeline does."""
    rng = np.random.default_rng(seed)
    text_lengths = np.array([12, 8, 10])
    ids = np.zeros((3, 12), np.int32)
    for i, n in enumerate(text_lengths):
        ids[i, : n - 1] = rng.integers(2, N_SYMBOLS, n - 1)
        ids[i, n - 1] = 1
    mel_lengths = np.array([frames, frames - 10, frames - 17])
    t = np.arange(frames)[None, :, None]
    k = np.arange(N_MELS)[None, None, :]
    mel = np.sin(0.15 * t * (1 + ids[:, :1, None] % 3) + 0.3 * k).astype(np.float32)
    mask = (np.arange(frames)[None] < mel_lengths[:, None]).astype(np.float32)
    return {"text_ids": ids, "text_lengths": text_lengths.astype(np.int32), "mel": mel * mask[..., None],
            "mel_lengths": mel_lengths.astype(np.int32), "mel_mask": mask,
            "stop_targets": (np.arange(frames)[None] >= mel_lengths[:, None] - 1).astype(np.float32)}


def new_model(seed: int = 0) -> Tacotron2:
    keras.utils.set_random_seed(seed)
    return Tacotron2.from_settings(CFG.model, N_SYMBOLS, N_MELS)


SEED = tf.constant([3, 4], tf.int32)


def test_output_shapes_and_text_mask() -> None:
    model, b = new_model(), make_batch()
    out = model.run(b["text_ids"], b["mel"], seed=SEED)
    steps = b["mel"].shape[1] // R
    assert out["mel"].shape == out["mel_before"].shape == (3, steps * R, N_MELS)
    assert out["stop_logits"].shape == (3, steps)
    assert out["alignments"].shape == (3, steps, 12)
    assert out["hidden"].shape == (3, steps, CFG.model.decoder_lstm_units * CFG.model.decoder_lstm_layers)
    a = out["alignments"].numpy()
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)
    assert np.all(a[1, :, 8:] < 1e-6)  # no attention on padding
    # padding does not change the result for the real tokens (prenet dropout off: its
    # masks depend on the batch shape)
    keras.utils.set_random_seed(0)
    quiet = Tacotron2.from_settings(load_config("tiny_en", ["model.prenet_dropout=0.0"]).model,
                                    N_SYMBOLS, N_MELS)
    batched = quiet.run(b["text_ids"], b["mel"], seed=SEED)["mel_before"].numpy()
    alone = quiet.run(b["text_ids"][1:2, :8], b["mel"][1:2], seed=SEED)["mel_before"].numpy()
    np.testing.assert_allclose(alone, batched[1:2], atol=1e-5)


def test_prenet_dropout_is_on_at_inference_and_seeded() -> None:
    model, b = new_model(), make_batch()
    a = model.run(b["text_ids"], b["mel"], seed=SEED)["mel_before"].numpy()
    same = model.run(b["text_ids"], b["mel"], seed=SEED)["mel_before"].numpy()
    other = model.run(b["text_ids"], b["mel"], seed=tf.constant([3, 5]))["mel_before"].numpy()
    np.testing.assert_array_equal(a, same)
    assert not np.allclose(a, other)


def manual_decode(model: Tacotron2, b, natural: bool) -> np.ndarray:
    """An independent Python loop over Decoder.step: feed natural or predicted frames."""
    memory, mask = model.encode(b["text_ids"])
    dec = model.decoder
    keys = dec.attention.keys(memory)
    state = dec.initial_state(memory, mask)
    frames = []
    for t in range(b["mel"].shape[1] // R):
        f, stop, hidden, state = dec.step(state, memory, keys, mask, SEED + tf.constant([0, 1 + 2 * t]))
        frames.append(f.numpy())
        state = state._replace(prev_frame=b["mel"][:, (t + 1) * R - 1] if natural else f[:, -N_MELS:])
    return np.concatenate(frames, 1).reshape(3, -1, N_MELS)


def test_teacher_prob_one_is_teacher_forcing_and_zero_is_free_running() -> None:
    model, b = new_model(), make_batch()
    tf_out = model.run(b["text_ids"], b["mel"], teacher_prob=1.0, seed=SEED)["mel_before"].numpy()
    fr_out = model.run(b["text_ids"], b["mel"], teacher_prob=0.0, seed=SEED)["mel_before"].numpy()
    np.testing.assert_allclose(tf_out, manual_decode(model, b, natural=True), atol=1e-5)
    np.testing.assert_allclose(fr_out, manual_decode(model, b, natural=False), atol=1e-5)
    assert not np.allclose(tf_out, fr_out)
    # scheduled sampling in between mixes the two, per step and per example
    ss = model.run(b["text_ids"], b["mel"], teacher_prob=0.5, seed=SEED)["mel_before"].numpy()
    assert not np.allclose(ss, tf_out) and not np.allclose(ss, fr_out)
    # free running with targets is what inference does, for the same number of steps
    inf = model.run(b["text_ids"], None, seed=SEED, max_steps=b["mel"].shape[1] // R)
    if bool(tf.reduce_all(tf.logical_not(inf["finished"]))):
        np.testing.assert_allclose(inf["mel_before"].numpy(), fr_out, atol=1e-5)


def test_schedules() -> None:
    t = CFG.train
    assert float(teacher_prob_at(123, t)) == 1.0  # tiny_en trains with teacher forcing
    fr = load_config("tiny_en", ["train.mode=free_running"]).train
    assert float(teacher_prob_at(0, fr)) == 0.0
    for kind in ("linear", "exponential", "inverse_sigmoid"):
        ss = load_config("tiny_en", ["train.mode=scheduled_sampling", f"train.ss_schedule={kind}",
                                     "train.ss_floor=0.2", "train.ss_decay_steps=100"]).train
        values = [float(teacher_prob_at(s, ss)) for s in (0, 25, 50, 75, 100, 1000)]
        assert values[0] > 0.98 and abs(values[-1] - 0.2) < 0.01
        assert all(a >= b for a, b in zip(values, values[1:]))
    lr = PaperSchedule(1e-3, 1e-5, 50_000, 100_000)
    np.testing.assert_allclose([float(lr(s)) for s in (0, 50_000, 100_000, 150_000, 200_000)],
                               [1e-3, 1e-3, 1e-4, 1e-5, 1e-5], rtol=1e-4)
    warm = PaperSchedule(1e-3, 1e-5, 50_000, 100_000, warmup=100)  # linear ramp, then unchanged
    np.testing.assert_allclose([float(warm(s)) for s in (0, 49, 99, 100, 100_000)],
                               [1e-5, 5e-4, 1e-3, 1e-3, 1e-4], rtol=1e-4)
    again = PaperSchedule.from_config(warm.get_config())
    assert float(again(9)) == float(warm(9)) and PaperSchedule.from_config(
        {k: v for k, v in lr.get_config().items() if k != "warmup"}).warmup == 0  # older files
    model = new_model()
    model.compile_for_training(load_config("tiny_en", ["train.warmup_steps=10"]).train)
    assert abs(float(model.optimizer.learning_rate) - CFG.train.learning_rate / 10) < 1e-9


def test_masked_losses_ignore_padding() -> None:
    b = make_batch()
    noisy = b["mel"] + 100.0 * (1 - b["mel_mask"])[..., None]
    assert float(masked_mse(noisy, b["mel"], b["mel_mask"])) == 0.0
    diag = np.zeros((1, 10, 10), np.float32)
    diag[0, np.arange(10), np.arange(10)] = 1.0
    anti = diag[:, ::-1]
    ga = lambda a: float(guided_attention_loss(a, [10], [10], 0.2))  # noqa: E731
    assert ga(diag) < 0.01 and ga(anti) > 0.5  # per step: the mass off the diagonal band
    uniform = np.full((1, 10, 10), 0.1, np.float32)
    assert 0.3 < ga(uniform) < 0.9


def test_tiny_model_overfits_one_batch() -> None:
    model, b = new_model(), make_batch()
    model.compile_for_training(load_config("tiny_en", ["train.learning_rate=3e-3"]).train)
    ds = tf.data.Dataset.from_tensors(b).repeat()
    first = model.evaluate(tf.data.Dataset.from_tensors(b), return_dict=True, verbose=0)
    model.fit(ds, steps_per_epoch=300, epochs=1, verbose=0)
    last = model.evaluate(tf.data.Dataset.from_tensors(b), return_dict=True, verbose=0)
    assert last["mel_loss"] < first["mel_loss"] / 5, (first, last)
    assert last["postnet_loss"] < first["postnet_loss"] / 5
    assert last["stop_loss"] < first["stop_loss"] / 2


def test_keras_file_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model, b = new_model(), make_batch()
    model.compile_for_training(CFG.train)
    model.fit(tf.data.Dataset.from_tensors(b).repeat(), steps_per_epoch=3, epochs=1, verbose=0)
    from tf_tacokd.train import save_model

    path = save_model(model, tmp_path / "model.keras")
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert isinstance(loaded, Tacotron2) and loaded.get_config() == model.get_config()
    for mode_p in (1.0, 0.0):
        a = model.run(b["text_ids"], b["mel"], teacher_prob=mode_p, seed=SEED)["mel"].numpy()
        c = loaded.run(b["text_ids"], b["mel"], teacher_prob=mode_p, seed=SEED)["mel"].numpy()
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(model.infer(b["text_ids"][:1], seed=2, max_steps=8)["mel"],
                                  loaded.infer(b["text_ids"][:1], seed=2, max_steps=8)["mel"])
    # a compiled model saved by the user keeps its optimiser state and training settings
    model.save(tmp_path / "compiled.keras")
    again = keras.saving.load_model(tmp_path / "compiled.keras")
    assert int(again.optimizer.iterations.numpy()) == 3 and again.train_settings == CFG.train
    for a, c in zip(model.optimizer.variables, again.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), c.numpy())


def test_inference_stops_at_max_steps_on_an_untrained_model() -> None:
    model = new_model()
    out = model.infer(make_batch()["text_ids"][:2], seed=0, max_steps=7)
    assert out["mel"].shape[1] <= 7 * R and np.all(out["lengths"] <= 7 * R)
    assert out["alignments"].shape[1] <= 7 and out["stop_probs"].shape[1] <= 7
    # padded frames beyond each length are zero
    for i, n in enumerate(out["lengths"]):
        assert np.all(out["mel"][i, n:] == 0)
    windowed = model.infer(make_batch()["text_ids"][:1], seed=0, max_steps=7, window=True)
    assert windowed["alignments"].shape[1] <= 7


def test_stop_token_ends_inference_after_min_steps() -> None:
    model = new_model()
    model.decoder.stop_projection.bias.assign([10.0])  # always "stop"
    out = model.infer(make_batch()["text_ids"][:1], seed=0, max_steps=50)
    assert bool(out["finished"][0]) and out["lengths"][0] == max(CFG.model.min_decoder_steps, 1) * R


def test_bounds_in_one_bucket_share_a_compiled_decoder_and_match_exact_buffers() -> None:
    model = new_model()
    ids = make_batch()["text_ids"][:2]
    bucketed = {n: model.infer(ids, seed=5, max_steps=n) for n in (7, 9, 13)}
    assert len(model._infer_fns) == 1  # 7, 9 and 13 steps: one buffer of infer_bucket steps
    for n, out in bucketed.items():
        assert out["alignments"].shape[1] == n and np.all(out["lengths"] == n * R)  # untrained: no stop
    model.infer(ids, seed=5, max_steps=model.infer_bucket + 1)
    assert len(model._infer_fns) == 2  # past the bucket: a larger buffer
    model.infer_bucket = 1  # a decoder per bound, buffers sized exactly as before the buckets
    for n, out in bucketed.items():
        exact = model.infer(ids, seed=5, max_steps=n)
        for key in ("mel", "lengths", "stop_probs", "alignments", "finished"):
            np.testing.assert_array_equal(out[key], exact[key])
