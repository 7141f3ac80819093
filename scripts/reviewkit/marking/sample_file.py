"""The hand-marked sample file (t5_sample.txt): writing it, and the one strict reader that scoring and marking share.

Format, UTF-8: a `#` header (model, data, settings, marking rule), then per entry

    === 7 ===
    rating: 5
    rubrics: Кафе; Кофейня
    keywords: кофе, десерт
    review: ...
    mark:

A person writes `1` (a realistic review that fits its prompt) or `0` after `mark:`. A sample of
several models that is not blind names the model of each entry in a `model:` line after `=== N ===`.

The reader finds every entry by its header and tolerates what editors do to a file: a byte-order
mark, CRLF or CR line endings, spaces and tabs around `===`, the number, the field name and the
colon, upper-case field names. Whatever it cannot place is an error naming its line, and no line is
ever attached to a neighbouring entry: a repeated entry number, a line starting with `=` that is not
a header, a second line of one field, a line inside an entry that is not a field, text before the
first entry. Lines starting with `#` are comments anywhere. An entry that lacks a field, or whose
mark is not 0 or 1, is readable but not scorable: the caller counts and reports it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Iterable

from ..common.errors import InputError

MARKING_RULE = ("Mark each entry: write 1 after 'mark:' if the review is realistic and fits its rating, "
                "rubrics and keywords; write 0 otherwise.")
FIELDS = ("model", "rating", "rubrics", "keywords", "review", "mark")
REQUIRED = ("rating", "rubrics", "keywords", "review", "mark")
MARKS = ("0", "1")

_BOM = "\ufeff"
_LINE_END = re.compile(r"(\r\n|\r|\n)")
_HEADER = re.compile(r"===\s*([0-9]+)\s*===")
_FIELD = re.compile(rf"(\s*({'|'.join(FIELDS)})\s*:)(.*)", re.IGNORECASE)
_SAMPLE_ID = re.compile(r"#\s*Sample id\s*:\s*(\w+)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    number: int
    rating: str
    rubrics: str
    keywords: str
    review: str
    mark: str = ""
    model: str = ""  # only in a labelled (not blind) sample of several models


@dataclass(frozen=True)
class Incomplete:
    """An entry found by its header that lacks fields: it cannot be scored or marked."""

    number: int
    missing: tuple[str, ...]

    @property
    def reason(self) -> str:
        return f"missing {', '.join(self.missing)}"


@dataclass
class SampleFile:
    """A sample file as read: its lines (each with its own line ending), entries, and what could not be placed."""

    lines: list[tuple[str, str]]
    entries: list[Entry | Incomplete] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "line N: why", in file order
    header_line: dict[int, int] = field(default_factory=dict)  # entry number -> line number (from 1) of its header
    mark_line: dict[int, int] = field(default_factory=dict)  # entry number -> line number of its `mark:` line
    sample_id: str | None = None

    def with_mark(self, number: int, mark: str) -> str:
        """The file's text with entry `number`'s mark set to `mark`: only the value on that one line changes."""
        index = self.mark_line[number] - 1
        content, ending = self.lines[index]
        text = content.lstrip(_BOM)
        prefix = _FIELD.fullmatch(text).group(1)  # `mark:` as the file spells it, with its indent
        lines = list(self.lines)
        lines[index] = (content[:len(content) - len(text)] + f"{prefix} {mark}".rstrip(), ending)
        return "".join(content + ending for content, ending in lines)


class SampleFormatError(InputError):
    """A sample file with lines the reader cannot place; `errors` lists them ("line N: why")."""

    def __init__(self, errors: list[str]):
        super().__init__(summarize(errors))
        self.errors = errors


def summarize(errors: list[str], limit: int = 10) -> str:
    text = "; ".join(errors[:limit])
    return text + (f"; and {len(errors) - limit} more" if len(errors) > limit else "")


def format_sample(header: Iterable[str], entries: Iterable[Entry]) -> str:
    lines = [f"# {line}" for line in header] + [f"# {MARKING_RULE}", ""]
    for entry in entries:
        review = " ".join(entry.review.split())  # one line per field keeps the file easy to mark
        lines += [f"=== {entry.number} ==="] + ([f"model: {entry.model}"] if entry.model else [])
        lines += [f"rating: {entry.rating}", f"rubrics: {entry.rubrics}", f"keywords: {entry.keywords}",
                  f"review: {review}", f"mark: {entry.mark}".rstrip(), ""]
    return "\n".join(lines)


def split_lines(text: str) -> list[tuple[str, str]]:
    """(content, line ending) per line; only \\r\\n, \\r and \\n end a line (not the other characters
    str.splitlines breaks at, which an editor shows inside a line)."""
    parts = _LINE_END.split(text)
    return [(parts[i], parts[i + 1] if i + 1 < len(parts) else "") for i in range(0, len(parts), 2)]


def read_sample_file(text: str) -> SampleFile:
    """Every entry and every problem of a sample file's text; never raises."""
    sample = SampleFile(split_lines(text))
    number, fields, field_line = None, {}, {}
    broken = False  # after a header that could not be read, until the next one

    def close():
        if number is None:
            return
        missing = tuple(name for name in REQUIRED if name not in fields)
        sample.entries.append(Incomplete(number, missing) if missing else Entry(number, **fields))
        if "mark" in fields:
            sample.mark_line[number] = field_line["mark"]

    for line_number, (content, _) in enumerate(sample.lines, start=1):
        line = content.lstrip(_BOM).strip()
        if not line:
            continue
        if line.startswith("#"):
            found = _SAMPLE_ID.fullmatch(line)
            if found and sample.sample_id not in (None, found.group(1)):
                sample.errors.append(f"line {line_number}: a second sample id ({found.group(1)}, "
                                     f"the first is {sample.sample_id})")
            elif found:
                sample.sample_id = found.group(1)
            continue
        header = _HEADER.fullmatch(line)
        if header:
            close()
            number, fields, field_line, broken = int(header.group(1)), {}, {}, False
            if number in sample.header_line:
                sample.errors.append(f"line {line_number}: entry {number} again (the first is at line "
                                     f"{sample.header_line[number]})")
                number, broken = None, True
                continue
            sample.header_line[number] = line_number
            continue
        if line.startswith("="):
            close()
            sample.errors.append(f"line {line_number}: not an entry header {line[:40]!r} (a header is '=== N ===')")
            number, broken = None, True
            continue
        found = _FIELD.fullmatch(line)
        if number is None:
            if not broken:  # the lines after a broken header are left unread: that header is the error to fix
                sample.errors.append(f"line {line_number}: {line[:40]!r} is outside an entry")
            continue
        if not found:
            sample.errors.append(f"line {line_number}: {line[:40]!r} in entry {number} is not a field "
                                 f"(a field is 'name: value', the names {', '.join(FIELDS)})")
            continue
        name, value = found.group(2).lower(), found.group(3).strip()
        if name in fields:
            sample.errors.append(f"line {line_number}: a second '{name}:' line in entry {number} "
                                 f"(the first is at line {field_line[name]})")
            continue
        fields[name], field_line[name] = value, line_number
    close()
    return sample


def parse_sample(text: str) -> list[Entry | Incomplete]:
    """The entries of a sample file in file order; SampleFormatError when it has lines that cannot be placed."""
    sample = read_sample_file(text)
    if sample.errors:
        raise SampleFormatError(sample.errors)
    return sample.entries


def _normalized(value: str) -> str:
    return " ".join(value.split())


def entry_fingerprint(entry: Entry) -> str:
    """A hash of an entry's prompt and review, blind to whitespace an editor may change; stored in the key."""
    content = json.dumps([_normalized(entry.rating), _normalized(entry.rubrics), _normalized(entry.keywords),
                          _normalized(entry.review)], ensure_ascii=False)
    return hashlib.blake2b(content.encode("utf-8"), digest_size=8).hexdigest()


def compute_sample_id(entries: Iterable[Entry]) -> str:
    """A fingerprint of the unmarked entries: the same in the sample's header and in its key.

    Unchanged since keys without entry fingerprints were written: marking/key.py recomputes it to check them.
    """
    return hashlib.blake2b(format_sample([], entries).encode("utf-8"), digest_size=8).hexdigest()
