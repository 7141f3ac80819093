"""evaluate.py's copy check: does a generated review (nearly) repeat a training review?

Each text becomes its vector of hashed word-trigram counts scaled to unit length; a text is
copied when its cosine similarity with some training review is at least COPY_SIMILARITY
(paraphrase is not caught). The training side is built once into a CopyIndex, a sparse matrix
with one row per training review, which `to_arrays`/`from_arrays` store as plain numeric arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize
from tqdm import tqdm

COPY_SIMILARITY = 0.8
HASHING = {"analyzer": "word", "ngram_range": (3, 3), "norm": None, "alternate_sign": False, "n_features": 2**22}
# An index made with other settings (or another scikit-learn, whose hashing could differ) is built again.
SETTINGS = f"hashed word trigrams {HASHING}, scikit-learn {sklearn.__version__}"
CHUNK_ROWS = 20_000  # training rows vectorised, or compared with, at a time: bounds the temporary matrices


def trigram_vectors(texts: Sequence[str]) -> sp.csr_matrix:
    """One unit-length row of hashed word-trigram counts per text (a text without trigrams: a zero row)."""
    return normalize(HashingVectorizer(**HASHING).transform(texts))


class CopyIndex:
    """The trigram vectors of the training reviews."""

    def __init__(self, vectors: sp.csr_matrix):
        self.vectors = vectors

    @classmethod
    def build(cls, training_texts: Sequence[str]) -> CopyIndex:
        """Vectorise the training reviews chunk by chunk, with a progress bar."""
        chunks = [sp.csr_matrix((0, HASHING["n_features"]))]
        with tqdm(total=len(training_texts), desc="copy index", unit=" reviews", mininterval=1.0) as bar:
            for start in range(0, len(training_texts), CHUNK_ROWS):
                chunks.append(trigram_vectors(training_texts[start:start + CHUNK_ROWS]))
                bar.update(chunks[-1].shape[0])
        return cls(sp.vstack(chunks, format="csr"))

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def copied(self, texts: Sequence[str], threshold: float = COPY_SIMILARITY) -> np.ndarray:
        """Per text: True if some training review shares word trigrams with cosine similarity >= threshold."""
        generated = trigram_vectors(texts)
        result = np.zeros(len(texts), dtype=bool)
        for start in range(0, len(self), CHUNK_ROWS):
            similarity = (generated @ self.vectors[start:start + CHUNK_ROWS].T).max(axis=1).toarray().ravel()
            result |= similarity >= threshold
        return result

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The sparse matrix as its CSR arrays and shape, which np.save writes without pickle."""
        return {"data": self.vectors.data, "indices": self.vectors.indices, "indptr": self.vectors.indptr,
                "shape": np.asarray(self.vectors.shape, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CopyIndex:
        """The index `to_arrays` gave; ValueError or KeyError when the arrays are not such an index."""
        shape = tuple(int(n) for n in arrays["shape"])
        if len(shape) != 2 or shape[1] != HASHING["n_features"]:
            raise ValueError(f"an index of shape {shape} is not one of {HASHING['n_features']} hashed trigrams")
        vectors = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        vectors.check_format(full_check=True)  # out-of-range indices would otherwise surface in the first product
        return cls(vectors)
