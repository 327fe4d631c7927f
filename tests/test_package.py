"""Packaging promises: README and CI agree, dependencies as documented, no TF on import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def readme_commands(repo: Path) -> list[str]:
    """The shell commands in the README's set-up section (bash blocks)."""
    text = (repo / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", setup, re.S)]


def test_readme_has_exactly_two_setup_commands(repo: Path) -> None:
    commands = readme_commands(repo)
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "\n" not in main_job and "\n" not in tests
    for cmd in commands:
        assert "apt-get install" in cmd and "espeak-ng" in cmd and "-m venv" in cmd
        assert "pip install" in cmd and "[lite,eval,dev]" in cmd
    assert "tacokd run" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_exactly(repo: Path) -> None:
    tests = readme_commands(repo)[1]
    ci = (repo / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci.splitlines(), "the README's test command must appear verbatim in .ci/run"


def test_dependencies_as_documented(repo: Path) -> None:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"]).lower()
    for name in ("tensorflow>=2.21,<2.22", "tensorboard", "keras-tuner", "librosa", "soundfile",
                 "numpy", "pypinyin", "unidecode", "inflect", "click", "matplotlib"):
        assert name in deps, name
    extras = project["optional-dependencies"]
    assert any("ai-edge-litert" in d for d in extras["lite"])
    for name in ("pocketsphinx", "jiwer", "speechmos", "onnxruntime", "mel-cepstral-distance"):
        assert any(name in d for d in extras["eval"]), name
    everything = deps + " ".join(" ".join(v) for v in extras.values()).lower()
    assert "tensorflow-io" not in everything and "tflite-runtime" not in everything
    readme = (repo / "README.md").read_text(encoding="utf-8")
    assert "tensorflow-io" in readme and "tflite-runtime" in readme  # the reasons are given
    assert project["scripts"]["tacokd"] == "tf_tacokd.cli:main"
    assert project["requires-python"] == ">=3.10"


def test_metadata_lives_in_pyproject_only(repo: Path) -> None:
    cfg = (repo / "setup.cfg").read_text()
    assert "[metadata]" not in cfg and "[options]" not in cfg


def test_top_level_layout(repo: Path) -> None:
    for name in ("setup.cfg", "pyproject.toml", "README.md", "tf_tacokd", "configs", "export",
                 "tests", "mobile_demo", ".ci/run", "bench"):
        assert (repo / name).exists(), name


def test_text_front_end_and_config_do_not_import_tensorflow() -> None:
    code = (
        "import sys; import tf_tacokd, tf_tacokd.text, tf_tacokd.config;"
        "from tf_tacokd.text import TextFrontEnd; TextFrontEnd('zh').encode('你好');"
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
