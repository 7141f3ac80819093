"""Docs/s of the project's keyword step against YAKE on the same documents, on one core.

    python benchmarks/bench_keywords.py              # 10,000 synthetic reviews
    python benchmarks/bench_keywords.py --docs 2000

The texts come from synthetic_reviews.py: real dictionary word forms with Zipf frequencies
and 3% typos, so the lemma cache meets the long tail of one-off forms the real corpus has.
The project's step starts with an empty lemma cache (the analyser itself is loaded before the
clock starts, as YAKE's stop-word list is). Target: >= 15x YAKE.
"""

from __future__ import annotations

import argparse
import os
import time

import project_path  # noqa: F401  (scripts/ on sys.path)
import synthetic_reviews
from reference import extract_keywords

from reviewkit.data.keywords import DEFAULT_NUM_KEYWORDS, Lemmatizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000, help="number of synthetic reviews")
    parser.add_argument("--num_keywords", type=int, default=DEFAULT_NUM_KEYWORDS, help="keywords per review")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic reviews")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core for both

    import yake

    texts = synthetic_reviews.review_texts(args.docs, args.seed)
    lemmatizer = Lemmatizer()
    started = time.perf_counter()
    ours = extract_keywords(texts, args.num_keywords, lemmatizer)
    ours_seconds = time.perf_counter() - started

    extractor = yake.KeywordExtractor(lan="ru", n=1, top=args.num_keywords)
    started = time.perf_counter()
    theirs = [[word for word, _ in extractor.extract_keywords(text)] for text in texts]
    yake_seconds = time.perf_counter() - started

    ours_rate, yake_rate = len(texts) / ours_seconds, len(texts) / yake_seconds
    print(f"documents: {len(texts)}, mean {sum(map(len, texts)) / len(texts):.0f} characters, one core")
    print(f"reviewkit (pymorphy3 lemmas + TF-IDF): {ours_rate:,.0f} docs/s ({ours_seconds:.2f} s)")
    print(f"YAKE (lan=ru, n=1):                   {yake_rate:,.0f} docs/s ({yake_seconds:.2f} s)")
    print(f"ratio: {ours_rate / yake_rate:.1f}x")
    print(f"example: ours {ours[0]} | yake {theirs[0]}")


if __name__ == "__main__":
    main()
