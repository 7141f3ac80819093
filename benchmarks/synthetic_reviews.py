"""Synthetic reviews with the statistics that make the data step slow or fast.

Word forms are drawn from pymorphy3's own dictionary (real inflected Russian forms, hundreds
of thousands of them) with Zipf frequencies, mixed with frequent function words; 3% of
content words get a typo (a random edit), which gives the long tail of one-off forms that
the real corpus has. Lengths are log-normal (median ~28 words, mean ~300 characters as in the real set, long right tail), ratings
skewed to 5, organization sizes skewed. Deterministic for a seed. Nothing here is review text
from anywhere: only dictionary word forms in random order.
"""

from __future__ import annotations

import numpy as np

FUNCTION_WORDS = (
    "и в не на что с по очень но все это как а было так за к у же из для мы там вы они был тут "
    "еще уже только бы всё когда всегда если нет да или даже их его её там здесь"
).split()
RUBRICS = ("Кафе", "Ресторан", "Кофейня", "Парикмахерская", "Салон красоты", "Автосервис", "Гостиница",
           "Аптека", "Супермаркет", "Фитнес-клуб", "Стоматологическая клиника", "Магазин продуктов")
CITIES = ("Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Нижний Новгород")
RATING_SHARES = {1: 0.10, 2: 0.04, 3: 0.06, 4: 0.12, 5: 0.68}
CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
TYPO_RATE = 0.03
FORMS_PER_PREFIX = 400


def dictionary_forms(rng: np.random.Generator) -> list[str]:
    """Real Russian word forms from pymorphy3's dictionary, spread over the alphabet."""
    import pymorphy3

    words = pymorphy3.MorphAnalyzer().dictionary.words
    forms = []
    for first in CYRILLIC:
        for second in CYRILLIC:
            for i, form in enumerate(words.iterkeys(first + second)):
                if i >= FORMS_PER_PREFIX:
                    break
                if len(form) >= 3 and "-" not in form:
                    forms.append(form)
    return [forms[i] for i in rng.permutation(len(forms))]


def _typo(word: str, rng: np.random.Generator) -> str:
    pos = int(rng.integers(len(word)))
    kind = int(rng.integers(3))
    letter = CYRILLIC[int(rng.integers(len(CYRILLIC)))]
    if kind == 0:
        return word[:pos] + letter + word[pos + 1:]
    if kind == 1:
        return word[:pos] + word[pos + 1:] if len(word) > 3 else word + letter
    return word[:pos] + letter + word[pos:]


def review_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    forms = dictionary_forms(rng)
    weights = 1.0 / (np.arange(len(forms)) + 10.0) ** 1.05
    weights /= weights.sum()
    lengths = np.clip(rng.lognormal(np.log(28), 0.8, n).astype(int), 3, 400)
    total = int(lengths.sum())
    content = rng.choice(len(forms), size=total, p=weights)
    is_function = rng.random(total) < 0.4
    function = rng.integers(len(FUNCTION_WORDS), size=total)
    typos = rng.random(total) < TYPO_RATE
    punctuation = rng.random(total)
    texts, start = [], 0
    for length in lengths.tolist():
        words = []
        sentence_start = True
        for j in range(start, start + length):
            word = FUNCTION_WORDS[function[j]] if is_function[j] else forms[content[j]]
            if typos[j] and not is_function[j]:
                word = _typo(word, rng)
            if sentence_start:
                word = word.capitalize()
            sentence_start = punctuation[j] < 0.08
            words.append(word + ("." if sentence_start else "," if punctuation[j] < 0.14 else ""))
        texts.append(" ".join(words).rstrip(",.") + ("!" if length % 3 == 0 else "."))
        start += length
    return texts


def tskv_lines(n: int, seed: int = 0) -> list[str]:
    """n reviews in the official TSKV format."""
    rng = np.random.default_rng(seed + 1)
    n_orgs = max(1, n // 5)
    # Skewed organization sizes: the largest has ~n/sqrt(n_orgs) reviews, most have a few.
    orgs = (n_orgs * rng.random(n) ** 2).astype(int)
    ratings = rng.choice(list(RATING_SHARES), size=n, p=list(RATING_SHARES.values()))
    lines = []
    for text, org, rating in zip(review_texts(n, seed), orgs.tolist(), ratings.tolist()):
        city = CITIES[org % len(CITIES)]
        rubrics = ";".join(RUBRICS[(org + k) % len(RUBRICS)] for k in range(1 + org % 2))
        lines.append(
            f"address={city}, улица Номер {org % 997}, {org // 997 + 1}\tname_ru=Организация {org}\t"
            f"rating={rating}.\trubrics={rubrics}\ttext={text}"
        )
    return lines
