"""Automatic quality measures on hand-made inputs whose right answer is known; evaluate.py's rating classifier
and copy index, and their store per data directory."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DEMO_INPUT, read_reviews
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import normalize

from reviewkit.evaluation import cache as evaluation_cache, copy_check, rating_classifier
from reviewkit.evaluation.cache import evaluation_reference, read_stored, write_stored
from reviewkit.evaluation.copy_check import CopyIndex
from reviewkit.evaluation.quality import distinct_n, keyword_coverage, rating_consistency
from reviewkit.evaluation.rating_classifier import RatingClassifier


def test_distinct_n():
    assert distinct_n(["кофе кофе кофе"], 1) == pytest.approx(1 / 3)
    assert distinct_n(["вкусный кофе", "вкусный чай"], 2) == 1.0
    assert distinct_n(["вкусный кофе", "вкусный кофе"], 2) == 0.5
    assert distinct_n(["кофе"], 2) == 0.0


def test_keyword_coverage_is_lemmatised(lemmatizer):
    texts = ["Вкусные десерты и крепкий кофе", "Хороший сервис"]
    assert keyword_coverage([["десерт", "кофе"], ["парковка"]], texts, lemmatizer) == pytest.approx(2 / 3)
    assert keyword_coverage([[]], ["что угодно"], lemmatizer) == 0.0


def test_a_text_that_copies_a_training_review_counts_as_copied():
    training = ["Очень уютное кафе, вкусный кофе и свежие десерты, персонал вежливый и быстрый",
                "Ужасный сервис, ждали заказ час и ушли голодными"]
    generated = ["Очень уютное кафе, вкусный кофе и свежие десерты, персонал вежливый и быстрый!",
                 "Неплохой салон, мастер аккуратно подстригла, цены средние",
                 "Очень уютное кафе, но кофе холодный"]
    assert CopyIndex.build(training).copied(generated).tolist() == [True, False, False]


def test_rating_classifier_learns_wording_and_consistency_counts_matches():
    good = ["отлично вкусно рекомендую", "прекрасно уютно отлично", "вкусно отлично прекрасно"] * 10
    bad = ["ужасно грязно никогда", "отвратительно грязно ужасно", "никогда ужасно отвратительно"] * 10
    classifier = RatingClassifier.fit(good + bad, [5] * len(good) + [1] * len(bad))
    assert classifier.predict(["отлично и вкусно", "грязно и ужасно"]).tolist() == [5, 1]
    assert rating_consistency([5, 4, 1, 2], np.array([5, 5, 3, 2])) == (0.5, 0.75)


@pytest.fixture(scope="module")
def demo_reviews() -> tuple[list[str], list[int]]:
    """(texts, ratings) of the first 1,500 demo reviews with a rating from 1 to 5."""
    records = [r.fields for r, _ in zip(read_reviews(str(DEMO_INPUT)), range(1600))]
    rated = [(r["text"], int(float(r["rating"]))) for r in records if 1 <= float(r["rating"]) <= 5][:1500]
    return [text for text, _ in rated], [rating for _, rating in rated]


def stored_and_read(tmp_path, arrays: dict) -> dict:
    """The arrays as evaluate.py's store gives them back."""
    write_stored(tmp_path / "stored.npz", arrays, {"key": {}, "reviews": 0})
    return read_stored(tmp_path / "stored.npz", {})[0]


@pytest.mark.parametrize("ratings", [(1, 2, 3, 4, 5), (1, 2)])  # (1, 2): a binary regression, as for train_lora_r1
def test_the_stored_classifier_predicts_exactly_as_the_fitted_scikit_learn_pipeline(demo_reviews, tmp_path, ratings):
    texts = [t for t, r in zip(*demo_reviews) if r in ratings]
    labels = [r for r in demo_reviews[1] if r in ratings]
    cut = len(texts) * 2 // 3
    # evaluate.py's classifier before it was stored: one scikit-learn pipeline
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000),
                             LogisticRegression(max_iter=2000)).fit(texts[:cut], labels[:cut])
    stored = RatingClassifier.from_arrays(stored_and_read(tmp_path, RatingClassifier.fit(texts[:cut],
                                                                                          labels[:cut]).to_arrays()))
    unseen = texts[cut:] + ["", "zzz qqq", "Отлично! Отлично! Всё отлично", "ужасно, никогда больше"]
    expected = pipeline.predict(unseen)
    assert len(set(expected.tolist())) > 1  # the comparison covers more than one class
    assert stored.predict(unseen).tolist() == expected.tolist()


def copied_before_the_index(texts, training_texts, threshold=0.8):
    """evaluate.py's copy check before the index was kept: the reference the index must agree with."""
    vectorizer = HashingVectorizer(analyzer="word", ngram_range=(3, 3), norm=None, alternate_sign=False,
                                   n_features=2**22)
    generated = normalize(vectorizer.transform(texts))
    result = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(training_texts), 50_000):
        train = normalize(vectorizer.transform(training_texts[start:start + 50_000]))
        similarity = (generated @ train.T).max(axis=1).toarray().ravel() if train.shape[0] else 0
        result |= similarity >= threshold
    return result


def test_the_stored_copy_index_flags_what_the_check_without_an_index_flagged(demo_reviews, tmp_path, monkeypatch):
    monkeypatch.setattr(copy_check, "CHUNK_ROWS", 97)  # the chunks of building and comparing cross many boundaries
    training = demo_reviews[0][:1000]
    generated = [""] + demo_reviews[0][1000:1100]
    for text in training[:60]:  # copies shortened word by word: similarities from 1 down past the threshold
        tokens = text.split()
        generated += [" ".join(tokens[:len(tokens) - cut]) for cut in range(0, min(8, len(tokens)))]
        generated.append(" ".join(tokens[:len(tokens) // 2] + ["совсем", "другое"] + tokens[len(tokens) // 2:]))
    index = CopyIndex.from_arrays(stored_and_read(tmp_path, CopyIndex.build(training).to_arrays()))
    expected = copied_before_the_index(generated, training)
    assert 50 < expected.sum() < len(generated) - 100  # copies, near copies below the threshold, and others
    assert index.copied(generated).tolist() == expected.tolist()
    assert not CopyIndex.build([]).copied(generated).any()
    vectorizer = HashingVectorizer(**copy_check.HASHING)
    near = generated[-2]  # a shortened copy: its best similarity, to the float, is the threshold
    exact = (normalize(vectorizer.transform([near])) @ normalize(vectorizer.transform(training)).T).max()
    assert 0.5 < exact < 1 and copied_before_the_index([near], training, exact).tolist() == [True]
    assert index.copied(generated, exact).tolist() == copied_before_the_index(generated, training, exact).tolist()


@pytest.fixture
def data_dir(tmp_path, demo_reviews):
    """A prepared-like data directory: 600 demo reviews in train.parquet, 150 in test.parquet."""
    write_split(tmp_path / "train.parquet", *(column[:600] for column in demo_reviews))
    write_split(tmp_path / "test.parquet", *(column[600:750] for column in demo_reviews))
    return tmp_path


def write_split(path, texts, ratings):
    pq.write_table(pa.table({"text": texts, "rating": pa.array(ratings, pa.int8())}), path)


def reference_of(data_dir):
    test = pq.read_table(data_dir / "test.parquet").to_pydict()
    return evaluation_reference(data_dir, pq.read_table(data_dir / "train.parquet"), test["text"], test["rating"])


def said(capsys) -> list[str]:
    """The lines written to stderr since the last call, without the copy index's progress bar."""
    return [line for line in capsys.readouterr().err.splitlines() if line and not line.startswith("copy index")]


def forbid_making(monkeypatch):
    """Fitting the classifier or building the copy index from here on fails the test."""
    def refuse(*_):
        raise AssertionError("made again instead of reused")
    monkeypatch.setattr(RatingClassifier, "fit", classmethod(refuse))
    monkeypatch.setattr(CopyIndex, "build", classmethod(refuse))


def test_a_rerun_on_the_same_data_reuses_the_stored_classifier_and_index(data_dir, demo_reviews, capsys,
                                                                         monkeypatch):
    first = reference_of(data_dir)
    lines = said(capsys)
    cache = data_dir / ".evaluate_cache"
    assert f"rating classifier: fitting it on 600 training reviews, then scoring it on 150 test reviews (kept in " \
           f"{cache / 'rating_classifier.npz'} for later runs)" in lines
    assert f"copy check: indexing the word trigrams of 600 training reviews (kept in {cache / 'copy_index.npz'} " \
           f"for later runs)" in lines
    forbid_making(monkeypatch)
    again = reference_of(data_dir)
    lines = said(capsys)
    digest = evaluation_cache.file_digest(data_dir / "train.parquet")[:12]
    assert lines == [f"rating classifier: reused from {cache / 'rating_classifier.npz'} (fitted on 600 reviews, "
                     f"train.parquet digest {digest})",
                     f"copy check: reused from {cache / 'copy_index.npz'} (trigrams of 600 training reviews, "
                     f"train.parquet digest {digest})"]
    texts = demo_reviews[0][750:1000] + demo_reviews[0][:50]
    assert again.classifier.predict(texts).tolist() == first.classifier.predict(texts).tolist()
    assert (again.test_accuracy, again.test_within_1) == (first.test_accuracy, first.test_within_1) != (0.0, 0.0)
    flags = again.copy_index.copied(texts).tolist()
    assert flags == first.copy_index.copied(texts).tolist() and flags[-50:] == [True] * 50 and not all(flags)


def test_changed_data_or_settings_are_made_again_with_a_line_saying_why(data_dir, demo_reviews, capsys, monkeypatch):
    reference_of(data_dir)
    old = evaluation_cache.file_digest(data_dir / "train.parquet")[:12]
    write_split(data_dir / "train.parquet", *(column[:599] for column in demo_reviews))
    new = evaluation_cache.file_digest(data_dir / "train.parquet")[:12]
    capsys.readouterr()
    reference = reference_of(data_dir)
    lines = said(capsys)
    cache = data_dir / ".evaluate_cache"
    assert lines == [f"rating classifier: fitting it on 599 training reviews, then scoring it on 150 test reviews "
                     f"({cache / 'rating_classifier.npz'} was made from train.parquet digest {old}, now {new}: "
                     f"made again)",
                     f"copy check: indexing the word trigrams of 599 training reviews ({cache / 'copy_index.npz'} "
                     f"was made from train.parquet digest {old}, now {new}: made again)"]
    assert len(reference.copy_index) == 599

    monkeypatch.setattr(rating_classifier, "SETTINGS", rating_classifier.SETTINGS + ", C=0.5")
    reference_of(data_dir)
    lines = said(capsys)
    assert lines[0].endswith(f"({cache / 'rating_classifier.npz'} was made from other settings: made again)")
    assert lines[1].startswith("copy check: reused from ")


def test_an_unreadable_store_is_made_again_and_a_pickle_in_it_is_never_loaded(data_dir, capsys):
    reference_of(data_dir)
    cache = data_dir / ".evaluate_cache"
    stored = cache / "copy_index.npz"
    stored.write_bytes(stored.read_bytes()[:1000])  # torn, as a writer without the temporary file could leave it
    arrays, record = read_stored(cache / "rating_classifier.npz", {})
    marker = data_dir / "unpickled"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    arrays["coef"] = np.array([Payload()], dtype=object)
    with open(cache / "rating_classifier.npz", "wb") as f:  # matching key, but an array only pickle can load
        np.savez(f, **arrays, record=np.frombuffer(json.dumps(record).encode(), dtype=np.uint8))
    capsys.readouterr()
    reference_of(data_dir)
    lines = said(capsys)
    assert lines[0].endswith(f"({cache / 'rating_classifier.npz'} cannot be read (ValueError: Object arrays cannot "
                             f"be loaded when allow_pickle=False): made again)")
    assert lines[1].startswith(f"copy check: indexing the word trigrams of 600 training reviews ({stored} cannot be "
                               f"read (BadZipFile: ")
    assert not marker.exists()
    reference_of(data_dir)
    assert all(" reused from " in line for line in said(capsys))


def test_an_interrupted_store_leaves_no_file_that_a_rerun_believes(data_dir, capsys, monkeypatch):
    cache = data_dir / ".evaluate_cache"
    cache.mkdir()
    (cache / ".rating_classifier.npz.x1y2.tmp").write_bytes(b"left by a killed run")

    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 the first bytes of a zip")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(np, "savez_compressed", interrupted)
        with pytest.raises(KeyboardInterrupt):
            reference_of(data_dir)
    assert list(cache.iterdir()) == []
    capsys.readouterr()
    reference_of(data_dir)
    assert all("for later runs)" in line for line in said(capsys))
    assert sorted(p.name for p in cache.iterdir()) == ["copy_index.npz", "rating_classifier.npz"]


def test_a_store_that_cannot_be_written_serves_this_run_with_a_note(data_dir, capsys):
    (data_dir / ".evaluate_cache").write_text("not a directory", encoding="utf-8")
    reference = reference_of(data_dir)
    lines = said(capsys)
    assert f"note: rating classifier not kept in {data_dir / '.evaluate_cache'} (File exists): the next run makes " \
           f"it again" in lines
    assert f"note: copy check not kept in {data_dir / '.evaluate_cache'} (File exists): the next run makes it again" \
        in lines
    assert reference.test_accuracy > 0.5 and len(reference.copy_index) == 600
