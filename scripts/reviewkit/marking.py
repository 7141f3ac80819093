"""The hand-marked sample file (t5_sample.txt): writing entries and reading their marks.

Format, UTF-8: a `#` header (model, data, settings, marking rule), then per entry

    === 7 ===
    rating: 5
    rubrics: Кафе; Кофейня
    keywords: кофе, десерт
    review: ...
    mark:

A person writes `1` (a realistic review that fits its prompt) or `0` after `mark:`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

MARKING_RULE = ("Mark each entry: write 1 after 'mark:' if the review is realistic and fits its rating, "
                "rubrics and keywords; write 0 otherwise.")
_ENTRY = re.compile(r"^=== (\d+) ===$")
_FIELD = re.compile(r"^(rating|rubrics|keywords|review|mark):[ \t]?(.*)$")


@dataclass(frozen=True)
class Entry:
    number: int
    rating: str
    rubrics: str
    keywords: str
    review: str
    mark: str = ""


def format_sample(header: Iterable[str], entries: Iterable[Entry]) -> str:
    lines = [f"# {line}" for line in header] + [f"# {MARKING_RULE}", ""]
    for entry in entries:
        review = " ".join(entry.review.split())  # one line per field keeps the file easy to mark
        lines += [f"=== {entry.number} ===", f"rating: {entry.rating}", f"rubrics: {entry.rubrics}",
                  f"keywords: {entry.keywords}", f"review: {review}", f"mark: {entry.mark}".rstrip(), ""]
    return "\n".join(lines)


def parse_sample(text: str) -> list[Entry | tuple[int, str]]:
    """Entries in file order; an entry that cannot be read is (number, reason) instead."""
    result: list[Entry | tuple[int, str]] = []
    number, fields = None, {}

    def close():
        if number is None:
            return
        missing = [k for k in ("rating", "rubrics", "keywords", "review", "mark") if k not in fields]
        result.append((number, f"missing {', '.join(missing)}") if missing else Entry(number, **fields))

    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        header = _ENTRY.match(line.strip())
        if header:
            close()
            number, fields = int(header.group(1)), {}
            continue
        field = _FIELD.match(line)
        if field and number is not None:
            fields[field.group(1)] = field.group(2).strip()
    close()
    return result
