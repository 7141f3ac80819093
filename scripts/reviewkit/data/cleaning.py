"""Normalise review text and decide, with a named reason, which rows to drop.

All thresholds live in `CleaningConfig`; `prepare_data.py` exposes each one as a flag.
Exact duplicates need the whole corpus and are dropped by the pipeline, not here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

# Drop reasons decided per row.
RATING_MISSING = "rating_missing"
RATING_NOT_A_NUMBER = "rating_not_a_number"
RATING_ZERO = "rating_zero_no_score"
RATING_NOT_INTEGER = "rating_not_integer"
RATING_OUT_OF_RANGE = "rating_out_of_range"
TEXT_MISSING = "text_missing"
TEXT_EMPTY = "text_empty"
TEXT_TOO_SHORT = "text_too_short"
TEXT_TOO_LONG = "text_too_long"
NOT_RUSSIAN = "not_russian"


@dataclass(frozen=True)
class CleaningConfig:
    min_chars: int = 20
    max_chars: int = 2000
    # Share of Cyrillic among all letters; a review in Russian with a brand name or two passes.
    min_cyrillic_share: float = 0.6


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ufffe\uffff]")
_WHITESPACE = re.compile(r"\s+")
_QUOTE_REPLACEMENTS = {**dict.fromkeys("«»„“”‟″", '"'), **dict.fromkeys("‘’‚‛′", "'")}
_QUOTES = re.compile(f"[{''.join(_QUOTE_REPLACEMENTS)}]")
_NOT_LETTER = re.compile(r"[\W\d_]+")
_NOT_CYRILLIC_LETTER = re.compile(r"[^\W\d_а-яёА-ЯЁ]")
_CYRILLIC = re.compile("[а-яёА-ЯЁ]")


def normalize_text(text: str) -> str:
    """Unescape line breaks, drop control characters, unify quotes, collapse whitespace.

    Line breaks become spaces: the T5 sentencepiece vocabulary cannot produce them.
    Case, punctuation and wording stay as written.
    """
    text = text.replace("\\r\\n", " ").replace("\\n", " ").replace("\\t", " ")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    text = _QUOTES.sub(lambda match: _QUOTE_REPLACEMENTS[match.group()], text)
    return _WHITESPACE.sub(" ", text).strip()


def parse_rating(value) -> tuple[int | None, str | None]:
    """Return (rating 1..5, None) or (None, drop reason). Accepts 5, 5.0, '5.', ' 4 '."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, RATING_MISSING
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None, RATING_NOT_A_NUMBER
    if math.isnan(number):
        return None, RATING_NOT_A_NUMBER
    if number == 0:
        return None, RATING_ZERO
    if not 1 <= number <= 5:
        return None, RATING_OUT_OF_RANGE
    if number != int(number):
        return None, RATING_NOT_INTEGER
    return int(number), None


def cyrillic_share(text: str) -> float:
    """Share of Cyrillic among the letters of `text` (0 when it has no letters)."""
    if _NOT_CYRILLIC_LETTER.search(text) is None:  # the common case: no other script at all
        return 1.0 if _CYRILLIC.search(text) else 0.0
    letters = len(_NOT_LETTER.sub("", text))
    return (letters - len(_NOT_CYRILLIC_LETTER.findall(text))) / letters


def clean_text(value, config: CleaningConfig) -> tuple[str | None, str | None]:
    """Return (normalised text, None) or (None, drop reason)."""
    if value is None:
        return None, TEXT_MISSING
    text = normalize_text(str(value))
    if not text:
        return None, TEXT_EMPTY
    if len(text) < config.min_chars:
        return None, TEXT_TOO_SHORT
    if len(text) > config.max_chars:
        return None, TEXT_TOO_LONG
    if cyrillic_share(text) < config.min_cyrillic_share:
        return None, NOT_RUSSIAN
    return text, None


def clean_field(value) -> str:
    """Normalise an optional text field (address, name, rubrics); missing becomes ''."""
    return normalize_text(str(value)) if value is not None else ""


def split_rubrics(rubrics: str) -> list[str]:
    return [r.strip() for r in rubrics.split(";") if r.strip()]


def parse_ratings_filter(value: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2): the ratings a dataset is restricted to; ValueError with a one-line reason."""
    try:
        ratings = tuple(sorted({int(part) for part in str(value).split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"expected ratings like 1,2, got {value!r}") from None
    if not ratings or not all(1 <= r <= 5 for r in ratings):
        raise ValueError(f"ratings must be from 1 to 5, got {value!r}")
    return ratings
