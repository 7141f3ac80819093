import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # reference.py: ruT5-small's shape, one-call keyword extraction

DEMO_INPUT = ROOT / "data" / "demo_reviews.tskv"


def tskv_line(text="Очень уютное кафе, вкусный кофе и свежие десерты.", rating="5.", name="Кафе Ромашка",
              address="Москва, улица Ленина, 1", rubrics="Кафе;Кофейня") -> str:
    return f"address={address}\tname_ru={name}\trating={rating}\trubrics={rubrics}\ttext={text}"


def read_reviews(source: str):
    """Every review of a TSKV/CSV/parquet file or hub id, one record at a time (the pipeline reads batches)."""
    from reviewkit.loading import read_batches

    for batch in read_batches(source):
        yield from batch.records()


@pytest.fixture(scope="session")
def lemmatizer():
    from reviewkit.keywords import Lemmatizer

    return Lemmatizer()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a minute or more of real training or a fresh-copy run; "
                                       "CI runs them, `-m 'not slow'` skips them locally")
