"""Config loading: typed dataclasses, clear errors, overrides, round trips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tf_tacokd.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    list_builtin_configs,
    load_config,
    resolve_config_path,
)

BUILTIN = ["databaker_zh", "espeak_en", "espeak_zh", "ljspeech_en", "tiny_en", "tiny_zh"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_configs_are_listed_and_load() -> None:
    assert set(BUILTIN) <= set(list_builtin_configs())
    for name in BUILTIN:
        cfg = load_config(name)
        assert isinstance(cfg, Config)
        assert cfg.source.endswith(f"{name}.toml")


def test_ljspeech_config_is_the_papers_english_setup() -> None:
    cfg = load_config("ljspeech_en")
    a, m, t, d = cfg.audio, cfg.model, cfg.train, cfg.distill
    assert (a.sample_rate, a.n_mels, a.n_fft, a.hop_length, a.win_length) == (22050, 80, 1024, 256, 1024)
    assert cfg.text.language == "en"
    assert m.reduction_factor == 2
    assert (m.embedding_dim, m.encoder_conv_layers, m.encoder_conv_channels) == (512, 3, 512)
    assert (m.encoder_lstm_units, m.attention_dim, m.prenet_units) == (256, 128, [256, 256])
    assert (m.decoder_lstm_units, m.decoder_lstm_layers, m.postnet_layers) == (1024, 2, 5)
    assert (t.batch_size, t.adam_beta1, t.adam_beta2) == (32, 0.9, 0.999)
    assert (t.learning_rate, t.final_learning_rate, t.decay_start) == (1e-3, 1e-5, 50_000)
    assert t.l2_weight == 1e-6 and t.steps == 150_000 and t.mode == "teacher_forcing"
    assert t.guided_attention is False
    assert d.lambda_ == 1.0 and d.steps == 150_000


def test_databaker_config_is_pinyin_160_mel() -> None:
    cfg = load_config("databaker_zh")
    assert cfg.text.language == "zh" and cfg.audio.n_mels == 160
    assert cfg.model.reduction_factor == 2 and cfg.data.corpus_format == "databaker"


def test_espeak_configs_use_guided_attention_and_small_models() -> None:
    for name, lang in [("espeak_en", "en"), ("espeak_zh", "zh")]:
        cfg = load_config(name)
        assert cfg.text.language == lang
        assert cfg.train.guided_attention is True
        assert cfg.model.decoder_lstm_units < load_config("ljspeech_en").model.decoder_lstm_units


def test_unknown_key_names_file_section_key_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "[train]\nbatchsize = 16\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and "[train]" in msg and "'batchsize'" in msg
    assert "did you mean 'batch_size'" in msg


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown section 'trian'.*did you mean 'train'"):
        load_config(write(tmp_path, "[trian]\nsteps = 1\n"))


def test_top_level_key_outside_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not inside a section"):
        load_config(write(tmp_path, "steps = 1\n"))


@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[train]\nbatch_size = "32"\n', r"\[train\] batch_size: expected int, got string '32'"),
        ("[train]\nbatch_size = 3.5\n", r"batch_size: expected int, got float 3.5"),
        ("[train]\nbatch_size = true\n", r"batch_size: expected int, got bool True"),
        ("[audio]\ntrim_silence = 1\n", r"trim_silence: expected bool, got int 1"),
        ('[train]\nmode = "teacher"\n', r"mode: expected one of 'teacher_forcing', 'scheduled_sampling'"),
        ('[model]\nprenet_units = [256, "x"]\n', r"prenet_units\[1\]: expected int"),
        ("[model]\nprenet_units = 256\n", r"prenet_units: expected list of int, got int 256"),
        ("[text]\nlanguage = 1\n", r"language: expected one of 'en', 'zh', got int 1"),
    ],
)
def test_wrong_type_names_key_file_and_expected_type(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError, match=expected) as e:
        load_config(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "toml, expected",
    [
        ("[train]\nbatch_size = 0\n", r"batch_size: must be >= 1, got 0"),
        ("[model]\nprenet_dropout = 1.0\n", r"prenet_dropout: must be < 1.0"),
        ("[model]\nprenet_units = []\n", r"prenet_units: must not be empty"),
        ("[audio]\nwin_length = 2048\n", r"win_length \(2048\) must be <= n_fft \(1024\)"),
        ("[audio]\nfmax = 20000.0\n", r"fmax must be in"),
        ("[distill]\nlayers = [2]\n", r"layers \[2\] name a decoder LSTM layer that does not exist"),
        ("[train]\nss_floor = 1.0\nss_start = 0.5\n", r"ss_floor must be <= ss_start"),
    ],
)
def test_out_of_range_values_are_rejected(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, toml))


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[train\nsteps = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_missing_config_lists_builtin_names() -> None:
    with pytest.raises(ConfigError, match=r"not found.*espeak_en"):
        resolve_config_path("no_such_config")


def test_int_widens_to_float_and_lambda_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[train]\nlearning_rate = 1\n[distill]\nlambda = 3\n"))
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.distill.lambda_ == 3.0


def test_lambda_field_name_is_not_a_toml_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'lambda_'"):
        load_config(write(tmp_path, "[distill]\nlambda_ = 3.0\n"))


def test_overrides_are_validated_like_files() -> None:
    cfg = load_config("tiny_en", ["train.batch_size=8", "train.mode=free_running",
                                  "distill.lambda=0.5", "model.prenet_units=[8, 8]",
                                  'text.language="zh"'])
    assert cfg.train.batch_size == 8 and cfg.train.mode == "free_running"
    assert cfg.distill.lambda_ == 0.5 and cfg.model.prenet_units == [8, 8]
    assert cfg.text.language == "zh"
    assert "--set train.batch_size=8" in cfg.source
    with pytest.raises(ConfigError, match=r"--set train.batch_size=abc: \[train\] batch_size: expected int"):
        load_config("tiny_en", ["train.batch_size=abc"])
    with pytest.raises(ConfigError, match=r"--set train.batchsize=4.*did you mean 'batch_size'"):
        load_config("tiny_en", ["train.batchsize=4"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config("tiny_en", ["batch_size=4"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config("tiny_en", ["train.batch_size"])


def test_overrides_keep_values_from_the_file() -> None:
    base = load_config("espeak_en")
    cfg = apply_overrides(base, ["train.steps=7"])
    assert cfg.train.steps == 7
    assert dataclasses.replace(cfg.train, steps=base.train.steps) == base.train
    assert cfg.model == base.model


@pytest.mark.parametrize("name", BUILTIN)
def test_resolved_config_round_trips(tmp_path: Path, name: str) -> None:
    cfg = load_config(name, ["train.steps=3"])
    path = cfg.save(tmp_path / "run" / "config.toml")
    again = load_config(path)
    assert again == cfg
    assert again.hash() == cfg.hash()
    assert path.read_text().startswith("# Resolved tf_tacokd config (from ")


def test_hash_changes_with_values_not_source() -> None:
    a = config_from_dict({"train": {"steps": 5}}, origin="a.toml")
    b = config_from_dict({"train": {"steps": 5}}, origin="b.toml")
    c = config_from_dict({"train": {"steps": 6}}, origin="a.toml")
    assert a == b and a.hash() == b.hash() and a.hash() != c.hash()


def test_every_section_is_a_typed_dataclass() -> None:
    cfg = Config()
    names = [f.name for f in dataclasses.fields(cfg) if f.name != "source"]
    assert names == ["audio", "text", "model", "train", "distill", "data", "eval", "export"]
    for name in names:
        assert dataclasses.is_dataclass(getattr(cfg, name))


def test_a_config_can_name_a_base_and_list_only_its_differences(tmp_path) -> None:
    from tf_tacokd.config import ConfigError, load_config

    # the shipped quick_* configs are the shipped voices' (voice_*) plus a few differences
    quick, voice, espeak = load_config("quick_en"), load_config("voice_en"), load_config("espeak_en")
    assert quick.model == voice.model == espeak.model and quick.audio == voice.audio and quick.text == voice.text
    assert (quick.train.steps, quick.data.max_frames, quick.data.corpus_size) == (1200, 400, 10000)
    (tmp_path / "a.toml").write_text('base = "espeak_en"\n[train]\nsteps = 7\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[data]\nmax_frames = 9\n')  # relative to b.toml
    b = load_config(tmp_path / "b.toml")
    assert (b.train.steps, b.data.max_frames, b.model) == (7, 9, espeak.model)
    (tmp_path / "c.toml").write_text('base = "d.toml"\n')
    (tmp_path / "d.toml").write_text('base = "c.toml"\n')
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "e.toml").write_text('base = "no_such_config"\n')
    with pytest.raises(ConfigError, match="e.toml: base: config 'no_such_config' not found"):
        load_config(tmp_path / "e.toml")


def test_the_main_jobs_configs_fit_the_shipped_models() -> None:
    """`tacokd run --lang LANG` (config quick_LANG) uses the shipped models only if their
    audio, text, model and corpus split are its own; otherwise it trains for an hour."""
    from tf_tacokd.pipeline import shipped_differences
    from tf_tacokd.pretrained import _root, available

    for name in available():
        shipped = load_config(_root() / name / "config.toml")
        assert shipped_differences(shipped, load_config(f"quick_{name.split('_')[0]}")) == [], name
    voice = load_config("voice_zh")
    other = load_config("quick_zh", ["data.corpus_size=3000", "model.attention_dim=32"])
    assert shipped_differences(voice, other) == ["model.attention_dim = 32 (shipped: 64)",
                                                 "data.corpus_size = 3000 (shipped: 10000)"]
