"""The key of a sample of several models: writing it, reading it, and checking that it belongs to a sample file.

A sample of several models has a key beside it, `<sample stem>.key.json`: the models and, per entry
number, the model that wrote it, the index of its prompt among the drawn ones (the same prompt has
the same index for every model, which pairs the entries) and the entry's fingerprint, a hash of
its prompt and review (`sample_file.entry_fingerprint`). The fingerprints bind the key to the
sample's content: a key is refused for a file whose entries are not the ones it was written for,
whatever the file's `# Sample id: …` line says, or if that line is gone.

Keys written before fingerprints existed carry only the sample id, a hash of all unmarked entries.
Such a key is checked by recomputing that hash from the file's entries: it is accepted when every
entry is exactly as sample.py wrote it, and refused otherwise (the key cannot say which entry differs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import KeyFileError
from .sample_file import Entry, Incomplete, SampleFile, compute_sample_id, entry_fingerprint

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def key_path_for(sample_path: str | Path) -> Path:
    """`t5_vs_lora.txt` → `t5_vs_lora.key.json`, beside the sample."""
    sample_path = Path(sample_path)
    return sample_path.with_name(f"{sample_path.stem}.key.json")


@dataclass(frozen=True)
class KeyedEntry:
    model: str  # the model's label
    prompt_index: int | None  # which drawn prompt; None where the key does not say (then nothing is paired)
    fingerprint: str | None = None  # None in a key written before fingerprints


@dataclass(frozen=True)
class SampleKey:
    models: list[dict]  # each at least {"label": ...}, usually {"label", "path", ...}, in the order given to sample.py
    entries: dict[int, KeyedEntry]
    sample_id: str | None

    @property
    def labels(self) -> list[str]:
        return [model["label"] for model in self.models]

    @property
    def has_fingerprints(self) -> bool:
        return all(keyed.fingerprint is not None for keyed in self.entries.values())


def format_key(models: list[dict], entries: dict[int, dict], sample_id: str, **about) -> str:
    """The key's JSON: `about` (sample file name, seed, …), the models, then entry number → model, prompt, fingerprint."""
    document = {**about, "sample_id": sample_id, "models": models,
                "entries": {str(number): entries[number] for number in sorted(entries)}}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def read_key(path: str | Path) -> SampleKey:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"cannot read key {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"{path} is not a key written by sample.py: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a key written by sample.py: not JSON ({exc})") from None
    try:
        return _key_from(document)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a key written by sample.py: {exc}") from None


def _key_from(document) -> SampleKey:
    """The key of a parsed JSON document; ValueError with a sentence saying what is wrong."""
    if not isinstance(document, dict):
        raise ValueError("it is not a JSON object")
    models, entries = document.get("models"), document.get("entries")
    if not isinstance(models, list) or not models:
        raise ValueError("it has no 'models' list")
    if not isinstance(entries, dict) or not entries:
        raise ValueError("it has no 'entries' object")
    labels = []
    for position, model in enumerate(models, start=1):
        label = model.get("label") if isinstance(model, dict) else None
        if not isinstance(label, str) or not label:
            raise ValueError(f"model {position} of 'models' has no 'label'")
        labels.append(label)
    if len(set(labels)) != len(labels):
        raise ValueError("two models of 'models' have the same label")
    sample_id = document.get("sample_id")
    if sample_id is not None and not isinstance(sample_id, str):
        raise ValueError(f"its sample_id {sample_id!r} is not a string")
    keyed = {_entry_number(number): _keyed_entry(number, value, labels) for number, value in entries.items()}
    with_fingerprints = sum(entry.fingerprint is not None for entry in keyed.values())
    if 0 < with_fingerprints < len(keyed):
        number = min(n for n, entry in keyed.items() if entry.fingerprint is None)
        raise ValueError(f"entry {number} has no fingerprint, and other entries have one")
    return SampleKey(models, keyed, sample_id)


def _entry_number(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{text!r} in 'entries' is not an entry number")
    return int(text)


def _keyed_entry(number: str, value, labels: list[str]) -> KeyedEntry:
    if not isinstance(value, dict) or "model" not in value:
        raise ValueError(f"entry {number} does not name its model")
    if value["model"] not in labels:
        raise ValueError(f"entry {number} names model {value['model']!r}, which is not in 'models'")
    index = value.get("prompt_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise ValueError(f"entry {number}: prompt_index {index!r} is not an integer")
    fingerprint = value.get("fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)):
        raise ValueError(f"entry {number}: fingerprint {fingerprint!r} is not 16 hexadecimal digits")
    return KeyedEntry(value["model"], index, fingerprint)


def key_mismatch(key: SampleKey, sample: SampleFile) -> str | None:
    """Why `key` is not the key of this sample, or None when it is."""
    file_id, key_id = sample.sample_id, key.sample_id
    if file_id and key_id and file_id != key_id:
        return f"it is the key of sample {key_id}, and this file is sample {file_id}"
    numbers = [entry.number for entry in sample.entries]
    missing, extra = sorted(set(key.entries) - set(numbers)), sorted(set(numbers) - set(key.entries))
    for what, listed in (("entries of the key not in the file", missing), ("entries of the file not in the key", extra)):
        if listed:
            return f"{len(listed)} {what}: {_some(listed)}"
    readable = [entry for entry in sample.entries if isinstance(entry, Entry)]
    for entry in readable:
        if entry.model and entry.model != key.entries[entry.number].model:
            return f"entry {entry.number} names model {entry.model!r}, the key {key.entries[entry.number].model!r}"
    if key.has_fingerprints:
        for entry in readable:
            if entry_fingerprint(entry) != key.entries[entry.number].fingerprint:
                return (f"entry {entry.number} (line {sample.header_line[entry.number]}) is not the entry the key "
                        f"was written for: its prompt or review differs")
        return None
    return _old_key_mismatch(key, sample)


def _old_key_mismatch(key: SampleKey, sample: SampleFile) -> str | None:
    regenerate = "regenerate the sample and its key with sample.py"
    if key.sample_id is None:
        return f"the key has neither entry fingerprints nor a sample id, so nothing ties it to this file: {regenerate}"
    incomplete = [entry.number for entry in sample.entries if isinstance(entry, Incomplete)]
    unmarked = [Entry(e.number, e.rating, e.rubrics, e.keywords, e.review, model=e.model)
                for e in sample.entries if isinstance(e, Entry)]
    if incomplete or compute_sample_id(unmarked) != key.sample_id:
        return (f"the key was written by an older sample.py without entry fingerprints, and the entries of this file "
                f"are not exactly those of its sample {key.sample_id}"
                + (f" (entries {_some(incomplete)} lack fields)" if incomplete else "")
                + f"; restore the file's entries as sample.py wrote them, or {regenerate}")
    return None


def _some(numbers: list[int], limit: int = 10) -> str:
    text = ", ".join(map(str, numbers[:limit]))
    return text + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")
