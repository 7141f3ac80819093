"""Each input format reads the same reviews; a whole-file problem is one DataSourceError."""

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_reviews, tskv_line

from reviewkit.common.errors import DataSourceError
from reviewkit.data.loading import FIELDS, detect_format, parse_tskv_line

ROWS = [
    {"address": "Москва, улица Ленина, 1", "name_ru": "Кафе Ромашка", "rating": "5.", "rubrics": "Кафе;Кофейня",
     "text": "Вкусный кофе,\\nуютно"},
    {"address": "Казань, улица Баумана, 3", "name_ru": "Аптека", "rating": "2.", "rubrics": "Аптека",
     "text": "Долго ждали фармацевта"},
]


def fields(records):
    return [r.fields for r in records]


def test_tskv(tmp_path):
    path = tmp_path / "reviews.tskv"
    path.write_text("\ufeff" + "\n".join(tskv_line(r["text"], r["rating"], r["name_ru"], r["address"], r["rubrics"])
                                         for r in ROWS) + "\n", encoding="utf-8")
    assert fields(read_reviews(str(path))) == ROWS


def test_csv_with_quoted_newlines_and_a_huge_field(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = ROWS + [{**ROWS[1], "text": "Очень " * 200_000}]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["address", "name_ru", "rating", "rubrics", "text"])
        writer.writeheader()
        writer.writerows(rows)
    assert fields(read_reviews(str(path))) == rows


def test_csv_undecodable_and_ragged_rows_are_reasons_not_crashes(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes("address,name_ru,rating,rubrics,text\n".encode() + b"a,b,5,c,\xff\xfe\n" + b"a,b,5\n"
                     + "a,b,4,c,хорошо\n".encode())
    records = list(read_reviews(str(path)))
    assert [r.error for r in records] == ["undecodable_bytes", "malformed_row", None]


def test_parquet_with_numeric_rating(tmp_path):
    path = tmp_path / "reviews.parquet"
    table = pa.table({k: [r[k] for r in ROWS] for k in FIELDS if k != "rating"})
    pq.write_table(table.append_column("rating", pa.array([5.0, 2.0])), path)
    got = fields(read_reviews(str(path)))
    assert [g["rating"] for g in got] == [5.0, 2.0]
    assert [g["text"] for g in got] == [r["text"] for r in ROWS]


def test_truncated_parquet_is_one_clear_error(tmp_path):
    path = tmp_path / "reviews.parquet"
    pq.write_table(pa.table({k: [r[k] for r in ROWS] for k in FIELDS}), path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataSourceError, match="unreadable parquet"):
        list(read_reviews(str(path)))


def test_hub_id_offline_says_to_pass_a_local_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataSourceError, match="pass a local file"):
        list(read_reviews("d0rj/geo-reviews-dataset-2023"))


def test_format_detection(tmp_path):
    assert detect_format("d0rj/geo-reviews-dataset-2023") == "hub"
    unnamed = tmp_path / "reviews.data"
    unnamed.write_text(tskv_line() + "\n", encoding="utf-8")
    assert detect_format(str(unnamed)) == "tskv"
    with pytest.raises(DataSourceError, match="not found"):
        detect_format(str(tmp_path / "missing.tskv"))
    with pytest.raises(DataSourceError, match="directory"):
        detect_format(str(tmp_path))


@pytest.mark.parametrize(
    "line, error",
    [
        ("", "blank_line"),
        ("продолжение текста", "torn_line"),
        ("rating=5.\trubrics=Кафе", "no_text_field"),
        ("rating=5.\ttext=a\ttext=b", "duplicate_field"),
    ],
)
def test_tskv_line_errors(line, error):
    assert parse_tskv_line(line).error == error


def test_tskv_raw_tab_stays_in_its_value_and_unknown_keys_are_ignored():
    record = parse_tskv_line("rating=5.\ttext=первая\tвторая\textra=1")
    assert record.fields["text"] == "первая\tвторая"
    assert record.fields["address"] is None and "extra" not in record.fields
