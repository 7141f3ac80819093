"""The model input: one function used both to build training examples and at generation time."""

from __future__ import annotations

from typing import Sequence

MIN_RATING, MAX_RATING = 1, 5


def build_prompt(rating: int, rubrics: str | Sequence[str], keywords: str | Sequence[str]) -> str:
    """`рейтинг: 5 | рубрики: Кафе; Кофейня | ключевые слова: кофе, десерт`.

    `rubrics` may be the dataset's `;`-separated string or a list; `keywords` a
    comma-separated string or a list.
    """
    if isinstance(rating, bool) or int(rating) != rating or not MIN_RATING <= rating <= MAX_RATING:
        raise ValueError(f"rating must be an integer from {MIN_RATING} to {MAX_RATING}, got {rating!r}")
    if isinstance(rubrics, str):
        rubrics = rubrics.split(";")
    if isinstance(keywords, str):
        keywords = keywords.split(",")
    rubric_text = "; ".join(r.strip() for r in rubrics if r.strip())
    keyword_text = ", ".join(k.strip() for k in keywords if k.strip())
    return f"рейтинг: {int(rating)} | рубрики: {rubric_text} | ключевые слова: {keyword_text}"
