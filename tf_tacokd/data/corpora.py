"""Corpus readers (LJSpeech, DataBaker) and the built-in espeak-ng corpus maker.

Readers never raise on a bad entry: they return the usable utterances plus a list
of :class:`Problem` rows (rejected entries, and notes on irregular but usable ones),
so one malformed line never costs the rest of a corpus.

Example:
    >>> from tf_tacokd.data.corpora import read_corpus
    >>> listing = read_corpus("corpora/en")  # doctest: +SKIP
    >>> len(listing.utterances), len(listing.rejected)  # doctest: +SKIP
    (3000, 0)
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Literal

if TYPE_CHECKING:
    import numpy as np

from ..atomic import atomic_path, write_text
from ..text import TextFrontEnd
from ..text.phonemes import ESPEAK_VOICES, EspeakMissingError
from ..text.mandarin import is_pinyin_syllable

__all__ = [
    "Utterance",
    "Problem",
    "CorpusListing",
    "read_ljspeech",
    "read_databaker",
    "read_corpus",
    "detect_format",
    "make_corpus",
    "CorpusSummary",
    "EspeakMissingError",
    "generate_sentences",
    "espeak_render",
    "spoken_text",
    "corpus_item_id",
]


@dataclass(frozen=True)
class Utterance:
    """One corpus entry.

    Attributes:
        id: the utterance id (file stem of its audio).
        text: what the text front end reads (LJSpeech: the normalised column;
            DataBaker: the pinyin label line, or the Hanzi line when re-deriving).
        audio_path: its wav file.
        raw_text: the original text (LJSpeech column 2, DataBaker Hanzi line).
        source: where it was read (``file:line``).
    """

    id: str
    text: str
    audio_path: Path
    raw_text: str = ""
    source: str = ""


@dataclass(frozen=True)
class Problem:
    """A rejected or irregular corpus entry: where, which item, and why."""

    location: str
    item_id: str
    reason: str

    def tsv(self) -> str:
        clean = [s.replace("\t", " ").replace("\n", " ") for s in (self.location, self.item_id, self.reason)]
        return "\t".join(clean)


@dataclass
class CorpusListing:
    """What a reader found: usable utterances, rejected entries, notes on irregular ones."""

    format: str
    root: Path
    utterances: list[Utterance] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set, repr=False)

    def add(self, u: Utterance) -> None:
        """Keep ``u`` unless its id was seen before or its audio file is missing."""
        if u.id in self._ids:
            self.rejected.append(Problem(u.source, u.id, "duplicate id"))
        elif not u.audio_path.is_file():
            self.rejected.append(Problem(u.source, u.id, f"missing audio file {u.audio_path}"))
        else:
            self._ids.add(u.id)
            self.utterances.append(u)


def _read_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # keep going: undecodable bytes become U+FFFD and the lines holding them are rejected
        text = data.decode("utf-8-sig", errors="replace")
    return text.splitlines()


# ---------------------------------------------------------------------------
# LJSpeech
# ---------------------------------------------------------------------------


def read_ljspeech(root: str | Path) -> CorpusListing:
    """Read an LJSpeech-layout corpus: ``metadata.csv`` (``id|text|normalized text``) and ``wavs/``.

    The ``|``-separated fields are taken literally (quotes are part of the text, as in
    LJSpeech; no CSV quoting). The normalised column is used; a line with only two
    fields uses its text column (noted). Malformed lines, empty text, duplicate ids
    and missing wavs are rejected.
    """
    root = Path(root)
    listing = CorpusListing("ljspeech", root)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: no metadata.csv; is {root} an LJSpeech-layout corpus?")
    for n, line in enumerate(_read_lines(meta), 1):
        where = f"{meta}:{n}"
        if not line.strip():
            continue
        fields = line.split("|")
        item = fields[0].strip()
        if len(fields) not in (2, 3):
            listing.rejected.append(Problem(where, item, f"malformed line: {len(fields)} '|'-separated fields, expected 3 (id|text|normalized text)"))
            continue
        if not item or "/" in item or item in (".", ".."):
            listing.rejected.append(Problem(where, item, "malformed line: empty or invalid id"))
            continue
        if "\ufffd" in line:
            listing.rejected.append(Problem(where, item, "text is not valid UTF-8"))
            continue
        raw = fields[1].strip()
        text = fields[2].strip() if len(fields) == 3 else raw
        if len(fields) == 2:
            listing.notes.append(Problem(where, item, "no normalized column; using the text column"))
        if not text:
            listing.rejected.append(Problem(where, item, "empty text"))
            continue
        listing.add(Utterance(item, text, root / "wavs" / f"{item}.wav", raw, where))
    return listing


# ---------------------------------------------------------------------------
# DataBaker
# ---------------------------------------------------------------------------

_DB_ID_LINE = re.compile(r"^\s*(\d{6})\s+(.*\S)?\s*$")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_PROSODY = re.compile(r"#\d")


def read_databaker(root: str | Path, text: Literal["label", "hanzi"] = "label") -> CorpusListing:
    """Read a DataBaker (Biaobei) corpus: ``ProsodyLabeling/*.txt`` line pairs and ``Wave/``.

    Each entry is two lines: ``000001<TAB>卡尔普#2陪外孙#1玩滑梯#4。`` then
    ``<TAB>ka2 er2 pu3 pei2 wai4 sun1 wan2 hua2 ti1``.

    Args:
        root: the corpus directory.
        text: use the pinyin label line ("label") or the Hanzi line with its prosody
            marks ("hanzi", re-derived to pinyin by the text front end).

    Irregular entries never stop the reader: a missing pinyin line, an empty entry,
    a duplicate id or a missing wav is rejected; erhua (fewer syllables than Hanzi),
    stray spaces and syllables that are not toned pinyin are noted.
    """
    root = Path(root)
    listing = CorpusListing("databaker", root)
    label_dir = root / "ProsodyLabeling"
    files = sorted(label_dir.glob("*.txt")) if label_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{label_dir}: no label files; is {root} a DataBaker-layout corpus?")
    for path in files:
        lines = _read_lines(path)
        i = 0
        while i < len(lines):
            line, where = lines[i], f"{path}:{i + 1}"
            i += 1
            if not line.strip():
                continue
            m = _DB_ID_LINE.match(line)
            if not m:
                listing.rejected.append(Problem(where, "", f"malformed line (expected a 6-digit id, a tab and Hanzi): {line.strip()[:40]!r}"))
                continue
            item, hanzi = m.group(1), (m.group(2) or "").strip()
            pinyin_line = lines[i] if i < len(lines) else ""
            if i >= len(lines) or _DB_ID_LINE.match(pinyin_line) or not pinyin_line.strip():
                listing.rejected.append(Problem(where, item, "no pinyin line after the Hanzi line"))
                continue
            i += 1
            problem = _databaker_entry(item, hanzi, pinyin_line, f"{path}:{i - 1}", listing, text)
            if problem:
                listing.rejected.append(problem)
                continue
            chosen = pinyin_line.strip() if text == "label" else hanzi
            listing.add(Utterance(item, chosen, root / "Wave" / f"{item}.wav", hanzi, where))
    return listing


def _databaker_entry(item: str, hanzi: str, pinyin_line: str, where: str, listing: CorpusListing,
                     text: str) -> Problem | None:
    """Check one entry; return a Problem to reject it, add notes for irregularities."""
    if "\ufffd" in hanzi + pinyin_line:
        return Problem(where, item, "text is not valid UTF-8")
    if not hanzi:
        return Problem(where, item, "empty Hanzi line")
    syllables = pinyin_line.split()
    if not syllables and text == "label":
        return Problem(where, item, "empty pinyin line")
    if pinyin_line.strip() != " ".join(syllables) or not pinyin_line.startswith("\t"):
        listing.notes.append(Problem(where, item, "stray spaces in the pinyin line (normalised)"))
    bad = [s for s in syllables if not is_pinyin_syllable(s)]
    if bad:
        listing.notes.append(Problem(where, item, f"not toned pinyin: {' '.join(bad[:5])}"))
    n_han = len(_HAN.findall(_PROSODY.sub("", hanzi)))
    # digits and Latin letters have no fixed syllable count: compare pure-Hanzi lines only
    if syllables and n_han != len(syllables) and not re.search(r"[0-9A-Za-z]", _PROSODY.sub("", hanzi)):
        kind = "erhua?" if n_han > len(syllables) and "儿" in hanzi else "count mismatch"
        listing.notes.append(Problem(where, item, f"{kind} {n_han} Hanzi, {len(syllables)} syllables"))
    return None


# ---------------------------------------------------------------------------
# Any layout
# ---------------------------------------------------------------------------


def detect_format(root: str | Path) -> Literal["ljspeech", "databaker"]:
    """Which layout a corpus directory has (from its files)."""
    root = Path(root)
    if (root / "metadata.csv").is_file():
        return "ljspeech"
    if (root / "ProsodyLabeling").is_dir():
        return "databaker"
    raise FileNotFoundError(
        f"{root}: neither an LJSpeech layout (metadata.csv, wavs/) nor a DataBaker layout "
        "(ProsodyLabeling/, Wave/)"
    )


def read_corpus(root: str | Path, format: str | None = None, databaker_text: str = "label") -> CorpusListing:
    """Read a corpus of either layout (detected from its files unless ``format`` is given)."""
    fmt = format or detect_format(root)
    if fmt == "ljspeech":
        return read_ljspeech(root)
    if fmt == "databaker":
        return read_databaker(root, text=databaker_text)  # type: ignore[arg-type]
    raise ValueError(f"unknown corpus format {fmt!r}: expected 'ljspeech' or 'databaker'")


# ---------------------------------------------------------------------------
# The built-in espeak-ng corpus
# ---------------------------------------------------------------------------

FORTUNE_DIRS = [Path("/usr/share/games/fortunes"), Path("/usr/share/fortune")]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EN_SENTENCE = re.compile(r"[A-Za-z0-9 ,.;:'!?$%&()-]+")


def _fortune_files() -> list[Path]:
    files: list[Path] = []
    for d in FORTUNE_DIRS:
        if d.is_dir():
            files += [p for p in sorted(d.rglob("*")) if p.is_file() and p.suffix not in (".dat", ".u8")]
    return files


def _fortune_sentences(lang: str) -> list[str]:
    """Sentences from the Debian fortunes packages (en: 3-25 words; zh: 4-40 Hanzi)."""
    out: set[str] = set()
    for path in _fortune_files():
        try:
            text = _ANSI.sub("", path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
        for chunk in text.split("\n%\n"):
            if lang == "zh" and _HAN.search(chunk):
                for s in re.split(r"(?<=[。！？])", "".join(chunk.split())):
                    n_han = len(_HAN.findall(s))
                    if 4 <= n_han <= 40 and not re.search(r"[A-Za-z《》\[\]【】<>{}/\\|_=+*#@&]", s) and s[-1:] in "。！？":
                        out.add(s)
            elif lang == "en" and not _HAN.search(chunk):
                lines = [ln for ln in chunk.splitlines() if not ln.strip().startswith("--")]
                for s in re.split(r"(?<=[.!?])\s+", " ".join(" ".join(lines).split())):
                    if 3 <= len(s.split()) <= 25 and _EN_SENTENCE.fullmatch(s) and s[0].isupper() and s[-1] in ".!?":
                        out.add(s)
    return sorted(out)


_EN_NAMES = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "James",
             "Karen", "Louis", "Maria", "Nathan", "Olivia", "Peter", "Rachel", "Samuel", "Tina", "Victor"]
_EN_CITIES = ["Boston", "Denver", "Chicago", "Seattle", "Dallas", "Phoenix", "Atlanta", "Portland",
              "Houston", "Miami", "Detroit", "Memphis"]
_EN_NOUNS = ["apples", "books", "tickets", "chairs", "lamps", "shirts", "bottles", "letters",
             "candles", "maps", "boxes", "pencils", "coins", "plates"]
_EN_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]
_EN_TEMPLATES = [
    "On {month} {day}, {year}, {name} bought {n} {noun} for ${d}.{cc}.",
    "Please call {name} at {p3}-{p4} before {h}:{mm} p.m.",
    "{name} was born in {year} and moved to {city} in {year2}.",
    "About {pct}% of the {noun} in {city} were sold by {h}:{mm}.",
    "The train to {city} leaves at {h}:{mm} and costs ${d}.",
    "Dr. {name} read {n} of the {big} {noun} on the {ord} floor.",
    "{name} counted {n}, {n2}, {n3} and then {big}.",
    "Mr. and Mrs. {name} paid ${d}.{cc} for {n} {noun} on {month} {day}.",
]
_ZH_NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴婷", "孙浩", "马丽"]
_ZH_CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "南京", "武汉", "西安", "重庆"]
_ZH_NOUNS = ["苹果", "书", "电脑", "杯子", "椅子", "花", "信", "票", "面包", "衣服"]
_ZH_TEMPLATES = [
    "{name}在{year}年{month}月{day}日买了{n}个{noun}。",
    "请在{h}点{mm}分之前给{name}打电话，号码是{phone}。",
    "今天{city}的气温是{t}度，比昨天高了{pct}%。",
    "{city}大约有{big}万人口，其中{pct}%住在市区。",
    "{name}说他要去{city}，票价是{d}元。",
    "这本书一共有{big}页，我已经读了{n}页。",
    "会议在{h}点{mm}分开始，一共有{n}个人参加。",
    "{name}和{name2}一起去{city}旅行了{n}天。",
]


def _fill(template: str, rng: random.Random, lang: str) -> str:
    names, cities, nouns = (_EN_NAMES, _EN_CITIES, _EN_NOUNS) if lang == "en" else (_ZH_NAMES, _ZH_CITIES, _ZH_NOUNS)
    values = {
        "name": rng.choice(names), "name2": rng.choice(names), "city": rng.choice(cities),
        "noun": rng.choice(nouns), "n": rng.randint(2, 99), "n2": rng.randint(2, 99),
        "n3": rng.randint(2, 99), "big": rng.randint(100, 9999), "d": rng.randint(1, 500),
        "cc": f"{rng.randint(1, 99):02d}", "year": rng.randint(1950, 2025),
        "year2": rng.randint(1950, 2025), "day": rng.randint(1, 28), "h": rng.randint(1, 12),
        "mm": f"{rng.choice([5, 10, 15, 20, 30, 45, 50]):02d}", "pct": rng.randint(2, 95),
        "p3": rng.randint(200, 999), "p4": rng.randint(1000, 9999), "t": rng.randint(-10, 38),
        "month": rng.choice(_EN_MONTHS) if lang == "en" else rng.randint(1, 12),
        "ord": rng.choice(["1st", "2nd", "3rd", "4th", "5th", "12th", "21st"]),
        "phone": f"1{rng.randint(3, 9)}{rng.randint(0, 999999999):09d}",
    }  # fmt: skip
    return template.format(**values)


def generate_sentences(lang: str, size: int, seed: int = 0, template_share: float = 0.2) -> list[str]:
    """Varied sentences for the built-in corpus: Debian fortunes plus number/date templates.

    Deterministic for a seed. Falls back to templates alone (with a warning) if the
    fortunes packages are not installed.
    """
    rng = random.Random(seed)
    pool = _fortune_sentences(lang)
    if not pool:
        warnings.warn(
            "no Debian fortunes found (apt-get install fortunes fortunes-zh); the corpus uses "
            "number/date templates only and will be less varied",
            stacklevel=2,
        )
    rng.shuffle(pool)
    n_templates = size - min(len(pool), int(round(size * (1 - template_share))))
    templates = _EN_TEMPLATES if lang == "en" else _ZH_TEMPLATES
    sentences = pool[: size - n_templates] + [
        _fill(templates[i % len(templates)], rng, lang) for i in range(n_templates)
    ]
    rng.shuffle(sentences)
    return sentences


@dataclass
class CorpusSummary:
    """What :func:`make_corpus` produced."""

    root: Path
    count: int
    seconds: float
    skipped: list[Problem]

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def _espeak(voice: str, text: str, out: Path, rate: int | None = None, pitch: int | None = None) -> None:
    options = (["-s", str(rate)] if rate else []) + (["-p", str(pitch)] if pitch is not None else [])
    with atomic_path(out) as tmp:  # espeak-ng writes a WAV file whatever its name
        result = subprocess.run(
            ["espeak-ng", "-v", voice, *options, "-w", str(tmp), "--stdin"],
            input=text, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
            raise RuntimeError(f"espeak-ng failed ({result.returncode}): {result.stderr.strip()[:200]}")


def espeak_render(spoken: str, lang: str, rate: int | None = None, pitch: int | None = None) -> tuple["np.ndarray", int]:
    """espeak-ng's rendering of ``spoken`` (the voice of ``lang``; optional speaking rate in
    words per minute and pitch 0-99) as ``(float32 waveform, sample rate)``."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        _espeak(ESPEAK_VOICES[lang], spoken, path, rate, pitch)
        wav, sr = sf.read(str(path), dtype="float32")
    return wav, sr


def spoken_text(fe: TextFrontEnd, raw: str, lang: str) -> str:
    """What espeak-ng speaks for a raw sentence: the normalised text (English), or the pinyin
    without punctuation (Mandarin: DataBaker label lines carry none). ValueError if nothing
    is left to pronounce."""
    spoken = fe.normalize(raw)
    if lang == "zh":
        spoken = " ".join(s for s in re.sub(r"[,.?!;:-]", " ", spoken).split())
    return spoken


def corpus_item_id(lang: str, index: int) -> str:
    """The id of the ``index``-th (1-based) sentence of a built-in corpus."""
    return f"ESPEAK-{index:05d}" if lang == "en" else f"{index:06d}"


def check_espeak_voice(lang: str) -> str:
    """The espeak-ng version; :class:`EspeakMissingError` with install instructions if
    espeak-ng or the voice of ``lang`` is missing."""
    if shutil.which("espeak-ng") is None:
        raise EspeakMissingError(
            "espeak-ng is not installed; it makes the built-in corpus. Install it with "
            "`apt-get install espeak-ng` (Debian/Ubuntu) and run again."
        )
    voice = ESPEAK_VOICES[lang]
    voices = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=False)
    if not any(line.split()[1:2] == [voice] for line in voices.stdout.splitlines()[1:]):
        raise EspeakMissingError(
            f"espeak-ng has no voice {voice!r} (needed for lang={lang}); install the full "
            "espeak-ng-data package (`apt-get install espeak-ng-data`)."
        )
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False)
    return " ".join(version.stdout.split(" Data")[0].split())


def make_corpus(
    lang: Literal["en", "zh"],
    out: str | Path,
    size: int = 3000,
    seed: int = 0,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> CorpusSummary:
    """Synthesise the built-in corpus with espeak-ng, in the layout of the real corpus.

    English (voice ``en-us``) is written in the LJSpeech layout, Mandarin (voice
    ``cmn-latn-pinyin``) in the DataBaker layout (22050 Hz audio, where real DataBaker
    is 48 kHz), so the real readers are exercised. espeak-ng speaks exactly the
    normalised text (English) or the pinyin label line (Mandarin) the model will read.
    Re-running skips wavs already made; a sentence that fails is skipped and listed.

    Args:
        lang: "en" or "zh".
        out: the corpus directory.
        size: number of utterances.
        seed: sentence selection seed (the corpus is deterministic for a seed).
        workers: parallel espeak-ng processes.
        progress: called with the number of utterances finished since the last call.
    """
    check_espeak_voice(lang)
    out = Path(out)
    fe = TextFrontEnd(lang)
    sentences = generate_sentences(lang, size, seed)
    wav_dir = out / ("wavs" if lang == "en" else "Wave")
    wav_dir.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[str, str, str, Path]] = []  # id, raw text, spoken text, wav
    skipped: list[Problem] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, raw in enumerate(sentences, 1):
            item = corpus_item_id(lang, i)
            try:
                spoken = spoken_text(fe, raw, lang)
            except ValueError as e:
                skipped.append(Problem(f"sentence {i}", item, str(e)))
                continue
            entries.append((item, raw, spoken, wav_dir / f"{item}.wav"))

    voice = ESPEAK_VOICES[lang]

    def synth(entry: tuple[str, str, str, Path]) -> Problem | None:
        item, _, spoken, wav = entry
        if not (wav.is_file() and wav.stat().st_size > 44):
            try:
                _espeak(voice, spoken, wav)
            except RuntimeError as e:
                return Problem(str(wav), item, str(e))
        return None

    failed: dict[str, Problem] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for entry, problem in zip(entries, pool.map(synth, entries)):
            if problem:
                failed[entry[0]] = problem
            if progress:
                progress(1)
    skipped += failed.values()
    good = [e for e in entries if e[0] not in failed]
    _write_metadata(lang, out, good)
    return CorpusSummary(out, len(good), sum(_wav_seconds(e[3]) for e in good), skipped)


def _wav_seconds(path: Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


def _write_metadata(lang: str, out: Path, entries: Iterable[tuple[str, str, str, Path]]) -> None:
    """Write metadata.csv (LJSpeech) or ProsodyLabeling/000001-NNNNNN.txt (DataBaker) atomically."""
    entries = list(entries)
    if lang == "en":
        path = out / "metadata.csv"
        lines = [f"{item}|{' '.join(raw.replace('|', ' ').split())}|{spoken}" for item, raw, spoken, _ in entries]
    else:
        (out / "ProsodyLabeling").mkdir(parents=True, exist_ok=True)
        last = entries[-1][0] if entries else "000000"
        path = out / "ProsodyLabeling" / f"000001-{last}.txt"
        lines = []
        for item, raw, spoken, _ in entries:
            lines.append(f"{item}\t{_prosody_marked(raw)}")
            lines.append(f"\t{spoken}")
    write_text(path, "\n".join(lines) + "\n")


def _prosody_marked(hanzi: str) -> str:
    """DataBaker-style Hanzi line: #3 before inner pauses, #4 before the final punctuation."""
    text = re.sub(r"(?<=[^\s，、；：])([，、；：])", r"#3\1", hanzi)
    return re.sub(r"([。！？])$", r"#4\1", text)
