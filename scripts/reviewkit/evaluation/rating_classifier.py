"""evaluate.py's rating classifier: TF-IDF of words and bigrams + logistic regression, held as plain arrays.

It is fitted with scikit-learn and then kept only as what prediction needs: the vocabulary, its
idf weights and the regression's coefficients, intercepts and classes. Those are JSON text and
numeric arrays, so the classifier can be stored without pickle, and they are put back into the
same scikit-learn objects, which then predict exactly as the fitted ones.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

VECTORIZER = {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True, "max_features": 200_000}
# The default lbfgs solver is deterministic and ignores random_state: the fit depends on the data alone.
REGRESSION = {"max_iter": 2000}
# A stored classifier made with other settings (or another scikit-learn) is fitted again.
SETTINGS = f"tfidf {VECTORIZER}, logistic regression {REGRESSION}, scikit-learn {sklearn.__version__}"


class RatingClassifier:
    """Predicts a review's rating from its text; `fit` learns it, `to_arrays`/`from_arrays` store and restore it."""

    def __init__(self, terms: Sequence[str], idf: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                 classes: np.ndarray):
        """`terms[i]`: the word or bigram of feature i; the arrays: the fitted idf_, coef_, intercept_, classes_."""
        if coef.ndim != 2 or coef.shape != (len(intercept), len(terms)) or len(classes) != max(2, len(intercept)):
            raise ValueError(f"coefficients of shape {coef.shape} do not fit {len(terms)} terms, "
                             f"{len(intercept)} intercepts and {len(classes)} classes")
        self._terms = list(terms)
        self._vectorizer = TfidfVectorizer(**VECTORIZER, vocabulary=self._terms)
        self._vectorizer.idf_ = idf  # the setter checks that there is one weight per term
        self._regression = LogisticRegression(**REGRESSION)
        self._regression.classes_, self._regression.coef_, self._regression.intercept_ = classes, coef, intercept

    @classmethod
    def fit(cls, texts: Sequence[str], ratings: Sequence[int]) -> RatingClassifier:
        vectorizer = TfidfVectorizer(**VECTORIZER)
        regression = LogisticRegression(**REGRESSION).fit(vectorizer.fit_transform(list(texts)), list(ratings))
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
        return cls(terms, vectorizer.idf_, regression.coef_, regression.intercept_, regression.classes_)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self._regression.predict(self._vectorizer.transform(list(texts)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything the classifier is, as arrays np.save writes without pickle (the terms as UTF-8 JSON bytes)."""
        terms = json.dumps(self._terms, ensure_ascii=False).encode("utf-8")
        return {"terms": np.frombuffer(terms, dtype=np.uint8), "idf": self._vectorizer.idf_,
                "coef": self._regression.coef_, "intercept": self._regression.intercept_,
                "classes": self._regression.classes_}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RatingClassifier:
        """The classifier `to_arrays` gave; ValueError or KeyError when the arrays are not such a classifier."""
        terms = json.loads(arrays["terms"].tobytes().decode("utf-8"))
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ValueError("the terms are not a list of strings")
        return cls(terms, arrays["idf"], arrays["coef"], arrays["intercept"], arrays["classes"])
