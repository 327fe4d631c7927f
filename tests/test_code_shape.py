"""The code's shape (issue 17, "one home for each idea"), checked on the source with ``ast``:
short functions with few parameters unless their docstring says why, inference that does not
depend on training, and the run/data directory layouts named in one place each."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tf_tacokd"
MAX_BODY_LINES = 60
MAX_PARAMETERS = 8
REASON = re.compile(r"(Long|Many parameters) because")
# modules that synthesise, evaluate or export: none may import a training module
INFERENCE = ["synthesize.py", "export.py", "lite.py", "runs.py", "dsp.py", "decoding.py", "audio.py",
             "evaluate", "judge/__init__.py", "judge/model.py", "judge/frontend.py", "pretrained"]
TRAINING_MODULES = {"train", "distill", "tune", "judge.training"}
LAYOUT_NAMES = ["model.keras", "config.toml", "data.json", "state.json", "history.csv", "teacher.json",
                "manifest.json", "checkpoints", "snapshots", "plan.json", "rejected.tsv", ".lock"]
LAYOUT_HOMES = {"runs.py", "data/layout.py", "pipeline.py", "experiment.py"}  # pipeline, experiment: their own work folders


def _modules(where: list[str] | None = None) -> list[Path]:
    if where is None:
        return sorted(PACKAGE.rglob("*.py"))
    out = []
    for w in where:
        p = PACKAGE / w
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def _is_click_command(node: ast.FunctionDef) -> bool:
    # a Click command takes one parameter per option and its docstring is the --help text
    return any(".command" in ast.unparse(d) for d in node.decorator_list)


def _body_lines(node: ast.FunctionDef) -> int:
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1
    return node.end_lineno - (body[1] if has_doc else body[0]).lineno + 1


def _oversized() -> list[str]:
    bad = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or _is_click_command(node):
                continue
            a = node.args
            params = [x for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
            lines = _body_lines(node)
            if (lines > MAX_BODY_LINES or len(params) > MAX_PARAMETERS) and not REASON.search(
                    ast.get_docstring(node) or ""):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {lines} lines, "
                           f"{len(params)} parameters")
    return bad


def test_functions_are_short_or_say_why():
    bad = _oversized()
    assert not bad, (f"functions over {MAX_BODY_LINES} lines or {MAX_PARAMETERS} parameters without "
                     f"'Long because ...' / 'Many parameters because ...' in their docstring:\n" + "\n".join(bad))


def test_the_shape_check_catches_an_oversized_function(tmp_path, monkeypatch):
    long_body = "\n".join(f"    x{i} = {i}" for i in range(MAX_BODY_LINES + 1))
    (tmp_path / "m.py").write_text(f"def f(a, b, c, d, e, f, g, h, i):\n    '''Doc.'''\n{long_body}\n"
                                   "def g(a, b, c, d, e, f, g, h, i):\n    '''Many parameters because a test.'''\n",
                                   encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    bad = _oversized()
    assert len(bad) == 1 and " f: " in bad[0] and f"{MAX_BODY_LINES + 1} lines" in bad[0]


def _imported(path: Path) -> set[str]:
    """Package-relative names of every module ``path`` imports (top level and inside functions)."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("tf_tacokd"):
                mod = node.module.removeprefix("tf_tacokd").lstrip(".")
            else:
                continue
            out.add(mod)
            out.update(f"{mod}.{a.name}".lstrip(".") for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("tf_tacokd.") for a in node.names if a.name.startswith("tf_tacokd"))
    return out


@pytest.mark.parametrize("path", _modules(INFERENCE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_inference_does_not_import_training(path):
    assert not (_imported(path) & TRAINING_MODULES), f"{path.name} imports {_imported(path) & TRAINING_MODULES}"


def test_the_import_check_sees_relative_and_lazy_imports(tmp_path, monkeypatch):
    (tmp_path / "judge").mkdir()
    mod = tmp_path / "judge" / "x.py"
    mod.write_text("def f():\n    from ..train import fit_run\n    from .training import train_judge\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert {"train", "judge.training"} <= _imported(mod)


def test_directory_layouts_are_named_in_one_place():
    bad = []
    for path in _modules():
        rel = str(path.relative_to(PACKAGE))
        if rel in LAYOUT_HOMES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in LAYOUT_NAMES:
                bad.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not bad, "file names of a run or data directory outside runs.RunPaths / data.layout.DataPaths:\n" + \
        "\n".join(bad)
