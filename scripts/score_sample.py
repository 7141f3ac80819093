"""Score a hand-marked sample file: share of correct reviews with its 95% Wilson interval, overall and per rating.

    python scripts/score_sample.py t5_sample.txt

Entries whose mark is empty, not 0/1, or that cannot be read are listed by number and excluded.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from scipy.stats import binomtest

from reviewkit.cli import ArgumentParser
from reviewkit.marking import Entry, parse_sample


def wilson_interval(correct: int, marked: int, confidence: float = 0.95) -> tuple[float, float]:
    interval = binomtest(correct, marked).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def score_line(label: str, marks: list[int]) -> str:
    correct, marked = sum(marks), len(marks)
    low, high = wilson_interval(correct, marked)
    return f"{label:<10}{marked:>8}{correct:>9}{correct / marked:>8.2f}   ({low:.2f}, {high:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a sample file written by sample.py and marked by a person")
    args = parser.parse_args(argv)
    try:
        with open(args.file, encoding="utf-8") as f:
            entries = parse_sample(f.read())
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    by_rating: dict[str, list[int]] = defaultdict(list)
    unmarked, malformed = [], []
    for entry in entries:
        if not isinstance(entry, Entry):
            malformed.append(f"{entry[0]} ({entry[1]})")
        elif entry.mark == "":
            unmarked.append(str(entry.number))
        elif entry.mark not in ("0", "1"):
            malformed.append(f"{entry.number} (mark {entry.mark!r} is not 0 or 1)")
        else:
            by_rating[entry.rating].append(int(entry.mark))
    if unmarked:
        print(f"warning: {len(unmarked)} unmarked entries excluded: {', '.join(unmarked)}", file=sys.stderr)
    if malformed:
        print(f"warning: {len(malformed)} malformed entries excluded: {'; '.join(malformed)}", file=sys.stderr)
    marks = [m for values in by_rating.values() for m in values]
    if not marks:
        print(f"error: no marked entries in {args.file} (write 1 or 0 after 'mark:')", file=sys.stderr)
        return 1
    print(f"{'':<10}{'marked':>8}{'correct':>9}{'share':>8}   95% Wilson interval")
    print(score_line("all", marks))
    for rating in sorted(by_rating):
        print(score_line(f"rating {rating}", by_rating[rating]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
