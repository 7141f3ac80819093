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
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ..common.errors import OutputDirError, PrepareError
from ..common.files import atomic_path, atomic_write_text, ensure_output_dir, file_digest, remove_stale_temporaries
from . import cleaning, loading
from .keywords import DEFAULT_NUM_KEYWORDS, LemmaCounts, Lemmatizer, top_keywords
from .prompt import build_prompt
from .splits import SPLITS, grouped_split, organization_keys, rating_distribution

# Bump when the output for the same input and settings changes; it invalidates old caches.
PIPELINE_VERSION = 1
REPORT_NAME = "report.json"
DUPLICATE = "duplicate_text"
NOT_SELECTED = "rating_not_selected"
BATCH_ROWS = 2_000
BATCHES_IN_FLIGHT_PER_WORKER = 4


@dataclass(frozen=True)
class PrepareConfig:
    cleaning: cleaning.CleaningConfig = field(default_factory=cleaning.CleaningConfig)
    num_keywords: int = DEFAULT_NUM_KEYWORDS
    ratings: tuple[int, ...] | None = None
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 42

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


COLUMNS = ("address", "name_ru", "rating", "rubrics", "text")
SCHEMA = pa.schema([("address", pa.string()), ("name_ru", pa.string()), ("rating", pa.int8()),
                    ("rubrics", pa.string()), ("text", pa.string())])


@dataclass
class CleanChunk:
    """What a worker returns for one batch: kept rows, their text keys and lemma ids, drop counts."""

    drops: collections.Counter
    rows: pa.RecordBatch
    text_keys: list[bytes]
    lemma_ids: np.ndarray
    lemma_counts: np.ndarray
    new_lemmas: dict[int, str]


_worker_lemmatizer: Lemmatizer | None = None


def _init_worker() -> None:
    global _worker_lemmatizer
    _worker_lemmatizer = Lemmatizer()


def clean_chunk(batch: loading.TskvLines | loading.RecordList, config: cleaning.CleaningConfig) -> CleanChunk:
    drops = collections.Counter()
    columns = {name: [] for name in COLUMNS}
    text_keys, lemma_ids, lemma_counts = [], [], []
    for record in batch.records():
        if record.error:
            drops[record.error] += 1
            continue
        fields = record.fields
        rating, reason = cleaning.parse_rating(fields["rating"])
        if reason is None:
            text, reason = cleaning.clean_text(fields["text"], config)
        if reason:
            drops[reason] += 1
            continue
        columns["address"].append(cleaning.clean_field(fields["address"]))
        columns["name_ru"].append(cleaning.clean_field(fields["name_ru"]))
        columns["rubrics"].append(";".join(cleaning.split_rubrics(cleaning.clean_field(fields["rubrics"]))))
        columns["text"].append(text)
        columns["rating"].append(rating)
        text_keys.append(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())
        ids = _worker_lemmatizer.content_lemma_ids(text)
        lemma_ids.extend(ids)
        lemma_counts.append(len(ids))
    return CleanChunk(
        drops=drops,
        rows=pa.record_batch({name: pa.array(values, type=SCHEMA.field(name).type) for name, values in columns.items()}),
        text_keys=text_keys,
        lemma_ids=np.asarray(lemma_ids, dtype=np.int64),
        lemma_counts=np.asarray(lemma_counts, dtype=np.int64),
        new_lemmas=_worker_lemmatizer.take_new_lemmas(),
    )


def _ordered_map(func: Callable, batches: Iterator, workers: int) -> Iterator:
    """map() over worker processes, in input order, with a bounded number of batches in flight."""
    if workers <= 1:
        _init_worker()
        yield from map(func, batches)
        return
    with multiprocessing.Pool(workers, initializer=_init_worker) as pool:
        pending = collections.deque()
        for batch in batches:
            pending.append(pool.apply_async(func, (batch,)))
            if len(pending) >= workers * BATCHES_IN_FLIGHT_PER_WORKER:
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
    try:
        ensure_output_dir(output_dir)
    except OutputDirError as exc:
        raise PrepareError(str(exc)) from None
    expected = fingerprint(source, config)
    report = cached_report(output_dir, expected)
    if report is not None:
        return {**report, "cached": True}
    (output_dir / REPORT_NAME).unlink(missing_ok=True)
    remove_stale_temporaries(output_dir)

    corpus = _clean_corpus(source, config, workers or os.cpu_count() or 1, progress)
    if corpus.read == 0:
        raise PrepareError(f"no reviews read from {source}: the input is empty")
    ratings = corpus.table.column("rating").to_numpy()
    selected = np.flatnonzero(np.isin(ratings, config.ratings)) if config.ratings else np.arange(len(ratings))
    if config.ratings:
        corpus.drops[NOT_SELECTED] = len(ratings) - len(selected)
    if len(selected) == 0:
        raise PrepareError(f"no review left after cleaning and the ratings filter; dropped: {dict(corpus.drops)}")
    keywords = top_keywords(*corpus.counts.matrix(), config.num_keywords, rows=selected)
    table = _with_keywords_and_prompts(corpus.table.take(pa.array(selected)), keywords)
    del corpus.table, corpus.counts, keywords

    files, split_report = _write_splits(table, config, output_dir)
    ratings = table.column("rating").to_numpy()
    report = {
        "input": source,
        "format": fmt,
        "read": corpus.read,
        "kept": len(table),
        "dropped": dict(sorted(corpus.drops.items())),
        "rating_share_all": rating_distribution(ratings.tolist()),
        "splits": split_report,
        "settings": config.as_dict(),
        "pipeline_version": PIPELINE_VERSION,
        "fingerprint": expected,
        "files": files,
    }
    # The build time is returned, not stored: the same input and settings give byte-identical files.
    atomic_write_text(output_dir / REPORT_NAME, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return {**report, "cached": False, "seconds": round(time.perf_counter() - started, 2)}


def _write_splits(table: pa.Table, config: PrepareConfig, output_dir: Path) -> tuple[dict, dict]:
    """Split by organization and write one parquet file per split; (file sizes, per-split report)."""
    groups = organization_keys(table.column("name_ru").to_pylist(), table.column("address").to_pylist())
    split_ids = grouped_split(groups, config.validation_fraction, config.test_fraction, config.seed)
    group_codes, _ = pd.factorize(np.asarray(groups, dtype=object))
    del groups
    files, split_report = {}, {}
    ratings = table.column("rating").to_numpy()
    for split_id, split in enumerate(SPLITS):
        mask = split_ids == split_id
        name = f"{split}.parquet"
        with atomic_path(output_dir / name) as tmp:
            pq.write_table(table.filter(pa.array(mask)), tmp)
        files[name] = (output_dir / name).stat().st_size
        counts = collections.Counter(ratings[mask].tolist())
        split_report[split] = {
            "rows": int(mask.sum()),
            "organizations": len(np.unique(group_codes[mask])),
            "ratings": {str(r): counts.get(r, 0) for r in range(1, 6)},
            "rating_share": rating_distribution(ratings[mask].tolist()),
        }
    return files, split_report


def _with_keywords_and_prompts(table: pa.Table, keywords: list[list[str]]) -> pa.Table:
    prompts = [
        build_prompt(rating, rubrics, words)
        for rating, rubrics, words in zip(
            table.column("rating").to_pylist(), table.column("rubrics").to_pylist(), keywords
        )
    ]
    table = table.append_column("keywords", pa.array(keywords, type=pa.list_(pa.string())))
    return table.append_column("prompt", pa.array(prompts, type=pa.string()))


@dataclass
class CleanCorpus:
    read: int
    drops: collections.Counter
    counts: LemmaCounts
    table: pa.Table


def _clean_corpus(source: str, config: PrepareConfig, workers: int, progress: bool) -> CleanCorpus:
    """Stream, clean and deduplicate the input; lemma ids go straight into a sparse count matrix."""
    bar = tqdm(desc="reading and cleaning", unit=" rows", disable=not progress, mininterval=1.0)
    drops = collections.Counter()
    seen = set()
    counts = LemmaCounts()
    kept_batches = []
    read = 0

    def counted(batches):
        nonlocal read
        for batch in batches:
            read += len(batch)
            bar.update(len(batch))
            yield batch

    clean = functools.partial(clean_chunk, config=config.cleaning)
    batches = counted(loading.read_batches(source, BATCH_ROWS))
    for chunk in _ordered_map(clean, batches, workers):
        drops.update(chunk.drops)
        keep = np.zeros(len(chunk.text_keys), dtype=bool)
        for i, key in enumerate(chunk.text_keys):
            if key in seen:
                drops[DUPLICATE] += 1
            else:
                seen.add(key)
                keep[i] = True
        counts.add(chunk.lemma_ids[np.repeat(keep, chunk.lemma_counts)], chunk.lemma_counts[keep], chunk.new_lemmas)
        kept_batches.append(chunk.rows.filter(pa.array(keep)))
    bar.close()
    return CleanCorpus(read, drops, counts, pa.Table.from_batches(kept_batches, schema=SCHEMA))


def format_report(report: dict) -> str:
    """The printed summary: read/kept, one line per drop reason, rows and ratings per split."""
    read = report["read"]
    lines = [f"{'read':<34}{read:>10}", f"{'kept':<34}{report['kept']:>10}{report['kept'] / read:>9.1%}"]
    for reason, count in report["dropped"].items():
        lines.append(f"  dropped: {reason:<24}{count:>10}{count / read:>9.1%}")
    lines.append(f"{'split':<12}{'rows':>8}{'orgs':>8}" + "".join(f"{'★' + str(r):>8}" for r in range(1, 6)))
    for split, info in report["splits"].items():
        shares = "".join(f"{info['rating_share'][str(r)]:>8.1%}" for r in range(1, 6))
        lines.append(f"{split:<12}{info['rows']:>8}{info['organizations']:>8}{shares}")
    return "\n".join(lines)
