"""The data step: load → clean → deduplicate → keywords → prompts → grouped splits → parquet.

Rows stream through worker processes in chunks (cleaning and lemmatisation are per-row and
CPU-bound); deduplication, TF-IDF and the split need the whole corpus and run in the parent,
on compact columns (Arrow strings, int32 lemma ids), so 500,000 reviews fit in ~2 GiB.
`report.json` is written last and holds the fingerprint of input and settings: it marks the
output complete, and a rerun with the same fingerprint is served from it.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from . import cleaning, loading
from .files import atomic_path, atomic_write_text, file_digest, remove_stale_temporaries
from .keywords import DEFAULT_TOP_K, LemmaCounts, Lemmatizer, top_keywords
from .prompt import build_prompt
from .splits import SPLITS, grouped_split, organization_keys, rating_distribution

# Bump when the output for the same input and settings changes; it invalidates old caches.
PIPELINE_VERSION = 1
REPORT_NAME = "report.json"
DUPLICATE = "duplicate_text"
NOT_SELECTED = "rating_not_selected"
CHUNK_ROWS = 2_000
CHUNKS_IN_FLIGHT_PER_WORKER = 4


class PrepareError(Exception):
    """The step cannot produce a dataset; the message is one line for the user."""


@dataclass(frozen=True)
class PrepareConfig:
    cleaning: cleaning.CleaningConfig = field(default_factory=cleaning.CleaningConfig)
    top_k: int = DEFAULT_TOP_K
    ratings: tuple[int, ...] | None = None
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 42

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class CleanChunk:
    """What a worker returns for one chunk: the kept rows' columns and the drop counts."""

    drops: collections.Counter = field(default_factory=collections.Counter)
    address: list = field(default_factory=list)
    name_ru: list = field(default_factory=list)
    rubrics: list = field(default_factory=list)
    text: list = field(default_factory=list)
    rating: list = field(default_factory=list)
    text_key: list = field(default_factory=list)
    lemmas: list = field(default_factory=list)


_worker_lemmatizer: Lemmatizer | None = None


def _init_worker() -> None:
    global _worker_lemmatizer
    _worker_lemmatizer = Lemmatizer()


def clean_chunk(records: list[loading.RawRecord], config: cleaning.CleaningConfig) -> CleanChunk:
    out = CleanChunk()
    for record in records:
        if record.error:
            out.drops[record.error] += 1
            continue
        fields = record.fields
        rating, reason = cleaning.parse_rating(fields["rating"])
        if reason is None:
            text, reason = cleaning.clean_text(fields["text"], config)
        if reason:
            out.drops[reason] += 1
            continue
        out.address.append(cleaning.clean_field(fields["address"]))
        out.name_ru.append(cleaning.clean_field(fields["name_ru"]))
        out.rubrics.append(";".join(cleaning.split_rubrics(cleaning.clean_field(fields["rubrics"]))))
        out.text.append(text)
        out.rating.append(rating)
        out.text_key.append(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())
        out.lemmas.append(" ".join(_worker_lemmatizer.content_lemmas(text)))
    return out


def _chunked(records: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ordered_map(func: Callable, chunks: Iterator[list], workers: int) -> Iterator:
    """map() over worker processes, in input order, with a bounded number of chunks in flight."""
    if workers <= 1:
        _init_worker()
        yield from map(func, chunks)
        return
    with multiprocessing.Pool(workers, initializer=_init_worker) as pool:
        pending = collections.deque()
        for chunk in chunks:
            pending.append(pool.apply_async(func, (chunk,)))
            if len(pending) >= workers * CHUNKS_IN_FLIGHT_PER_WORKER:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def fingerprint(source: str, config: PrepareConfig) -> str:
    """Identifies the output: input content (or hub id), settings and pipeline version."""
    content = file_digest(source) if os.path.isfile(source) else f"hub:{source}"
    payload = json.dumps([PIPELINE_VERSION, content, config.as_dict()], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def cached_report(output_dir: Path, expected_fingerprint: str) -> dict | None:
    """The report of a complete earlier run with the same fingerprint, else None."""
    try:
        report = json.loads((output_dir / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if report.get("fingerprint") != expected_fingerprint:
        return None
    for name, size in report.get("files", {}).items():
        path = output_dir / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    return report


def prepare_dataset(
    source: str, output_dir: str | os.PathLike, config: PrepareConfig, workers: int = 0, progress: bool = True
) -> dict:
    """Build (or reuse) train/validation/test parquet files and report.json; return the report."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    fmt = loading.detect_format(source)
    _prepare_output_dir(output_dir)
    expected = fingerprint(source, config)
    report = cached_report(output_dir, expected)
    if report is not None:
        return {**report, "cached": True}
    (output_dir / REPORT_NAME).unlink(missing_ok=True)
    remove_stale_temporaries(output_dir)

    corpus = _clean_corpus(source, config, workers or os.cpu_count() or 1, progress)
    read = corpus["read"]
    if read == 0:
        raise PrepareError(f"no reviews read from {source}: the input is empty")
    dropped = corpus["drops"]
    ratings = corpus["rating"]
    if config.ratings:
        selected = np.flatnonzero(np.isin(ratings, config.ratings))
        dropped[NOT_SELECTED] = len(ratings) - len(selected)
    else:
        selected = np.arange(len(ratings))
    if len(selected) == 0:
        raise PrepareError(f"no review left after cleaning and the ratings filter; dropped: {dict(dropped)}")

    keywords = top_keywords(corpus["counts"].matrix(), corpus["counts"].vocabulary, config.top_k, rows=selected)
    table = corpus["table"].take(pa.array(selected))
    ratings = ratings[selected]
    prompts = [
        build_prompt(int(r), rubrics, kw)
        for r, rubrics, kw in zip(ratings.tolist(), table.column("rubrics").to_pylist(), keywords)
    ]
    table = table.append_column("keywords", pa.array(keywords, type=pa.list_(pa.string())))
    table = table.append_column("prompt", pa.array(prompts, type=pa.string()))

    groups = organization_keys(table.column("name_ru").to_pylist(), table.column("address").to_pylist())
    split_ids = grouped_split(groups, config.validation_fraction, config.test_fraction, config.seed)
    files, split_report = {}, {}
    for split_id, split in enumerate(SPLITS):
        mask = split_ids == split_id
        name = f"{split}.parquet"
        with atomic_path(output_dir / name) as tmp:
            pq.write_table(table.filter(pa.array(mask)), tmp)
        files[name] = (output_dir / name).stat().st_size
        counts = collections.Counter(ratings[mask].tolist())
        split_report[split] = {
            "rows": int(mask.sum()),
            "organizations": len({g for g, m in zip(groups, mask) if m}),
            "ratings": {str(r): counts.get(r, 0) for r in range(1, 6)},
            "rating_share": rating_distribution(ratings[mask].tolist()),
        }
    report = {
        "input": source,
        "format": fmt,
        "read": read,
        "kept": int(len(selected)),
        "dropped": dict(sorted(dropped.items())),
        "rating_share_all": rating_distribution(ratings.tolist()),
        "splits": split_report,
        "settings": config.as_dict(),
        "pipeline_version": PIPELINE_VERSION,
        "fingerprint": expected,
        "files": files,
        "seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_text(output_dir / REPORT_NAME, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return {**report, "cached": False}


def _prepare_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise PrepareError(f"output directory {output_dir} exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepareError(f"cannot create output directory {output_dir}: {exc.strerror}") from None
    if not os.access(output_dir, os.W_OK):
        raise PrepareError(f"output directory {output_dir} is not writable")


def _clean_corpus(source: str, config: PrepareConfig, workers: int, progress: bool) -> dict:
    """Stream, clean and deduplicate the input; lemmas go straight into a sparse count matrix."""
    records = loading.read_reviews(source)
    bar = tqdm(desc="reading and cleaning", unit=" rows", disable=not progress, mininterval=1.0)
    drops = collections.Counter()
    seen = set()
    counts = LemmaCounts()
    batches, ratings = [], []
    read = 0

    def counted_chunks():
        nonlocal read
        for chunk in _chunked(records, CHUNK_ROWS):
            read += len(chunk)
            bar.update(len(chunk))
            yield chunk

    clean = functools.partial(clean_chunk, config=config.cleaning)
    for chunk in _ordered_map(clean, counted_chunks(), workers):
        drops.update(chunk.drops)
        keep = []
        for i, key in enumerate(chunk.text_key):
            if key in seen:
                drops[DUPLICATE] += 1
            else:
                seen.add(key)
                keep.append(i)
        if not keep:
            continue
        counts.add(chunk.lemmas[i].split() for i in keep)
        ratings.extend(chunk.rating[i] for i in keep)
        batches.append(
            pa.record_batch(
                {name: pa.array([getattr(chunk, name)[i] for i in keep], type=pa.string())
                 for name in ("address", "name_ru", "rubrics", "text")}
            )
        )
    bar.close()
    schema = pa.schema([(name, pa.string()) for name in ("address", "name_ru", "rubrics", "text")])
    table = pa.Table.from_batches(batches, schema=schema)
    rating_array = np.asarray(ratings, dtype=np.int8)
    table = table.add_column(2, "rating", pa.array(rating_array))
    return {"read": read, "drops": drops, "counts": counts, "rating": rating_array, "table": table}


def format_report(report: dict) -> str:
    """The printed summary: read/kept, one line per drop reason, rows and ratings per split."""
    read = report["read"]
    lines = [f"{'read':<28}{read:>10}", f"{'kept':<28}{report['kept']:>10}{report['kept'] / read:>9.1%}"]
    for reason, count in report["dropped"].items():
        lines.append(f"  dropped: {reason:<18}{count:>10}{count / read:>9.1%}")
    lines.append(f"{'split':<12}{'rows':>8}{'orgs':>8}" + "".join(f"{'★' + str(r):>8}" for r in range(1, 6)))
    for split, info in report["splits"].items():
        shares = "".join(f"{info['rating_share'][str(r)]:>8.1%}" for r in range(1, 6))
        lines.append(f"{split:<12}{info['rows']:>8}{info['organizations']:>8}{shares}")
    return "\n".join(lines)
