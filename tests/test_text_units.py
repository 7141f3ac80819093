"""Cleaning, keywords, prompt and split units on inputs whose right answer is known."""

import numpy as np
import pytest

from reviewkit.data.cleaning import CleaningConfig, clean_text, cyrillic_share, normalize_text, parse_rating
from reference import extract_keywords
from reviewkit.data.prompt import build_prompt
from reviewkit.data.splits import grouped_split, organization_keys


def test_normalize_keeps_case_and_punctuation():
    raw = "  «Отличное»\\nместо!!!\x07 Кофе — “супер”,\tцены ‘ок’  "
    assert normalize_text(raw) == "\"Отличное\" место!!! Кофе — \"супер\", цены 'ок'"


@pytest.mark.parametrize("value, expected", [
    ("5.", (5, None)), (" 4 ", (4, None)), (3.0, (3, None)), (1, (1, None)),
    (None, (None, "rating_missing")), ("", (None, "rating_missing")), ("abc", (None, "rating_not_a_number")),
    ("nan", (None, "rating_not_a_number")), ("0.", (None, "rating_zero_no_score")),
    ("-1", (None, "rating_out_of_range")), ("6", (None, "rating_out_of_range")),
    ("inf", (None, "rating_out_of_range")), ("2.5", (None, "rating_not_integer")),
])
def test_parse_rating(value, expected):
    assert parse_rating(value) == expected


def test_cyrillic_share_and_language_rule():
    assert cyrillic_share("Кофе") == 1.0
    assert cyrillic_share("Great coffee") == 0.0
    assert cyrillic_share("12345 !!!") == 0.0
    assert cyrillic_share("Кофе в Starbucks") == pytest.approx(5 / 14)
    config = CleaningConfig(min_chars=5, max_chars=100, min_cyrillic_share=0.6)
    assert clean_text("Отличный кофе в Starbucks, рекомендую", config) == ("Отличный кофе в Starbucks, рекомендую", None)
    assert clean_text("Nice coffee at the Арбат", config) == (None, "not_russian")


def test_keywords_are_lemmas_without_stop_words_ranked_by_tfidf(lemmatizer):
    texts = [
        "Очень вкусные десерты и вкусный кофе, кафе хорошее",
        "Кафе уютное, официанты вежливые",
        "Кафе шумное, официант грубил",
    ]
    keywords = extract_keywords(texts, k=3, lemmatizer=lemmatizer)
    assert keywords[0][0] == "вкусный"  # twice in the review, nowhere else
    assert "десерт" in keywords[0] and "очень" not in keywords[0] and "хороший" not in keywords[0]
    assert all("кафе" not in kw[:2] for kw in keywords)  # in every review: lowest IDF
    assert keywords == extract_keywords(texts, k=3, lemmatizer=lemmatizer)


def test_keywords_of_a_text_without_content_words(lemmatizer):
    assert extract_keywords(["и в на", "Кофе вкусный"], k=2, lemmatizer=lemmatizer) == [[], ["кофе", "вкусный"]]


def test_prompt_format_and_validation():
    assert build_prompt(5, "Кафе;Кофейня", ["кофе", "десерт"]) == (
        "рейтинг: 5 | рубрики: Кафе; Кофейня | ключевые слова: кофе, десерт")
    assert build_prompt(4, ["Кафе"], "кофе, десерт") == build_prompt(4, "Кафе", ["кофе", " десерт"])
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match="rating"):
            build_prompt(bad, "Кафе", "кофе")


def test_grouped_split_keeps_organizations_whole_and_is_seeded():
    rng = np.random.default_rng(0)
    names = [f"org{int(i)}" for i in rng.integers(0, 400, size=5000)]
    groups = organization_keys(names, ["addr"] * len(names))
    split = grouped_split(groups, 0.1, 0.1, seed=3)
    for g in set(groups):
        assert len({split[i] for i, x in enumerate(groups) if x == g}) == 1
    shares = np.bincount(split, minlength=3) / len(split)
    assert shares[1] == pytest.approx(0.1, abs=0.02) and shares[2] == pytest.approx(0.1, abs=0.02)
    assert (split == grouped_split(groups, 0.1, 0.1, seed=3)).all()
    assert (split != grouped_split(groups, 0.1, 0.1, seed=4)).any()
    assert (grouped_split(groups, 0.0, 0.0, seed=3) == 0).all()


def test_rows_without_organization_are_each_their_own_group():
    assert len(set(organization_keys(["", ""], ["", ""]))) == 2
