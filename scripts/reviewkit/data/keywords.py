"""Keywords of a review: lemmatised content words ranked by TF-IDF over the corpus.

Lemmas come from pymorphy3 (with its compiled DAWG backend), one analysis per distinct
word form: `Lemmatizer` caches every form it has seen, so the cost grows with the
vocabulary, not the corpus. Lemmas travel as stable 63-bit ids, so worker processes need no
shared vocabulary. TF-IDF weights come from scikit-learn's TfidfTransformer over a sparse
count matrix built from those ids with numpy, because CountVectorizer's per-token Python
loop would be the slowest part at 500,000 reviews.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer

DEFAULT_NUM_KEYWORDS = 5
MIN_WORD_CHARS = 3
# Parts of speech that carry content; pronouns, prepositions, particles and numerals do not.
CONTENT_POS = frozenset({"NOUN", "ADJF", "ADJS", "COMP", "VERB", "INFN", "PRTF", "PRTS", "GRND", "ADVB"})
# Lemmas that pass the part-of-speech filter but say nothing about the place.
STOP_LEMMAS = frozenset("""
быть мочь есть стать сказать говорить делать сделать хотеть знать думать видеть ходить
прийти приходить пойти идти взять дать давать получить иметь являться казаться остаться
очень всегда никогда тоже также ещё еще уже вообще просто совсем там тут здесь где когда
так как потом сейчас теперь опять снова почти вполне довольно слишком чуть немного много
мало весь всё каждый любой такой самый другой свой наш ваш этот тот который какой сам
раз год день время час минута неделя месяц человек люди место вещь дело случай
хороший плохой большой маленький новый старый первый последний
отзыв звезда оценка балл спасибо пожалуйста вроде типа кстати конечно наверное
""".split())

_WORD = re.compile(r"[а-яё]+(?:-[а-яё]+)*")
_NO_LEMMA = -1


def lemma_id(lemma: str) -> int:
    """A stable 63-bit id, equal in every process (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(lemma.encode("utf-8"), digest_size=8).digest(), "little") >> 1


class Lemmatizer:
    """Maps text to its content lemmas, caching the analysis of every word form."""

    def __init__(self, max_cache: int = 2_000_000):
        import pymorphy3

        self._morph = pymorphy3.MorphAnalyzer()
        self._cache: dict[str, int] = {}
        self._max_cache = max_cache
        self.lemmas: dict[int, str] = {}
        self._unreported: dict[int, str] = {}

    def content_lemma_ids(self, text: str) -> list[int]:
        forms = _WORD.findall(text.lower())
        ids = list(map(self._cache.get, forms))
        if None in ids:
            for position, form in enumerate(forms):
                if ids[position] is None:
                    ids[position] = self._analyse_and_cache(form)
        return list(filter(_NO_LEMMA.__ne__, ids))

    def take_new_lemmas(self) -> dict[int, str]:
        """Lemmas first met since the last call: what a worker sends its parent."""
        new, self._unreported = self._unreported, {}
        return new

    def _analyse_and_cache(self, form: str) -> int:
        identifier = self._analyse(form)
        if len(self._cache) < self._max_cache:
            self._cache[form] = identifier
        return identifier

    def _analyse(self, form: str) -> int:
        if len(form) < MIN_WORD_CHARS:
            return _NO_LEMMA
        parse = self._morph.parse(form)[0]
        if parse.tag.POS not in CONTENT_POS or parse.normal_form in STOP_LEMMAS:
            return _NO_LEMMA
        lemma = parse.normal_form
        identifier = lemma_id(lemma)
        if identifier not in self.lemmas:
            self.lemmas[identifier] = lemma
            self._unreported[identifier] = lemma
        return identifier


class LemmaCounts:
    """Documents' lemma ids gathered chunk by chunk into a sparse document-term count matrix."""

    def __init__(self):
        self.lemmas: dict[int, str] = {}
        self._ids: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []

    def add(self, ids: np.ndarray, lengths: np.ndarray, lemmas: dict[int, str]) -> None:
        """`ids` of all documents back to back, `lengths` the number per document."""
        self._ids.append(np.asarray(ids, dtype=np.int64))
        self._lengths.append(np.asarray(lengths, dtype=np.int64))
        self.lemmas.update(lemmas)

    def matrix(self) -> tuple[sp.csr_matrix, list[str]]:
        """The count matrix and the lemma of each column (columns in order of first appearance)."""
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)
        # A hash-table factorisation, O(n), where np.unique would sort all tokens.
        columns, column_ids = pd.factorize(ids)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        counts = sp.csr_matrix(
            (np.ones(len(columns), dtype=np.float32), columns.reshape(-1), indptr),
            shape=(len(lengths), len(column_ids)),
        )
        counts.sum_duplicates()
        return counts, [self.lemmas[i] for i in column_ids.tolist()]


def top_keywords(
    counts: sp.csr_matrix, vocabulary: Sequence[str], k: int = DEFAULT_NUM_KEYWORDS, rows: np.ndarray | None = None
) -> list[list[str]]:
    """Top-k lemmas of each document by TF-IDF, IDF fitted on all documents of `counts`.

    `rows` restricts the output to those documents (e.g. a ratings filter) without changing
    the IDF. Ties go to the lemma that appeared first in the corpus, so the result is deterministic.
    """
    tfidf = TfidfTransformer(norm=None, sublinear_tf=True).fit(counts)
    weights = tfidf.transform(counts[rows] if rows is not None else counts).tocsr()
    weights.sort_indices()
    n_rows, indptr = weights.shape[0], weights.indptr
    row_lengths = np.diff(indptr)
    row_of = np.repeat(np.arange(n_rows), row_lengths)
    # One stable sort for the whole corpus: by row, then weight descending.
    order = np.lexsort((-weights.data, row_of))
    rank = np.arange(len(order)) - indptr[row_of]
    chosen = weights.indices[order[rank < k]]
    chosen_words = np.asarray(vocabulary, dtype=object)[chosen].tolist()
    ends = np.cumsum(np.minimum(row_lengths, k)).tolist()
    starts = [0] + ends[:-1]
    return [chosen_words[s:e] for s, e in zip(starts, ends)]
