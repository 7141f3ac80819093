"""Read Yandex Geo Reviews 2023 from TSKV, CSV, parquet or a Hugging Face hub id.

Every reader is a generator of `RawRecord`s, so the 360 MB file is streamed, never held whole.
A record either carries the fields of one review or the reason it could not be read; the
caller counts those reasons instead of crashing on them.
"""

from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..common.errors import DataSourceError, first_line

FIELDS = ("address", "name_ru", "rating", "rubrics", "text")
REQUIRED_COLUMNS = ("rating", "text")
DEFAULT_HUB_ID = "d0rj/geo-reviews-dataset-2023"

# Reasons a loader gives for a record it cannot turn into fields.
UNDECODABLE = "undecodable_bytes"
BLANK_LINE = "blank_line"
TORN_LINE = "torn_line"
NO_TEXT_FIELD = "no_text_field"
DUPLICATE_FIELD = "duplicate_field"
MALFORMED_ROW = "malformed_row"

_TSKV_KEY = re.compile(r"^[a-z_]+=")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_SURROGATE = re.compile("[\udc80-\udcff]")
_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class RawRecord:
    fields: dict | None = None
    error: str | None = None


def detect_format(source: str) -> str:
    """Return 'tskv', 'csv', 'parquet' or 'hub' for a path or hub id, or raise DataSourceError."""
    path = Path(source)
    if path.is_dir():
        raise DataSourceError(f"{source} is a directory; pass a .tskv, .csv or .parquet file")
    if not path.exists():
        if _HUB_ID.match(source) and not source.endswith((".tskv", ".csv", ".parquet", ".txt")):
            return "hub"
        raise DataSourceError(f"input file not found: {source}")
    suffix = path.suffix.lower()
    if suffix in (".tskv", ".txt"):
        return "tskv"
    if suffix == ".csv":
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if _TSKV_KEY.match(head.lstrip(b"\xef\xbb\xbf").decode("utf-8", "replace")):
        return "tskv"
    if b"text" in head.split(b"\n", 1)[0] and b"," in head:
        return "csv"
    raise DataSourceError(f"cannot tell the format of {source}: name it .tskv, .csv or .parquet")


def read_batches(source: str, size: int = _BATCH_ROWS) -> Iterator[TskvLines | RecordList]:
    """Stream the input in batches of about `size` records.

    TSKV batches carry raw bytes and are decoded and parsed by `records()`, so a worker
    process, not the reader, pays for it.
    """
    fmt = detect_format(source)
    if fmt == "tskv":
        return _tskv_batches(source, size)
    reader = {"csv": _read_csv, "parquet": _read_parquet, "hub": _read_hub}[fmt]
    return (RecordList(chunk) for chunk in _chunked(reader(source), size))


@dataclass(frozen=True)
class TskvLines:
    lines: list[bytes]

    def __len__(self) -> int:
        return len(self.lines)

    def records(self) -> Iterator[RawRecord]:
        for raw in self.lines:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield RawRecord(error=UNDECODABLE)
                continue
            yield parse_tskv_line(line.rstrip("\r\n"))


@dataclass(frozen=True)
class RecordList:
    items: list[RawRecord]

    def __len__(self) -> int:
        return len(self.items)

    def records(self) -> Iterator[RawRecord]:
        return iter(self.items)


def _chunked(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def parse_tskv_line(line: str) -> RawRecord:
    """Parse one decoded TSKV line (without its newline)."""
    if not line.strip():
        return RawRecord(error=BLANK_LINE)
    parts = line.split("\t")
    if not _TSKV_KEY.match(parts[0]):
        # A raw line break inside a review leaves a line that starts mid-text.
        return RawRecord(error=TORN_LINE)
    fields: dict[str, str] = {}
    key = None
    for part in parts:
        if _TSKV_KEY.match(part):
            key, _, value = part.partition("=")
            if key in fields:
                return RawRecord(error=DUPLICATE_FIELD)
            fields[key] = value
        else:
            # A raw tab inside a value: keep it with the value it belongs to.
            fields[key] += "\t" + part
    if "text" not in fields:
        return RawRecord(error=NO_TEXT_FIELD)
    return RawRecord(fields={k: fields.get(k) for k in FIELDS})


def _tskv_batches(path: str, size: int) -> Iterator[TskvLines]:
    with open(path, "rb") as f:
        first = True
        for lines in iter(lambda: list(itertools.islice(f, size)), []):
            if first:
                lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")
                first = False
            yield TskvLines(lines)


def _read_csv(path: str) -> Iterator[RawRecord]:
    csv.field_size_limit(2**31 - 1)
    # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataSourceError(f"{path}: unreadable CSV header ({exc})") from None
        columns = [name.strip() for name in header]
        _check_columns(path, columns)
        index = {name: columns.index(name) for name in FIELDS if name in columns}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                yield RawRecord(error=MALFORMED_ROW)
                continue
            if not row:
                yield RawRecord(error=BLANK_LINE)
                continue
            if len(row) != len(columns):
                yield RawRecord(error=MALFORMED_ROW)
                continue
            if any(_SURROGATE.search(value) for value in row):
                yield RawRecord(error=UNDECODABLE)
                continue
            yield RawRecord(fields={k: (row[index[k]] if k in index else None) for k in FIELDS})


def _read_parquet(path: str) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        columns = list(parquet.schema_arrow.names)
        _check_columns(path, columns)
        batches = parquet.iter_batches(batch_size=_BATCH_ROWS, columns=[c for c in FIELDS if c in columns])
        for batch in batches:
            for row in batch.to_pylist():
                yield RawRecord(fields={k: row.get(k) for k in FIELDS})
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"{path}: unreadable parquet file ({first_line(exc)})") from None


def _read_hub(dataset_id: str) -> Iterator[RawRecord]:
    try:
        import datasets

        dataset = datasets.load_dataset(dataset_id, split="train", streaming=True)
        iterator = iter(dataset)
        first = next(iterator, None)
    except Exception as exc:  # the hub client raises many types when offline
        raise DataSourceError(
            f"cannot load '{dataset_id}' from the Hugging Face hub ({type(exc).__name__}); "
            "offline? download the dataset and pass a local file: --input PATH.tskv|.csv|.parquet"
        ) from None
    if first is None:
        return
    _check_columns(dataset_id, list(first))
    yield RawRecord(fields={k: first.get(k) for k in FIELDS})
    for row in iterator:
        yield RawRecord(fields={k: row.get(k) for k in FIELDS})


def _check_columns(source: str, columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataSourceError(
            f"{source}: missing column(s) {', '.join(missing)}; expected {','.join(FIELDS)}"
        )
