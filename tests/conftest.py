"""Shared fixtures. Tests use tiny configs and small generated data only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    """The repository root (for README, configs, .ci)."""
    return REPO


requires_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)"
)


# ---------------------------------------------------------------------------
# Tiny corpora in both layouts, with bad items, built inside the tests
# ---------------------------------------------------------------------------

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

SR = 16000  # the tiny configs' sample rate


def speechlike(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic signal with silence at both ends."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 40 * rng.random() + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 12))
    wav *= 0.5 * (1 + np.sin(2 * np.pi * (2 + rng.random()) * t)) * 0.3
    wav += 0.003 * rng.standard_normal(t.size)
    pad = np.zeros(int(0.2 * sr))
    return np.concatenate([pad, wav, pad]).astype(np.float32)


def write_wav(path: Path, wav: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, sr)
    return path


GOOD_EN = {
    "LJ001-0001": ("Printing, in the only sense", "printing, in the only sense"),
    "LJ001-0002": ('He said "hello" twice', 'he said "hello" twice'),  # quotes are literal
    "LJ001-0003": ("In 1977 it cost $5", "in nineteen seventy-seven it cost five dollars"),
    "LJ001-0004": ("A short one", "a short one"),
    "LJ001-0005": ("Another line of text", "another line of text"),
    "LJ001-0006": ("Numbers like 3 and 4", "numbers like three and four"),
    "LJ001-0007": ("The seventh good item", "the seventh good item"),
    "LJ001-0008": ("Eight is enough", "eight is enough"),
}


def make_ljspeech(root: Path) -> dict[str, str]:
    """An LJSpeech-layout corpus with good items and one of each kind of bad item.

    Returns the expected rejection reason (a substring) for each bad item id.
    """
    lines = []
    for k, (item, (text, norm)) in enumerate(GOOD_EN.items()):
        write_wav(root / "wavs" / f"{item}.wav", speechlike(0.8 + 0.15 * k, seed=k))
        lines.append(f"{item}|{text}|{norm}")
    bad = {
        "BAD-missing": "missing audio file",
        "BAD-corrupt": "unreadable or corrupt",
        "BAD-silent": "silent",
        "BAD-long": "too long",
        "BAD-8k": "sampled at 8000 Hz",
        "BAD-empty": "empty text",
        "BAD-symbols": "nothing to pronounce",
        "BAD-fields": "malformed line",
        "LJ001-0001": "duplicate id",
    }
    lines.append("BAD-missing|No wav here|no wav here")
    (root / "wavs" / "BAD-corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    lines.append("BAD-corrupt|Corrupt file|corrupt file")
    write_wav(root / "wavs" / "BAD-silent.wav", np.zeros(SR, np.float32))
    lines.append("BAD-silent|Silence|silence")
    write_wav(root / "wavs" / "BAD-long.wav", speechlike(8.0, seed=99))
    lines.append("BAD-long|Far too long|far too long")
    write_wav(root / "wavs" / "BAD-8k.wav", speechlike(1.0, seed=98, sr=8000), sr=8000)
    lines.append("BAD-8k|Low rate|low rate")
    write_wav(root / "wavs" / "BAD-empty.wav", speechlike(1.0, seed=97))
    lines.append("BAD-empty|  |  ")
    write_wav(root / "wavs" / "BAD-symbols.wav", speechlike(1.0, seed=96))
    lines.append("BAD-symbols|...|...")
    lines.append("BAD-fields|one|two|three")
    lines.append("LJ001-0001|Duplicate|duplicate")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bad


GOOD_ZH = {
    "000001": ("卡尔普#2陪外孙#1玩滑梯#4。", "\tka2 er2 pu3 pei2 wai4 sun1 wan2 hua2 ti1"),
    "000002": ("假语村言#2别再#1拥抱我#4。", "\tjia2 yu3 cun1 yan2 bie2 zai4 yong1 bao4 wo3"),
    "000003": ("宝马#1配挂#1跛骡鞍#3，貂蝉#1怨枕#2董翁榻#4。", "\tbao2 ma3 pei4 gua4 bo2 luo2 an1 diao1 chan2 yuan4 zhen3 dong3 weng1 ta4"),
    "000004": ("邓小平#2与#1撒切尔#2会晤#4。", "\tdeng4 xiao3 ping2 yu3 sa4 qie4 er3 hui4 wu4"),
    "000005": ("老板#1在#1哪儿#4？", "\tlao3 ban3 zai4 nar3"),  # erhua: 5 Hanzi, 4 syllables
    "000006": ("我们#1去#1公园#4。", "\t wo3  men5 qu4 gong1 yuan2 "),  # stray spaces
}


def make_databaker(root: Path) -> dict[str, str]:
    """A DataBaker-layout corpus (BOM, CRLF) with irregular and bad entries."""
    lines = []
    for k, (item, (hanzi, pinyin)) in enumerate(GOOD_ZH.items()):
        write_wav(root / "Wave" / f"{item}.wav", speechlike(0.9 + 0.1 * k, seed=10 + k))
        lines += [f"{item}\t{hanzi}", pinyin]
    bad = {"000007": "missing audio file", "000008": "no pinyin line", "000009": "empty Hanzi line"}
    lines += ["000007\t没有#1音频#4。", "\tmei2 you3 yin1 pin2"]
    lines += ["000008\t没有#1拼音#4。"]
    write_wav(root / "Wave" / "000009.wav", speechlike(1.0, seed=20))
    lines += ["000009\t", "\tkong1"]
    (root / "ProsodyLabeling").mkdir(parents=True, exist_ok=True)
    text = "\ufeff" + "\r\n".join(lines) + "\r\n"
    (root / "ProsodyLabeling" / "000001-010000.txt").write_bytes(text.encode("utf-8"))
    return bad


def preprocessed_ljspeech(root: Path, settings: list[str]) -> Path:
    """The bad-item LJSpeech fixture, preprocessed with ``tiny_en`` plus ``settings``."""
    from tf_tacokd.config import load_config
    from tf_tacokd.data.preprocess import preprocess

    make_ljspeech(root / "corpus")
    preprocess(load_config("tiny_en", settings), root / "corpus", root / "data")
    return root / "data"


#: Settings for tiny trained runs (evaluation, export): small splits, no validation or audio.
TINY_RUN_SETTINGS = ["data.val_size=2", "data.test_size=3", "data.shard_size=4", "train.batch_size=2",
                     "train.checkpoint_every=2", "train.validate_every=100", "train.log_every=2",
                     "train.audio_every=100"]


def tiny_runs(root: Path, modes: list[str], steps: int = 2, extra: list[str] | None = None) -> list[Path]:
    """Preprocess the LJSpeech fixture and train one ``tiny_en`` run per mode, ``root/<mode>``."""
    from tf_tacokd.config import load_config
    from tf_tacokd.train import train

    settings = TINY_RUN_SETTINGS + list(extra or [])
    data = preprocessed_ljspeech(root, settings)
    runs = []
    for mode in modes:
        train(load_config("tiny_en", settings), data, root / mode, mode=mode, steps=steps, verbose=0)
        runs.append(root / mode)
    return runs
