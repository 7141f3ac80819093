"""Keywords of a review: lemmatised content words ranked by TF-IDF over the corpus.

Lemmas come from pymorphy3 (with its compiled DAWG backend), one analysis per distinct
word form: `Lemmatizer` caches every form it has seen, so the cost grows with the
vocabulary, not the corpus. TF-IDF weights come from scikit-learn's TfidfTransformer over
a sparse count matrix built here, because CountVectorizer's per-token Python loop is the
slowest part at 500,000 reviews.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer

DEFAULT_TOP_K = 5
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


class Lemmatizer:
    """Maps text to its content lemmas, caching the analysis of every word form."""

    def __init__(self, max_cache: int = 2_000_000):
        import pymorphy3

        self._morph = pymorphy3.MorphAnalyzer()
        self._cache: dict[str, str | None] = {}
        self._max_cache = max_cache

    def content_lemmas(self, text: str) -> list[str]:
        cache = self._cache
        lemmas = []
        for form in _WORD.findall(text.lower()):
            if form in cache:
                lemma = cache[form]
            else:
                lemma = self._analyse(form)
                if len(cache) < self._max_cache:
                    cache[form] = lemma
            if lemma is not None:
                lemmas.append(lemma)
        return lemmas

    def _analyse(self, form: str) -> str | None:
        if len(form) < MIN_WORD_CHARS:
            return None
        parse = self._morph.parse(form)[0]
        if parse.tag.POS not in CONTENT_POS:
            return None
        lemma = parse.normal_form
        return None if lemma in STOP_LEMMAS else lemma


class LemmaCounts:
    """Accumulates documents' lemmas as a sparse document-term count matrix, chunk by chunk."""

    def __init__(self):
        self.vocabulary: dict[str, int] = {}
        self._indices: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []

    def add(self, documents: Iterable[Sequence[str]]) -> None:
        vocabulary = self.vocabulary
        ids, lengths = [], []
        for lemmas in documents:
            ids.extend(vocabulary.setdefault(lemma, len(vocabulary)) for lemma in lemmas)
            lengths.append(len(lemmas))
        self._indices.append(np.asarray(ids, dtype=np.int32))
        self._lengths.append(np.asarray(lengths, dtype=np.int64))

    def matrix(self) -> sp.csr_matrix:
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        indices = np.concatenate(self._indices) if self._indices else np.zeros(0, np.int32)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        counts = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, indptr),
            shape=(len(lengths), len(self.vocabulary)),
        )
        counts.sum_duplicates()
        return counts


def top_keywords(
    counts: sp.csr_matrix, vocabulary: dict[str, int], k: int = DEFAULT_TOP_K, rows: np.ndarray | None = None
) -> list[list[str]]:
    """Top-k lemmas of each document by TF-IDF, IDF fitted on all documents of `counts`.

    `rows` restricts the output to those documents (e.g. a ratings filter) without changing
    the IDF. Ties go to the lemma seen first in the corpus, so the result is deterministic.
    """
    tfidf = TfidfTransformer(norm=None, sublinear_tf=True).fit(counts)
    weights = tfidf.transform(counts[rows] if rows is not None else counts).tocsr()
    weights.sort_indices()
    n_rows, indptr = weights.shape[0], weights.indptr
    row_lengths = np.diff(indptr)
    row_of = np.repeat(np.arange(n_rows), row_lengths)
    # One sort for the whole corpus: by row, then weight descending, then first-seen lemma.
    order = np.lexsort((weights.indices, -weights.data, row_of))
    rank = np.arange(len(order)) - indptr[row_of]
    chosen = weights.indices[order[rank < k]]
    words = np.empty(len(vocabulary), dtype=object)
    for word, index in vocabulary.items():
        words[index] = word
    chosen_words = words[chosen].tolist()
    ends = np.cumsum(np.minimum(row_lengths, k)).tolist()
    starts = [0] + ends[:-1]
    return [chosen_words[s:e] for s, e in zip(starts, ends)]


def extract_keywords(texts: Sequence[str], k: int = DEFAULT_TOP_K, lemmatizer: Lemmatizer | None = None) -> list[list[str]]:
    """Keywords for a list of texts in one call (the pipeline streams the same steps in chunks)."""
    lemmatizer = lemmatizer or Lemmatizer()
    counts = LemmaCounts()
    counts.add(lemmatizer.content_lemmas(text) for text in texts)
    return top_keywords(counts.matrix(), counts.vocabulary, k)
