"""TFLite export (builtin ops only, verified against TF), the sidecar, numpy Griffin-Lim and
the TensorFlow-free on-device demo."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from tf_tacokd.cli import main
from tf_tacokd.config import load_config
from tf_tacokd.export import ExportError, _convert, export_tflite, serving_function, weights_hash
from tf_tacokd.lite import (griffin_lim_np, load_sidecar, mel_to_audio_np, mel_to_linear_np, prenet_masks,
                            sidecar_path)
from tf_tacokd.text import TextFrontEnd

from .conftest import speechlike, tiny_runs

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (teacher,) = tiny_runs(tmp_path_factory.mktemp("export"), ["teacher"], extra=["model.attention_window=true"])
    return teacher


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    return export_tflite(run, out, max_steps=30, alignments=True,
                         texts=["Hi.", "Hello there, how are you?", "The quick brown fox jumps over the lazy dog."])


def test_builtin_only_export_matches_tf_for_several_lengths(exported) -> None:
    assert exported.path.is_file() and exported.size_bytes == exported.path.stat().st_size
    assert exported.ops and not any(op.startswith("Flex") or op == "CUSTOM" for op in exported.ops)
    assert "WHILE" in exported.ops
    lengths = [v["tokens"] for v in exported.verification]
    assert len(set(lengths)) == 3
    for v in exported.verification:
        assert v["max_abs_diff"] <= 1e-4 and v["stop_step_tf"] == v["stop_step_tflite"]
        assert v["free_running_max_diff"] <= 1e-4  # untrained tiny model: no drift in 30 steps


def test_plain_litert_interpreter_reuses_one_instance_across_lengths(exported, run: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from tf_tacokd.export import _load

    model, _, _ = _load(run)
    serve = serving_function(model, 30, alignments=True, alignment_width=load_config(run / "config.toml").data.max_text_len)
    interp = Interpreter(model_path=str(exported.path))
    runner = interp.get_signature_runner("serve")
    fe = TextFrontEnd("en")
    width = sum(model.settings.prenet_units)
    for i, text in enumerate(["A.", "Two words.", "A somewhat longer sentence than the others here."]):
        ids = np.asarray([fe.encode(text)], np.int32)
        masks = prenet_masks(30, 1, width, model.settings.prenet_dropout, seed=i)
        limit = np.asarray([30], np.int32)
        got = runner(text_ids=ids, prenet_masks=masks, step_limit=limit)
        ref = serve(tf.constant(ids), tf.constant(masks), tf.constant(limit))
        np.testing.assert_allclose(got["mel"], ref["mel"].numpy(), atol=1e-4)
        assert got["alignments"].shape == (1, 30, ids.shape[1])  # [1, steps, tokens]
        np.testing.assert_allclose(got["alignments"], ref["alignments"].numpy(), atol=1e-5)
        assert int(got["mel_frames"][0]) == int(ref["mel_frames"][0]) == 60
        # the per-text bound: the untrained model never stops, so it decodes exactly that many steps
        short = runner(text_ids=ids, prenet_masks=masks, step_limit=np.asarray([7], np.int32))
        assert int(short["mel_frames"][0]) == 14 and not int(short["finished"][0])
        # the same frames up to the bound (before the postnet, whose convolutions see the whole mel)
        np.testing.assert_allclose(short["mel_before_postnet"], got["mel_before_postnet"][:, :14], atol=1e-5)


def test_sidecar_round_trips(exported, run: Path) -> None:
    side = load_sidecar(exported.path)
    cfg = load_config(run / "config.toml")
    assert side["format_version"] == 2 and side["quantize"] == "none" and side["signature"] == "serve"
    assert side["inputs"]["step_limit"] == {**side["inputs"]["step_limit"], "dtype": "int32", "shape": [1]}
    fe = TextFrontEnd(side["text"]["language"], side["text"]["strict"], side["text"]["prosody_marks"],
                      side["text"]["latin_in_mandarin"])
    assert list(fe.symbols.symbols) == side["text"]["symbols"]
    assert side["audio"] == {k: getattr(cfg.audio, k) for k in side["audio"]}
    assert side["model"]["reduction_factor"] == cfg.model.reduction_factor and side["model"]["max_steps"] == 30
    assert side["inputs"]["prenet_masks"]["shape"] == [30, 1, sum(cfg.model.prenet_units)]
    assert side["inputs"]["text_ids"]["max_tokens"] == cfg.data.max_text_len
    assert len(side["mel_stats"]["mean"]) == cfg.audio.n_mels
    import keras

    model = keras.saving.load_model(run / "model.keras", compile=False)
    assert side["source"]["weights_sha256"] == weights_hash(model)
    assert json.loads(sidecar_path(exported.path).read_text())["verification"]["texts"][0]["text"] == "Hi."


def test_quantized_exports_report_their_differences(run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", "--run", str(run), "--out", str(tmp_path / "q.tflite"),
                                       "--quantize", "dynamic", "--max-steps", "20"])
    assert result.exit_code == 0, result.output
    assert "quantize=dynamic" in result.output and "lockstep" in result.output
    assert load_sidecar(tmp_path / "q.tflite")["quantize"] == "dynamic"
    f16 = export_tflite(run, tmp_path / "h.tflite", quantize="float16", max_steps=20)
    assert all(v["max_abs_diff"] < 0.05 for v in f16.verification)


def test_flex_ops_are_refused_by_name(run: Path, tmp_path: Path) -> None:
    """Drawing the prenet masks inside the graph (stateless random ops) would need Flex:
    why the exported model takes the masks as an input."""
    from tf_tacokd.export import _load

    model, _, _ = _load(run)

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32)])
    def seeded(text_ids):
        return {"mel": model.run(text_ids, max_steps=5, seed=tf.constant([1, 2]),
                                 collect=("frames", "stop_logits"))["mel"]}

    with pytest.raises(ExportError, match=r"Select TF ops \(Flex\).*StatelessRandom"):
        _convert(model, seeded, "none", tmp_path)


def test_disagreeing_conversion_fails_and_writes_nothing(run: Path, tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.export as export_module

    real_convert = export_module._convert

    def wrong_weights(model, serve, quantize, workdir):
        model.decoder.frame_projection.kernel.assign(model.decoder.frame_projection.kernel * 1.01)
        try:
            return real_convert(model, serve, quantize, workdir)
        finally:
            model.decoder.frame_projection.kernel.assign(model.decoder.frame_projection.kernel / 1.01)

    monkeypatch.setattr(export_module, "_convert", wrong_weights)
    out = tmp_path / "bad.tflite"
    with pytest.raises(ExportError, match="disagrees with TensorFlow.*nothing was written"):
        export_tflite(run, out, max_steps=10, texts=["Hello."])
    assert not out.exists() and not sidecar_path(out).exists()


def test_bad_arguments(run: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["export", "--out", str(tmp_path / "x.tflite")])
    assert r.exit_code != 0 and "exactly one of --run" in r.output
    r = CliRunner().invoke(main, ["export", "--run", str(run), "--out", str(tmp_path / "x.bin")])
    assert r.exit_code != 0 and "must end in .tflite" in r.output
    with pytest.raises(FileNotFoundError, match="sidecar JSON"):
        load_sidecar(tmp_path / "missing.tflite")


# -- numpy audio for devices ------------------------------------------------------------


def test_the_device_vocoder_is_the_hosts_and_inverts_the_mel() -> None:
    """lite's sidecar-driven vocoder gives the host's audio bit for bit, and the mel inversion
    matches an independent one (librosa's filterbank, numpy's pseudo-inverse)."""
    import librosa

    from tf_tacokd.audio import MelStats, log_mel, mel_to_audio, mel_to_linear

    cfg = load_config("tiny_en").audio
    a = dataclasses.asdict(cfg)
    wav = speechlike(1.0, seed=3, sr=cfg.sample_rate).astype(np.float32)
    mel = log_mel(wav, cfg)
    stats = MelStats(mel.mean(0), mel.std(0))
    norm = stats.normalize(mel)
    fb = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    ref = np.maximum(np.exp(mel.astype(np.float64)) @ np.linalg.pinv(fb.astype(np.float64)).T, 0.0)
    lin = mel_to_linear_np(norm, a, stats.to_dict())
    np.testing.assert_allclose(lin, ref, rtol=1e-3, atol=1e-4 * ref.max())
    np.testing.assert_array_equal(lin, mel_to_linear(norm, cfg, stats))
    side = {"audio": a, "mel_stats": stats.to_dict(),
            "griffin_lim": {"iters": 8, "momentum": cfg.griffin_lim_momentum}}
    np.testing.assert_array_equal(mel_to_audio_np(norm, side, seed=4), mel_to_audio(norm, cfg, stats, n_iter=8, seed=4))
    assert griffin_lim_np(lin, a, 2, 0.99, 0).shape == ((lin.shape[0] - 1) * cfg.hop_length,)


def test_prenet_masks_are_seeded_inverted_dropout() -> None:
    m = prenet_masks(200, 1, 64, 0.5, seed=7)
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, 2.0}
    assert abs(m.mean() - 1.0) < 0.05
    np.testing.assert_array_equal(m, prenet_masks(200, 1, 64, 0.5, seed=7))
    assert np.all(prenet_masks(3, 1, 4, 0.0, seed=0) == 1.0)


# -- the on-device demo ------------------------------------------------------------------


def test_demo_writes_speech_without_tensorflow(exported, tmp_path: Path) -> None:
    wav = tmp_path / "demo.wav"
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['synthesize.py', '--model', {str(exported.path)!r}, 'Hello there.', '--out', {str(wav)!r},"
        " '--allow-incomplete']\n"
        "try:\n"
        f"    runpy.run_path({str(REPO / 'mobile_demo' / 'synthesize.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "assert 'tensorflow' not in sys.modules, 'the demo imported TensorFlow'\n"
        "print('NO_TF_OK')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and "NO_TF_OK" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "text->mel" in proc.stdout and "real-time factor" in proc.stdout
    with wave.open(str(wav)) as f:
        side = load_sidecar(exported.path)
        assert f.getframerate() == side["audio"]["sample_rate"] and f.getnchannels() == 1
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    assert pcm.size > 0 and np.abs(pcm).max() > 1000  # not silent
    assert "error: no stop token within the step bound" in proc.stderr  # the untrained model never stops
    # ... and without --allow-incomplete that is an error: nothing written, exit 1
    wav2 = tmp_path / "cut.wav"
    proc = subprocess.run([sys.executable, str(REPO / "mobile_demo" / "synthesize.py"), "--model",
                           str(exported.path), "Hello there.", "--out", str(wav2)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and not wav2.exists() and "Traceback" not in proc.stderr
    assert "nothing written (--allow-incomplete writes it anyway)" in proc.stderr


def test_packed_pretrained_model_rebuilds_and_exports(run: Path, tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.pretrained as pretrained
    from tf_tacokd.synthesize import Synthesizer

    monkeypatch.setattr(pretrained, "_root", lambda: tmp_path / "shipped")
    monkeypatch.setenv("TF_TACOKD_CACHE", str(tmp_path / "cache"))
    folder = pretrained.pack(run, "en", "student", dest=tmp_path / "shipped")
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "data.json", "weights.npz"]
    assert (folder / "weights.npz").stat().st_size < 0.6 * (run / "model.keras").stat().st_size  # float16
    from tf_tacokd.data.dataset import load_manifest
    from tf_tacokd.data.seen import decode_fingerprints, text_fingerprint

    shipped_data = json.loads((folder / "data.json").read_text())  # no data dir, but what it trained on
    train = load_manifest(json.loads((run / "data.json").read_text())["data_dir"]).texts("train")
    assert shipped_data["data_dir"] is None and train
    assert decode_fingerprints(shipped_data["training_texts"]) == {text_fingerprint(t) for _, t, _ in train}
    assert pretrained.available() == ["en_student"]
    rebuilt = pretrained.pretrained_run("en", "student")
    assert rebuilt.parent == tmp_path / "cache" / "pretrained" and (rebuilt / "model.keras").is_file()
    assert pretrained.pretrained_run("en", "student") == rebuilt  # cached
    a = Synthesizer.from_run(run).synthesize("Hello.", seed=3, max_steps=5)
    b = Synthesizer.from_run(rebuilt).synthesize("Hello.", seed=3, max_steps=5)
    np.testing.assert_allclose(a.mels[0], b.mels[0], atol=0.05)  # float16-rounded weights
    r = CliRunner().invoke(main, ["export", "--pretrained", "en", "--out", str(tmp_path / "p.tflite"),
                                  "--max-steps", "10"])
    assert r.exit_code == 0, r.output
    assert pretrained.pretrained_run("zh", "teacher", missing_ok=True) is None

    # a teacher's snapshot packs with its run's config and data (the step a student came from)
    import shutil

    copy = tmp_path / "teacher"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "logs", ".lock"))
    (copy / "snapshots").mkdir(exist_ok=True)
    snapshot = shutil.copy(run / "model.keras", copy / "snapshots" / "model-0000009.keras")
    folder = pretrained.pack(snapshot, "en", "teacher", dest=tmp_path / "shipped")
    assert (folder / "config.toml").read_text() == (run / "config.toml").read_text()
    with np.load(folder / "weights.npz") as z, np.load(tmp_path / "shipped" / "en_student" / "weights.npz") as y:
        assert all(np.array_equal(z[k], y[k]) for k in y.files)  # the same weights, read from the snapshot


def test_pretrained_option_names_what_is_missing(tmp_path: Path, monkeypatch) -> None:
    import tf_tacokd.pretrained as pretrained

    monkeypatch.setattr(pretrained, "_root", lambda: tmp_path)  # an installation without checkpoints
    r = CliRunner().invoke(main, ["export", "--pretrained", "zh", "--out", str(tmp_path / "x.tflite")])
    assert r.exit_code != 0 and "no pretrained zh student" in r.output and "--train" in r.output
    r = CliRunner().invoke(main, ["synthesize", "hi", "--pretrained", "en", "--run", str(tmp_path)])
    assert r.exit_code != 0 and "exactly one of --run" in r.output
    assert pretrained.available() == []


@pytest.mark.parametrize("field, value, message", [
    ("inputs.prenet_masks.rate", 1.0, "'inputs.prenet_masks.rate' must be a number in [0, 1)"),
    ("audio.sample_rate", "22050", "'audio.sample_rate' must be an integer"),
    ("text.symbols", None, "'text.symbols' is missing"),
    ("griffin_lim.iters", 0, "'griffin_lim.iters' must be an integer >= 1"),
    ("mel_stats.std", [1.0], "'mel_stats.std' must be"),
])
def test_the_demo_refuses_a_bad_sidecar_naming_the_field(exported, tmp_path: Path, field, value,
                                                         message) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(exported.path.read_bytes())
    side = json.loads(sidecar_path(exported.path).read_text(encoding="utf-8"))
    *parents, last = field.split(".")
    node = side
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    sidecar_path(model).write_text(json.dumps(side), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(REPO / "mobile_demo" / "synthesize.py"), "--model", str(model),
                           "Hello.", "--out", str(tmp_path / "x.wav")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and message in proc.stderr + proc.stdout, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.wav").exists()


def test_the_demo_names_a_truncated_model(exported, tmp_path: Path) -> None:
    model = tmp_path / "cut.tflite"
    data = exported.path.read_bytes()
    model.write_bytes(data[: len(data) // 3])
    sidecar_path(model).write_text(sidecar_path(exported.path).read_text(encoding="utf-8"), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(REPO / "mobile_demo" / "synthesize.py"), "--model", str(model),
                           "Hello.", "--out", str(tmp_path / "x.wav")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert f"{model}: not a readable exported model" in proc.stderr + proc.stdout
