"""The shipped pretrained models: they rebuild from the package and really speak (stop, and
attend along the text), so `tacokd synthesize --pretrained` works right after installation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tf_tacokd.evaluate.alignment import analyze_alignment
from tf_tacokd.pretrained import available, pretrained_run
from tf_tacokd.synthesize import Synthesizer

SENTENCES = {"en": "The weather is nice today, and we will walk to the park.",
             "zh": "今天天气很好，我们去公园散步吧。"}


@pytest.mark.parametrize("name", available())
def test_shipped_model_stops_and_aligns(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_TACOKD_CACHE", str(tmp_path))
    lang, which = name.split("_")
    run = pretrained_run(lang, which)
    out = Synthesizer.from_run(run).synthesize(SENTENCES[lang], seed=0)
    assert out.finished == [True], "the shipped model did not stop before max_decoder_steps"
    m = analyze_alignment(out.alignments[0], out.tokens[0], out.finished[0])
    assert m.skips == 0 and m.repeats == 0 and not m.incomplete, m
    assert m.diagonal_score > 0.8, m
    seconds = out.wav.size / out.sample_rate
    assert 1.5 < seconds < 12.0, seconds  # an utterance of this length, not a cut or a drone


def test_both_languages_ship_teacher_and_student() -> None:
    assert {"en_teacher", "en_student", "zh_teacher", "zh_student"} <= set(available())
