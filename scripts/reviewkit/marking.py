"""The hand-marked sample file (t5_sample.txt) and the key of a several-model sample: writing, reading, marking.

Format, UTF-8: a `#` header (model, data, settings, marking rule), then per entry

    === 7 ===
    rating: 5
    rubrics: Кафе; Кофейня
    keywords: кофе, десерт
    review: ...
    mark:

A person writes `1` (a realistic review that fits its prompt) or `0` after `mark:`. A sample of
several models that is not blind names the model of each entry in a `model:` line after `=== N ===`.

A sample of several models has a key beside it, `<sample stem>.key.json`: the models and, per entry
number, the model that wrote it and the index of its prompt among the drawn ones (the same prompt
has the same index for every model, which pairs the entries). The header line `# Sample id: …` and
the key's `sample_id` tie the two together.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

MARKING_RULE = ("Mark each entry: write 1 after 'mark:' if the review is realistic and fits its rating, "
                "rubrics and keywords; write 0 otherwise.")
_ENTRY = re.compile(r"^=== (\d+) ===$")
_FIELD = re.compile(r"^(model|rating|rubrics|keywords|review|mark):[ \t]?(.*)$")
_SAMPLE_ID = re.compile(r"^# Sample id: (\w+)$", re.M)
_REQUIRED = ("rating", "rubrics", "keywords", "review", "mark")


@dataclass(frozen=True)
class Entry:
    number: int
    rating: str
    rubrics: str
    keywords: str
    review: str
    mark: str = ""
    model: str = ""  # only in a labelled (not blind) sample of several models


def format_sample(header: Iterable[str], entries: Iterable[Entry]) -> str:
    lines = [f"# {line}" for line in header] + [f"# {MARKING_RULE}", ""]
    for entry in entries:
        review = " ".join(entry.review.split())  # one line per field keeps the file easy to mark
        lines += [f"=== {entry.number} ==="] + ([f"model: {entry.model}"] if entry.model else [])
        lines += [f"rating: {entry.rating}", f"rubrics: {entry.rubrics}", f"keywords: {entry.keywords}",
                  f"review: {review}", f"mark: {entry.mark}".rstrip(), ""]
    return "\n".join(lines)


def parse_sample(text: str) -> list[Entry | tuple[int, str]]:
    """Entries in file order; an entry that cannot be read is (number, reason) instead."""
    result: list[Entry | tuple[int, str]] = []
    number, fields = None, {}

    def close():
        if number is None:
            return
        missing = [k for k in _REQUIRED if k not in fields]
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


def compute_sample_id(entries: Iterable[Entry]) -> str:
    """A fingerprint of the unmarked entries: the same in the sample's header and in its key."""
    return hashlib.blake2b(format_sample([], entries).encode("utf-8"), digest_size=8).hexdigest()


def read_sample_id(text: str) -> str | None:
    found = _SAMPLE_ID.search(text)
    return found.group(1) if found else None


def set_mark(text: str, number: int, mark: str) -> str:
    """`text` with the `mark:` line of entry `number` set to `mark`; every other line is kept as it is."""
    lines = text.split("\n")
    current = None
    for i, line in enumerate(lines):
        header = _ENTRY.match(line.strip())
        if header:
            current = int(header.group(1))
        elif current == number and line.startswith("mark:"):
            lines[i] = f"mark: {mark}".rstrip()
            return "\n".join(lines)
    raise ValueError(f"entry {number} has no mark line")


def key_path_for(sample_path: str | Path) -> Path:
    """`t5_vs_lora.txt` → `t5_vs_lora.key.json`, beside the sample."""
    sample_path = Path(sample_path)
    return sample_path.with_name(f"{sample_path.stem}.key.json")


class KeyFileError(Exception):
    """A key file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class KeyedEntry:
    model: str  # the model's label
    prompt_index: int | None  # which drawn prompt; None where the key does not say (then nothing is paired)


@dataclass(frozen=True)
class SampleKey:
    models: list[dict]  # each at least {"label": ..., "path": ...}, in the order given to sample.py
    entries: dict[int, KeyedEntry]
    sample_id: str | None

    @property
    def labels(self) -> list[str]:
        return [model["label"] for model in self.models]


def format_key(models: list[dict], entries: dict[int, dict], sample_id: str, **about) -> str:
    """The key's JSON: `about` (sample file name, seed, …), the models, then entry number → model and prompt."""
    document = {**about, "sample_id": sample_id, "models": models,
                "entries": {str(number): entries[number] for number in sorted(entries)}}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def read_key(path: str | Path) -> SampleKey:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"cannot read key {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyFileError(f"{path} is not a key written by sample.py: not JSON ({exc})") from None
    try:
        return _key_from(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyFileError(f"{path} is not a key written by sample.py: {exc}") from None


def _key_from(document) -> SampleKey:
    if not isinstance(document, dict) or not isinstance(document.get("models"), list) \
            or not isinstance(document.get("entries"), dict):
        raise ValueError("it needs a 'models' list and an 'entries' object")
    labels = [model["label"] for model in document["models"]]
    if len(set(labels)) != len(labels) or not all(isinstance(label, str) and label for label in labels):
        raise ValueError("model labels must be unique, non-empty strings")
    entries = {}
    for number, value in document["entries"].items():
        if value["model"] not in labels:
            raise ValueError(f"entry {number} names model {value['model']!r}, which is not in 'models'")
        index = value.get("prompt_index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise ValueError(f"entry {number}: prompt_index {index!r} is not an integer")
        entries[int(number)] = KeyedEntry(value["model"], index)
    return SampleKey(document["models"], entries, document.get("sample_id"))


def key_mismatch(key: SampleKey, entries: list[Entry | tuple[int, str]], sample_text: str) -> str | None:
    """Why `key` is not the key of this sample, or None when it is."""
    file_id, key_id = read_sample_id(sample_text), key.sample_id
    if file_id and key_id and file_id != key_id:
        return f"it is the key of sample {key_id}, and this file is sample {file_id}"
    numbers = [entry.number if isinstance(entry, Entry) else entry[0] for entry in entries]
    repeated = sorted(n for n, count in Counter(numbers).items() if count > 1)
    missing, extra = sorted(set(key.entries) - set(numbers)), sorted(set(numbers) - set(key.entries))
    for what, listed in (("entries repeated in the file", repeated), ("entries of the key not in the file", missing),
                         ("entries of the file not in the key", extra)):
        if listed:
            return f"{len(listed)} {what}: {_some(listed)}"
    for entry in entries:
        if isinstance(entry, Entry) and entry.model and entry.model != key.entries[entry.number].model:
            return f"entry {entry.number} names model {entry.model!r}, the key {key.entries[entry.number].model!r}"
    return None


def _some(numbers: list[int], limit: int = 10) -> str:
    text = ", ".join(map(str, numbers[:limit]))
    return text + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")
