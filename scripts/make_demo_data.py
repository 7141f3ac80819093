"""Generate the small synthetic demo dataset in the Yandex Geo Reviews 2023 TSKV format.

    python scripts/make_demo_data.py                       # writes data/demo_reviews.tskv
    python scripts/make_demo_data.py --n_reviews 500 --seed 1 --output /tmp/small.tskv

Everything here is project-authored: organization names are invented, addresses are built from
common Russian street names, and every review text is composed from the templates in
data/demo_templates.json (rubric families, aspects, sentences per rating, cities and streets;
--templates reads another file of the same shape). No real review is copied. The same seed and
templates always give a byte-identical file; the templates are drawn from in file order, so
reordering or editing them changes the output.

Format (as in the official dataset): one review per line, tab-separated `key=value` pairs in the
order address, name_ru, rating, rubrics, text. The rating is written as an integer with a dot
(`rating=5.`), rubrics are joined by `;` without spaces, and line breaks inside a text are written
as the two characters `\\n`. UTF-8, `\n` line endings, final newline.

Shape of the data (defaults): 4000 lines over ~300 organizations (name_ru + address pairs,
skewed review counts, some brands are chains with several branches), 11 rubric families, some
organizations with two rubrics. Ratings follow the real skew: 5: 65%, 4: 13%, 3: 7%, 2: 5%,
1: 10%. Wording depends on the rating (1-2 negative, 3 mixed, 4 positive with a small complaint,
5 enthusiastic) and on the rubric (rubric-specific aspects).

Realistic quirks, injected deterministically (rates of --n_reviews; the summary prints counts):
  * DUPLICATE_RATE        ~1%    exact copies of an earlier review, placed later in the file:
                                 half the same line, half the same text under another branch
                                 of the same chain (same name_ru, other address)
  * NO_RATING_RATE        ~0.5%  `rating=0.` (the author gave no score); the text is unchanged
  * SHORT_TEXT_RATE       ~0.5%  very short texts such as `Норм` or `Супер!`
  * LATIN_TEXT_RATE       ~0.3%  texts in English only, e.g. `Great coffee, nice staff.`
  * TYPOGRAPHIC_QUOTES_EVERY     one review in this many gets «…» or “…” quotes
  * DOUBLE_SPACE_EVERY           one review in this many gets a double space after a full stop
  * NEWLINE_RATE          ~10%   composed reviews with an escaped `\\n` between sentences
Malformed lines are never written here; broken inputs live in the test fixtures.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from reviewkit.common.cli import ArgumentParser, add_hidden_alias, int_in
from reviewkit.common.errors import InputError
from reviewkit.common.files import atomic_write_text
from reviewkit.common.paths import PROJECT_ROOT

# ---------------------------------------------------------------------------------------------
# Defaults and rates
# ---------------------------------------------------------------------------------------------

DEFAULT_OUTPUT = PROJECT_ROOT / "data" / "demo_reviews.tskv"
DEFAULT_TEMPLATES = PROJECT_ROOT / "data" / "demo_templates.json"
DEFAULT_N_REVIEWS = 4000
DEFAULT_SEED = 0

REVIEWS_PER_ORG = 13.3  # ~300 organizations for 4000 reviews
RATING_SHARES = {5: 0.65, 4: 0.13, 3: 0.07, 2: 0.05, 1: 0.10}

DUPLICATE_RATE = 0.01
NO_RATING_RATE = 0.005
SHORT_TEXT_RATE = 0.005
LATIN_TEXT_RATE = 0.003
TYPOGRAPHIC_QUOTES_EVERY = 400
DOUBLE_SPACE_EVERY = 700
NEWLINE_RATE = 0.10

FEMALE_REVIEWER_SHARE = 0.55
TWO_RUBRIC_SHARE = 0.2
NAME_PREFIX_SHARE = 0.4
REGION_IN_ADDRESS_SHARE = 0.25  # "Республика Татарстан, Казань, ..." vs "Казань, ..."
POPULARITY_SIGMA = 0.9  # log-normal spread of reviews per organization

# ---------------------------------------------------------------------------------------------
# Templates (data/demo_templates.json)
#
# Mini-language of the sentence templates (openers, closers, context, aspects):
#   [m|f]      reviewer gender: "[Был|Была] здесь"
#   <m|f|n>    grammatical gender of the venue noun: "<Отличный|Отличная|Отличное> {venue}"
#   {venue} {venue_acc} {venue_prep}   venue noun in nominative / accusative / prepositional
#   {name}     the organization's name_ru (only used inside quotes)
# Every template is a whole sentence, so no agreement is ever glued across pieces.
# Aspect buckets: pos (ratings 4-5), minor (small complaint, ratings 4 and 3), mixed (ratings 3
# and 2), neg (ratings 1-3). Lead-ins (minor_leads, downside_leads) precede a minor complaint or
# a downside, whose first letter is then lower-cased; the empty lead-in keeps it as it is.
# ---------------------------------------------------------------------------------------------

RATINGS = ("1", "2", "3", "4", "5")
ASPECT_BUCKETS = ("pos", "minor", "mixed", "neg")
SENTIMENTS = ("pos", "mid", "neg")

_REVIEWER_FORM = re.compile(r"\[([^|\]]*)\|([^\]]*)\]")
_VENUE_FORM = re.compile(r"<([^|>]*)\|([^|>]*)\|([^>]*)>")
_LEFTOVER_MARKUP = re.compile(r"[\[\]<>{}\\\t\r\n]")


class TemplateError(InputError):
    """The templates file is missing, not JSON, or not in the expected shape (one-line message)."""


@dataclass(frozen=True)
class Venue:
    nom: str
    acc: str
    prep: str
    gender: str  # "m", "f" or "n"


@dataclass(frozen=True)
class Family:
    """A rubric family: its rubric and possible second rubrics, how the venue is named in a
    sentence, name prefixes, invented brands, visit context sentences and aspects."""

    rubric: str
    second: list[str]
    venue: Venue
    prefixes: list[str]
    weight: float  # relative share of organizations
    chain: float  # chance that a new organization is one more branch of an existing brand
    brands: list[str]
    context: list[str]
    aspects: dict[str, dict[str, list[str]]]  # aspect -> bucket -> sentences
    latin: dict[str, str]  # "pos"/"neg" -> the family's English-only sentence


@dataclass(frozen=True)
class City:
    region: str  # "" for cities written without a region
    name: str
    streets: list[str]  # city-specific; generic streets are mixed in everywhere
    weight: float


@dataclass(frozen=True)
class Templates:
    openers: dict[int, list[str]]
    closers: dict[int, list[str]]
    minor_leads: list[str]
    downside_leads: list[str]
    generic_aspects: dict[str, dict[str, list[str]]]  # aspects shared by all families
    families: dict[str, Family]
    cities: list[City]
    generic_streets: list[str]
    short_texts: dict[int, list[str]]  # very short texts by rating
    latin_generic: dict[str, list[str]]  # English-only texts by sentiment
    quote_sentences: dict[str, list[str]]  # sentences with typographic quotes by sentiment


def _where(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _object(value: object, where: str, keys: tuple[str, ...] | None = None) -> dict:
    """A JSON object; with `keys`, exactly those keys (plus comment keys starting with "_")."""
    if not isinstance(value, dict):
        raise TemplateError(f"{where or 'top level'}: expected an object")
    for key in keys or ():
        if key not in value:
            raise TemplateError(f"{where + ': ' if where else ''}missing key {key!r}")
    extra = [k for k in value if keys is not None and k not in keys and not k.startswith("_")]
    if extra:
        raise TemplateError(f"{where + ': ' if where else ''}unknown key {extra[0]!r}")
    return {k: v for k, v in value.items() if not k.startswith("_")}


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{where}: expected a string")
    if any(c in value for c in "\t\r\n"):
        raise TemplateError(f"{where}: tab or line break in {value!r}")
    return value


def _texts(value: object, where: str, min_len: int = 1) -> list[str]:
    if not isinstance(value, list):
        raise TemplateError(f"{where}: expected a list of strings")
    if len(value) < min_len:
        entries = "entry" if min_len == 1 else "entries"
        raise TemplateError(f"{where}: needs at least {min_len} {entries}")
    return [_text(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _number(value: object, where: str, upper: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (upper is not None and value > upper):
        bounds = f"a number from 0 to {upper:g}" if upper is not None else "a number >= 0"
        raise TemplateError(f"{where}: expected {bounds}, got {value!r}")
    return value


def _by_key(value: object, where: str, keys: tuple[str, ...], min_len: int = 1) -> dict:
    return {k: _texts(v, _where(where, k), min_len) for k, v in _object(value, where, keys).items()}


def _aspects(value: object, where: str) -> dict[str, dict[str, list[str]]]:
    aspects = {name: _by_key(buckets, _where(where, name), ASPECT_BUCKETS)
               for name, buckets in _object(value, where).items()}
    if not aspects:
        raise TemplateError(f"{where}: needs at least one aspect")
    return aspects


def _family(value: object, where: str) -> Family:
    spec = _object(value, where, ("rubric", "second", "venue", "prefixes", "weight", "chain",
                                  "brands", "context", "aspects", "latin"))
    venue = _object(spec["venue"], _where(where, "venue"), ("nom", "acc", "prep", "gender"))
    venue = Venue(**{k: _text(v, _where(where, f"venue.{k}")) for k, v in venue.items()})
    if venue.gender not in ("m", "f", "n"):
        raise TemplateError(f"{where}.venue.gender: expected \"m\", \"f\" or \"n\"")
    latin = _object(spec["latin"], _where(where, "latin"), ("pos", "neg"))
    return Family(
        rubric=_text(spec["rubric"], _where(where, "rubric")),
        second=_texts(spec["second"], _where(where, "second")),
        venue=venue,
        prefixes=_texts(spec["prefixes"], _where(where, "prefixes")),
        weight=_number(spec["weight"], _where(where, "weight")),
        chain=_number(spec["chain"], _where(where, "chain"), upper=1),
        brands=_texts(spec["brands"], _where(where, "brands")),
        context=_texts(spec["context"], _where(where, "context")),
        aspects=_aspects(spec["aspects"], _where(where, "aspects")),
        latin={k: _text(v, _where(where, f"latin.{k}")) for k, v in latin.items()},
    )


def _city(value: object, where: str) -> City:
    spec = _object(value, where, ("region", "city", "streets", "weight"))
    return City(_text(spec["region"], _where(where, "region")),
                _text(spec["city"], _where(where, "city")),
                _texts(spec["streets"], _where(where, "streets")),
                _number(spec["weight"], _where(where, "weight")))


def parse_templates(raw: object) -> Templates:
    """Check the shape of the loaded JSON and build Templates; TemplateError says what is wrong."""
    top = _object(raw, "", ("openers", "closers", "minor_leads", "downside_leads",
                            "generic_aspects", "families", "cities", "generic_streets",
                            "short_texts", "latin_generic", "quote_sentences"))
    by_rating = {key: {int(r): texts for r, texts in _by_key(top[key], key, RATINGS).items()}
                 for key in ("openers", "closers", "short_texts")}
    families = {name: _family(spec, f"families.{name}")
                for name, spec in _object(top["families"], "families").items()}
    if not isinstance(top["cities"], list):
        raise TemplateError("cities: expected a list of objects")
    templates = Templates(
        openers=by_rating["openers"],
        closers=by_rating["closers"],
        minor_leads=_texts(top["minor_leads"], "minor_leads"),
        downside_leads=_texts(top["downside_leads"], "downside_leads"),
        generic_aspects=_aspects(top["generic_aspects"], "generic_aspects"),
        families=families,
        cities=[_city(c, f"cities[{i}]") for i, c in enumerate(top["cities"])],
        generic_streets=_texts(top["generic_streets"], "generic_streets"),
        short_texts=by_rating["short_texts"],
        latin_generic=_by_key(top["latin_generic"], "latin_generic", SENTIMENTS, min_len=2),
        quote_sentences=_by_key(top["quote_sentences"], "quote_sentences", SENTIMENTS),
    )
    if not families or not templates.cities:
        raise TemplateError("families and cities need at least one entry each")
    if not any(f.weight for f in families.values()) or not any(c.weight for c in templates.cities):
        raise TemplateError("family and city weights must not all be 0")
    _check_markup(templates)
    return templates


def _check_markup(t: Templates) -> None:
    """Render every sentence template with every venue and both reviewer genders, so that a
    markup mistake is reported here and not in the middle of a run."""
    sentences = ([(f"openers.{r}", s) for r, ss in t.openers.items() for s in ss]
                 + [(f"closers.{r}", s) for r, ss in t.closers.items() for s in ss])
    aspects = [("generic_aspects", t.generic_aspects)]
    for name, family in t.families.items():
        sentences += [(f"families.{name}.context", s) for s in family.context]
        aspects.append((f"families.{name}.aspects", family.aspects))
    sentences += [(f"{where}.{aspect}.{bucket}", s) for where, by_aspect in aspects
                  for aspect, buckets in by_aspect.items()
                  for bucket, texts in buckets.items() for s in texts]
    venues = {family.venue for family in t.families.values()}
    for where, template in sentences:
        for venue in venues:
            for gender in ("m", "f"):
                try:
                    render(template, gender, venue, "Название")
                except ValueError:
                    raise TemplateError(f"{where}: bad markup in {template!r}") from None
    plain = ([("minor_leads", s) for s in t.minor_leads]
             + [("downside_leads", s) for s in t.downside_leads]
             + [(f"short_texts.{r}", s) for r, ss in t.short_texts.items() for s in ss]
             + [(f"latin_generic.{k}", s) for k, ss in t.latin_generic.items() for s in ss]
             + [(f"quote_sentences.{k}", s.replace("{name}", ""))
                for k, ss in t.quote_sentences.items() for s in ss])
    for where, text in plain:
        if _LEFTOVER_MARKUP.search(text):
            raise TemplateError(f"{where}: markup is not allowed in {text!r}")


def load_templates(path: Path) -> Templates:
    """Read and check a templates file; every problem becomes a one-line TemplateError."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise TemplateError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise TemplateError(f"{path}: not valid JSON: {e.msg} at line {e.lineno} "
                            f"column {e.colno}") from None
    try:
        return parse_templates(raw)
    except TemplateError as e:
        raise TemplateError(f"{path}: {e}") from None

# ---------------------------------------------------------------------------------------------
# Data structures and helpers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Org:
    family: str
    brand: str
    name_ru: str
    address: str
    rubrics: tuple[str, ...]


@dataclass
class Review:
    org: Org
    rating: int
    text: str
    quirk: str = ""  # "", "no_rating", "short", "latin", "quotes", "double_space", "duplicate"


def render(template: str, gender: str, venue: Venue, name: str) -> str:
    """Fill the template mini-language for one reviewer gender and one venue."""
    text = _REVIEWER_FORM.sub(lambda m: m.group(1) if gender == "m" else m.group(2), template)
    venue_index = {"m": 1, "f": 2, "n": 3}[venue.gender]
    text = _VENUE_FORM.sub(lambda m: m.group(venue_index), text)
    text = (text.replace("{venue}", venue.nom).replace("{venue_acc}", venue.acc)
            .replace("{venue_prep}", venue.prep).replace("{name}", name))
    if _LEFTOVER_MARKUP.search(text):
        raise ValueError(f"unfilled template: {template!r} -> {text!r}")
    return text[:1].upper() + text[1:]


def lower_first(sentence: str) -> str:
    return sentence[:1].lower() + sentence[1:]


def allocate(total: int, shares: dict[int, float]) -> dict[int, int]:
    """Split `total` into integer counts proportional to `shares` (largest remainder)."""
    raw = {key: total * share / sum(shares.values()) for key, share in shares.items()}
    counts = {key: int(value) for key, value in raw.items()}
    by_remainder = sorted(raw, key=lambda key: (counts[key] - raw[key], key))
    for key in by_remainder[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def weighted_sample(rng: random.Random, items: list, weights: list[float], k: int) -> list:
    """Pick k distinct items with probability proportional to weight."""
    items, weights, chosen = list(items), list(weights), []
    for _ in range(min(k, len(items))):
        index = rng.choices(range(len(items)), weights=weights)[0]
        chosen.append(items.pop(index))
        weights.pop(index)
    return chosen


def tskv_line(org: Org, rating: int, text: str) -> str:
    """Format one review as an official TSKV line (without the trailing newline)."""
    values = [org.address, org.name_ru, f"{rating}.", ";".join(org.rubrics), text]
    for value in values:
        if "\t" in value or "\n" in value or "\r" in value:
            raise ValueError(f"raw tab or line break in value: {value!r}")
    keys = ("address", "name_ru", "rating", "rubrics", "text")
    return "\t".join(f"{key}={value}" for key, value in zip(keys, values))


# ---------------------------------------------------------------------------------------------
# Organizations
# ---------------------------------------------------------------------------------------------


def pick_city(rng: random.Random, tpl: Templates) -> City:
    return rng.choices(tpl.cities, weights=[c.weight for c in tpl.cities])[0]


def make_address(rng: random.Random, used: set[str], tpl: Templates,
                 city: City | None = None) -> str:
    city = city or pick_city(rng, tpl)
    while True:
        street = rng.choice(city.streets + tpl.generic_streets[: len(city.streets) + 2])
        house = str(rng.randint(1, 40) if rng.random() < 0.75 else rng.randint(41, 160))
        suffix = rng.choices(["", "к1", "к2", "А", "/2", ", стр. 1", ", стр. 3"],
                             weights=[80, 5, 4, 4, 3, 2, 2])[0]
        with_region = city.region and rng.random() < REGION_IN_ADDRESS_SHARE
        parts = ([city.region] if with_region else []) + [city.name, street, house + suffix]
        address = ", ".join(parts)
        if address not in used:
            used.add(address)
            return address


def make_orgs(rng: random.Random, n_orgs: int, tpl: Templates) -> list[Org]:
    """Invent n_orgs organizations; chain-prone families reuse brands at several addresses."""
    counts = allocate(n_orgs, {name: family.weight for name, family in tpl.families.items()})
    used_addresses: set[str] = set()
    orgs: list[Org] = []
    for family, spec in tpl.families.items():
        brand_names: dict[str, str] = {}
        brand_rubrics: dict[str, tuple[str, ...]] = {}
        brand_city: dict[str, City] = {}
        for _ in range(counts[family]):
            used = list(brand_names)
            if used and (rng.random() < spec.chain or len(used) == len(spec.brands)):
                brand = rng.choice(used[:4])  # the first few brands grow into chains
            else:
                brand = rng.choice([b for b in spec.brands if b not in brand_names])
            if brand not in brand_names:
                prefixed = " " not in brand and rng.random() < NAME_PREFIX_SHARE
                prefix = rng.choice(spec.prefixes)
                brand_names[brand] = f"{prefix} {brand}" if prefixed else brand
                second = rng.random() < TWO_RUBRIC_SHARE
                brand_rubrics[brand] = ((spec.rubric, rng.choice(spec.second)) if second
                                        else (spec.rubric,))
                brand_city[brand] = pick_city(rng, tpl)
            # Branches mostly stay in the chain's home city.
            city = brand_city[brand] if rng.random() < 0.7 else None
            orgs.append(Org(family, brand, brand_names[brand],
                            make_address(rng, used_addresses, tpl, city), brand_rubrics[brand]))
    rng.shuffle(orgs)
    return orgs


# ---------------------------------------------------------------------------------------------
# Review texts
# ---------------------------------------------------------------------------------------------


def aspect_pool(org: Org, tpl: Templates) -> tuple[list[dict], list[float]]:
    """Aspects an org's reviews talk about: its family's, a second family's, then generic ones."""
    pool = list(tpl.families[org.family].aspects.values())
    weights = [3.0] * len(pool)
    for family, spec in tpl.families.items():
        if family != org.family and spec.rubric in org.rubrics[1:]:
            pool += list(spec.aspects.values())
            weights += [1.5] * len(spec.aspects)
    pool += list(tpl.generic_aspects.values())
    weights += [1.0] * len(tpl.generic_aspects)
    return pool, weights


def compose_sentences(rng: random.Random, org: Org, rating: int, tpl: Templates) -> list[str]:
    """Template sentences (still with markup) for one review of the given rating."""
    pool, weights = aspect_pool(org, tpl)
    sentences = []
    if rng.random() < (0.8 if rating == 4 else 0.9):
        sentences.append(rng.choice(tpl.openers[rating]))
    if rng.random() < 0.2:
        sentences.append(rng.choice(tpl.families[org.family].context))

    if rating == 5:
        k = rng.choices([1, 2, 3, 4], weights=[5, 5, 2, 1])[0]
        sentences += [rng.choice(a["pos"]) for a in weighted_sample(rng, pool, weights, k)]
    elif rating == 4:
        k = rng.choices([1, 2, 3], weights=[5, 4, 1])[0]
        aspects = weighted_sample(rng, pool, weights, k + 1)
        sentences += [rng.choice(a["pos"]) for a in aspects[:-1]]
        sentences.append(rng.choice(tpl.minor_leads) + "\0" + rng.choice(aspects[-1]["minor"]))
    elif rating == 3:
        plan = rng.choice(["mixed", "mixed", "pos_then_minor", "pos_then_neg"])
        if plan == "mixed":
            k = rng.choices([1, 2, 3], weights=[4, 4, 1])[0]
            sentences += [rng.choice(a["mixed"]) for a in weighted_sample(rng, pool, weights, k)]
        else:
            good, bad = weighted_sample(rng, pool, weights, 2)
            bucket = "minor" if plan == "pos_then_minor" else "neg"
            sentences.append(rng.choice(good["pos"]))
            sentences.append(rng.choice(tpl.downside_leads) + "\0" + rng.choice(bad[bucket]))
            if rng.random() < 0.4:
                extra = weighted_sample(rng, [a for a in pool if a not in (good, bad)],
                                        [1.0] * (len(pool) - 2), 1)
                sentences.append(rng.choice(extra[0]["mixed"]))
    elif rating == 2:
        k = rng.choices([1, 2, 3], weights=[3, 4, 2])[0]
        aspects = weighted_sample(rng, pool, weights, k)
        sentences += [rng.choice(a["neg"]) for a in aspects]
        if rng.random() < 0.4:
            rest = [a for a in pool if a not in aspects]
            sentences.append(rng.choice(rng.choice(rest)["mixed"]))
    else:
        k = rng.choices([1, 2, 3, 4], weights=[4, 4, 2, 1])[0]
        sentences += [rng.choice(a["neg"]) for a in weighted_sample(rng, pool, weights, k)]

    closer_chance = {5: 0.5, 4: 0.5, 3: 0.5, 2: 0.6, 1: 0.7}[rating]
    if rng.random() < closer_chance:
        sentences.append(rng.choice(tpl.closers[rating]))
    return sentences


def realize(org: Org, venue: Venue, templates: list[str], gender: str) -> list[str]:
    """Render templates; a NUL separates a lead-in from a sentence whose first letter drops case."""
    out = []
    for template in templates:
        lead, sep, body = template.partition("\0")
        if sep:
            sentence = render(body, gender, venue, org.name_ru)
            out.append(lead + lower_first(sentence) if lead else sentence)
        else:
            out.append(render(template, gender, venue, org.name_ru))
    return out


def join_sentences(rng: random.Random, sentences: list[str], rating: int) -> str:
    """Join sentences with spaces, or with an escaped line break in ~NEWLINE_RATE of reviews."""
    if rating == 5:  # occasional extra enthusiasm
        sentences = [s[:-1] + "!" if s.endswith(".") and rng.random() < 0.12 else s
                     for s in sentences]
    use_newlines = len(sentences) > 1 and rng.random() < NEWLINE_RATE
    if not use_newlines:
        return " ".join(sentences)
    text = sentences[0]
    breaks = [rng.random() < 0.5 for _ in sentences[1:]]
    breaks[rng.randrange(len(breaks))] = True
    for sentence, brk in zip(sentences[1:], breaks):
        text += ("\\n" if brk else " ") + sentence
    return text


def sentiment(rating: int) -> str:
    return "pos" if rating >= 4 else "mid" if rating == 3 else "neg"


def latin_text(rng: random.Random, org: Org, rating: int, tpl: Templates) -> str:
    kind = sentiment(rating)
    family_latin = tpl.families[org.family].latin
    options = tpl.latin_generic[kind] + ([family_latin[kind]] if kind in family_latin else [])
    first = rng.choice(options)
    if rng.random() < 0.4:
        second = rng.choice([o for o in options if o != first])
        return f"{first} {second}"
    return first


# ---------------------------------------------------------------------------------------------
# Dataset assembly
# ---------------------------------------------------------------------------------------------


def pick_rows(rng: random.Random, reviews: list[Review], count: int) -> list[Review]:
    """Pick `count` reviews that carry no quirk yet."""
    free = [r for r in reviews if not r.quirk]
    return rng.sample(free, min(count, len(free)))


def build_dataset(n_reviews: int, seed: int, tpl: Templates) -> tuple[list[Review], Counter]:
    rng = random.Random(seed)
    n_dup = round(n_reviews * DUPLICATE_RATE)
    n_base = n_reviews - n_dup
    n_orgs = max(1, min(n_base, round(n_reviews / REVIEWS_PER_ORG)))
    orgs = make_orgs(rng, n_orgs, tpl)

    # Skewed review counts: every org gets one review, the rest follow heavy-tailed weights.
    popularity = [rng.lognormvariate(0.0, POPULARITY_SIGMA) for _ in orgs]
    assigned = list(orgs) + rng.choices(orgs, weights=popularity, k=n_base - len(orgs))
    rng.shuffle(assigned)
    ratings = [r for r, c in allocate(n_base, RATING_SHARES).items() for _ in range(c)]
    rng.shuffle(ratings)

    quirks: Counter = Counter()
    reviews = []
    for org, rating in zip(assigned, ratings):
        gender = "m" if rng.random() >= FEMALE_REVIEWER_SHARE else "f"
        venue = tpl.families[org.family].venue
        sentences = realize(org, venue, compose_sentences(rng, org, rating, tpl), gender)
        text = join_sentences(rng, sentences, rating)
        reviews.append(Review(org, rating, text))

    for review in pick_rows(rng, reviews, round(n_reviews * SHORT_TEXT_RATE)):
        review.text, review.quirk = rng.choice(tpl.short_texts[review.rating]), "short"
    for review in pick_rows(rng, reviews, round(n_reviews * LATIN_TEXT_RATE)):
        review.text, review.quirk = latin_text(rng, review.org, review.rating, tpl), "latin"
    for review in pick_rows(rng, reviews, round(n_reviews * NO_RATING_RATE)):
        review.rating, review.quirk = 0, "no_rating"
    for review in pick_rows(rng, reviews, n_reviews // TYPOGRAPHIC_QUOTES_EVERY):
        sentence = rng.choice(tpl.quote_sentences[sentiment(review.rating)])
        review.text += " " + sentence.replace("{name}", review.org.name_ru)
        review.quirk = "quotes"
    candidates = [r for r in reviews if not r.quirk and ". " in r.text]
    for review in rng.sample(candidates, min(len(candidates), n_reviews // DOUBLE_SPACE_EVERY)):
        review.text, review.quirk = review.text.replace(". ", ".  ", 1), "double_space"
    for review in reviews:
        quirks[review.quirk] += bool(review.quirk)

    reviews = insert_duplicates(rng, reviews, n_dup, orgs, quirks)
    quirks["escaped_newlines"] = sum("\\n" in review.text for review in reviews)
    return reviews, quirks


def insert_duplicates(rng: random.Random, reviews: list[Review], n_dup: int, orgs: list[Org],
                      quirks: Counter) -> list[Review]:
    """Copy n_dup earlier reviews to later positions, half under another branch of the chain."""
    branches: dict[str, list[Org]] = {}
    for org in orgs:
        branches.setdefault(org.name_ru, []).append(org)
    plain = [i for i, r in enumerate(reviews[:-1]) if not r.quirk]
    in_chain = [i for i in plain if len(branches[reviews[i].org.name_ru]) > 1]
    cross = rng.sample(in_chain, min(n_dup // 2, len(in_chain)))
    taken = set(cross)
    rest = [i for i in plain if i not in taken]
    same = rng.sample(rest, min(n_dup - len(cross), len(rest)))
    later: dict[int, list[Review]] = {}
    for i in sorted(cross + same):
        source = reviews[i]
        if i in taken:
            others = [o for o in branches[source.org.name_ru] if o != source.org]
            copy_org, kind = rng.choice(others), "duplicate_other_branch"
        else:
            copy_org, kind = source.org, "duplicate_same_org"
        quirks[kind] += 1
        target = rng.randint(i + 1, len(reviews))
        copy = Review(copy_org, source.rating, source.text, "duplicate")
        later.setdefault(target, []).append(copy)
    out = []
    for position in range(len(reviews) + 1):
        out += later.get(position, [])
        if position < len(reviews):
            out.append(reviews[position])
    return out


def write_atomically(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")


def main() -> None:
    parser = ArgumentParser(
        description="Generate the synthetic demo dataset (Yandex Geo Reviews 2023 TSKV format). "
        "All names, addresses and texts are invented; the same seed gives a byte-identical file.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="where to write the .tskv file, replaced atomically "
                        f"(default: {DEFAULT_OUTPUT.relative_to(PROJECT_ROOT)} "
                        "in the project root)")
    parser.add_argument("--num_reviews", type=int_in(2), default=DEFAULT_N_REVIEWS,
                        help="number of lines to write, duplicates included; organizations scale "
                        f"with it, about one per {REVIEWS_PER_ORG:g} reviews "
                        f"(default: {DEFAULT_N_REVIEWS})")
    add_hidden_alias(parser, "--n_reviews", "num_reviews", type=int_in(2))  # as docs and scripts may still spell it
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="random seed; equal seeds give identical files "
                        f"(default: {DEFAULT_SEED})")
    parser.add_argument("--templates", type=Path, default=DEFAULT_TEMPLATES, metavar="PATH",
                        help="JSON file with the text templates, rubric families and cities; "
                        "its shape and mini-language are described in the file and in this "
                        f"script (default: {DEFAULT_TEMPLATES.relative_to(PROJECT_ROOT)} "
                        "in the project root)")
    args = parser.parse_args()
    try:
        templates = load_templates(args.templates)
    except TemplateError as e:
        parser.error(f"--templates: {e}")

    reviews, quirks = build_dataset(args.num_reviews, args.seed, templates)
    write_atomically(args.output, [tskv_line(r.org, r.rating, r.text) for r in reviews])

    ratings = Counter(r.rating for r in reviews)
    rating_summary = " ".join(f"{k}:{ratings[k]}" for k in sorted(ratings, reverse=True))
    quirk_order = ["duplicate_same_org", "duplicate_other_branch", "no_rating", "short", "latin",
                   "quotes", "double_space", "escaped_newlines"]
    quirk_summary = " ".join(f"{k}={quirks[k]}" for k in quirk_order)
    orgs = len({(r.org.name_ru, r.org.address) for r in reviews})
    print(f"wrote {args.output}: {len(reviews)} lines, {orgs} orgs, ratings {rating_summary}; "
          f"quirks {quirk_summary}")


if __name__ == "__main__":
    main()
