"""What evaluate.py derives from a data directory's splits, made once per data directory and then reused.

The rating classifier (fitted on train.parquet, with its accuracy on test.parquet) and the copy
check's index of the training reviews depend on the data, not on the model being evaluated. Each
is stored in DATA_DIR/.evaluate_cache/ with its key: the content digests of the splits it was made
from and the settings that made it. A run whose key matches loads it; a file made from other data
or settings, or one that cannot be read, is made again, and the progress line says why.

A stored file is one .npz of numeric and byte arrays (the key and figures in a JSON record among
them), read with allow_pickle=False: nothing in it can run code. It is written to a temporary
file and renamed into place, so an interrupted run leaves the earlier file or none. When the
directory cannot be written, what was made serves this run only, and a note says so.
"""

from __future__ import annotations

import functools
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
import pyarrow as pa

from ..common.errors import first_line
from ..common.files import atomic_path, file_digest, remove_stale_temporaries
from . import copy_check, rating_classifier
from .copy_check import CopyIndex
from .quality import rating_consistency
from .rating_classifier import RatingClassifier

CACHE_DIR = ".evaluate_cache"
CLASSIFIER_FILE = "rating_classifier.npz"
COPY_INDEX_FILE = "copy_index.npz"
FORMAT = 1  # of the stored files; bump when their layout changes
RECORD = "record"  # the array holding the JSON record: key and figures
T = TypeVar("T")


@dataclass(frozen=True)
class EvaluationReference:
    """The rating classifier with its accuracy on the real test reviews, and the copy index of the training reviews."""

    classifier: RatingClassifier
    test_accuracy: float
    test_within_1: float
    copy_index: CopyIndex


@dataclass(frozen=True)
class Phase:
    """How the progress lines name one stored thing: `made` is formatted with the number of reviews."""

    what: str
    making: str
    made: str


class StaleError(Exception):
    """A stored file was made from other data or settings; the message says which."""


def evaluation_reference(data_dir: Path, train: pa.Table, test_texts: Sequence[str],
                         test_ratings: Sequence[int]) -> EvaluationReference:
    """Load, or make and store, the classifier and the copy index of DATA_DIR; `train` has columns text and rating.

    `train` and the test reviews must be what DATA_DIR/train.parquet and test.parquet hold: the
    stored files are keyed by those files' digests.
    """
    cache = data_dir / CACHE_DIR
    train_digest, test_digest = file_digest(data_dir / "train.parquet"), file_digest(data_dir / "test.parquet")
    train_texts = functools.cache(lambda: train.column("text").to_pylist())  # only when something is made

    def fit_classifier() -> tuple[dict, dict]:
        classifier = RatingClassifier.fit(train_texts(), train.column("rating").to_pylist())
        accuracy, within_1 = rating_consistency(test_ratings, classifier.predict(test_texts))
        return classifier.to_arrays(), {"test_accuracy": accuracy, "test_within_1": within_1}

    def classifier_of(arrays: dict, record: dict) -> tuple[RatingClassifier, float, float]:
        return RatingClassifier.from_arrays(arrays), float(record["test_accuracy"]), float(record["test_within_1"])

    classifier, accuracy, within_1 = stored_or_made(
        cache / CLASSIFIER_FILE,
        {"format": FORMAT, "settings": rating_classifier.SETTINGS, "train.parquet": train_digest,
         "test.parquet": test_digest},
        Phase("rating classifier", f"fitting it on {len(train)} training reviews, then scoring it on "
                                   f"{len(test_texts)} test reviews", "fitted on {reviews} reviews"),
        fit_classifier, classifier_of, reviews=len(train))
    copy_index = stored_or_made(
        cache / COPY_INDEX_FILE,
        {"format": FORMAT, "settings": copy_check.SETTINGS, "train.parquet": train_digest},
        Phase("copy check", f"indexing the word trigrams of {len(train)} training reviews",
              "trigrams of {reviews} training reviews"),
        lambda: (CopyIndex.build(train_texts()).to_arrays(), {}), lambda arrays, _: CopyIndex.from_arrays(arrays),
        reviews=len(train))
    return EvaluationReference(classifier, accuracy, within_1, copy_index)


def stored_or_made(path: Path, key: dict, phase: Phase, make: Callable[[], tuple[dict, dict]],
                   restore: Callable[[dict, dict], T], reviews: int) -> T:
    """restore(arrays, record) of what PATH holds under KEY; else of what `make` returns, which is then stored there.

    `make` returns (arrays, figures for the record); a line on stderr says which way it went.
    """
    why_not = ""
    if path.is_file():
        try:
            arrays, record = read_stored(path, key)
            restored = restore(arrays, record)
        except StaleError as exc:
            why_not = str(exc)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            why_not = f"{path} cannot be read ({type(exc).__name__}: {first_line(exc)})"
        else:
            print(f"{phase.what}: reused from {path} ({phase.made.format(reviews=record['reviews'])}, "
                  f"train.parquet digest {key['train.parquet'][:12]})", file=sys.stderr)
            return restored
    print(f"{phase.what}: {phase.making} ({f'{why_not}: made again' if why_not else f'kept in {path} for later runs'})",
          file=sys.stderr)
    arrays, figures = make()
    record = {"key": key, "reviews": reviews, **figures}
    try:
        write_stored(path, arrays, record)
    except OSError as exc:
        print(f"note: {phase.what} not kept in {path.parent} ({exc.strerror or exc}): the next run makes it again",
              file=sys.stderr)
    return restore(arrays, record)


def read_stored(path: Path, key: dict) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, record) stored at PATH; StaleError when its key is not KEY, the errors of reading when unreadable."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    record = json.loads(arrays.pop(RECORD).tobytes().decode("utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("key"), dict) or "reviews" not in record:
        raise ValueError("its record has no key or count of reviews")
    stored_key = record["key"]
    differences = [f"{name} digest {str(stored_key.get(name))[:12]}, now {value[:12]}" if name.endswith(".parquet")
                   else f"other {name}" for name, value in key.items() if stored_key.get(name) != value]
    if differences:
        raise StaleError(f"{path} was made from {'; '.join(differences)}")
    return arrays, record


def write_stored(path: Path, arrays: dict[str, np.ndarray], record: dict) -> None:
    """Arrays and record in one .npz at PATH, replaced whole (a temporary file renamed onto it)."""
    path.parent.mkdir(exist_ok=True)
    remove_stale_temporaries(path.parent, of=path.name)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: given a name, numpy would append .npz
        record_bytes = np.frombuffer(json.dumps(record, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        np.savez_compressed(f, **arrays, **{RECORD: record_bytes})
