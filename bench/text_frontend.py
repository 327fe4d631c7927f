"""Benchmark: text front-end throughput (sentences/s and characters/s) per language.

Run by hand: ``python bench/text_frontend.py [--repeat N]``. Prints a table; the
front end runs once per utterance in preprocessing and at every synthesis, so it
should cost far less than a decoder step.
"""

from __future__ import annotations

import argparse
import time
import warnings

from tf_tacokd.text import TextFrontEnd

SENTENCES = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "Dr. Smith paid $5.50 at 7:07 on May 3rd, 1977, and called 555-123-4567.",
        "In 2010, 1,250,000 people (about 2.5% of them from St. Louis) voted.",
        "Wait! Why? Because Mrs. Jones said so; it's 10:30 p.m. already.",
    ],
    "zh": [
        "银行行长2026年来了。",
        "吃葡萄不吐葡萄皮，不吃葡萄倒吐葡萄皮。",
        "我有138个苹果，打电话13800138000，温度-5度，增长了3.5%。",
        "ka2 er2 pu3 pei2 wai4 sun1 wan2 hua2 ti1",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=500, help="passes over the sentences")
    args = parser.parse_args()
    print(f"{'lang':5s} {'sentences/s':>12s} {'chars/s':>10s} {'us/sentence':>12s}")
    warnings.simplefilter("ignore")
    for lang, sentences in SENTENCES.items():
        fe = TextFrontEnd(lang)
        for s in sentences:  # warm up (pypinyin and inflect load their tables lazily)
            fe.encode(s)
        chars = sum(len(s) for s in sentences) * args.repeat
        start = time.perf_counter()
        for _ in range(args.repeat):
            for s in sentences:
                fe.encode(s)
        elapsed = time.perf_counter() - start
        n = len(sentences) * args.repeat
        print(f"{lang:5s} {n / elapsed:12.0f} {chars / elapsed:10.0f} {1e6 * elapsed / n:12.1f}")


if __name__ == "__main__":
    main()
