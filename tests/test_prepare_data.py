"""End-to-end tests of prepare_data.py: every cleaning rule, report arithmetic, cache, atomicity."""

import json
import os
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from conftest import DEMO_INPUT, ROOT, script, tskv_line

from reviewkit.common.errors import PrepareError
from reviewkit.data import pipeline
from reviewkit.data.pipeline import PrepareConfig, prepare_dataset

PREPARE = ROOT / "scripts" / "prepare_data.py"
VALID = "Очень уютное кафе, вкусный кофе и свежие десерты."

def defect_file_lines():
    long_text = "Очень вкусно и уютно. " * 120
    return [
        (tskv_line(VALID).encode(), None),
        (tskv_line("Кофе отличный").encode()[:-5] + b"\xff\xfe\n"[:2] + "десерты свежие и вкусные".encode(), "undecodable_bytes"),
        ("и это продолжение предыдущей строки отзыва".encode(), "torn_line"),
        ("address=Москва\tname_ru=Кафе\trating=5.\trubrics=Кафе".encode(), "no_text_field"),
        (f"address=Москва\tname_ru=Кафе\trating=5.\ttext={VALID}\ttext=ещё".encode(), "duplicate_field"),
        (b"", "blank_line"),
        (tskv_line("").encode(), "text_empty"),
        (tskv_line("  \\n \\n  ").encode(), "text_empty"),
        ("address=Москва\tname_ru=Кафе\trubrics=Кафе\ttext=Вкусная выпечка и хороший чай".encode(), "rating_missing"),
        (tskv_line("Вкусная выпечка и хороший чай", rating="").encode(), "rating_missing"),
        (tskv_line("Вкусная выпечка и хороший чай", rating="abc").encode(), "rating_not_a_number"),
        (tskv_line("Вкусная выпечка и хороший чай", rating="NaN").encode(), "rating_not_a_number"),
        (tskv_line("Вкусная выпечка и хороший чай", rating="-1").encode(), "rating_out_of_range"),
        (tskv_line("Вкусная выпечка и хороший чай", rating="7.").encode(), "rating_out_of_range"),
        (tskv_line("Вкусная выпечка и хороший чай", rating="0.").encode(), "rating_zero_no_score"),
        (tskv_line("Вкусная выпечка и хороший чай", rating="4.5").encode(), "rating_not_integer"),
        (tskv_line("Норм").encode(), "text_too_short"),
        (tskv_line(long_text).encode(), "text_too_long"),
        (tskv_line("Очень вкусно и уютно. " * 48000).encode(), "text_too_long"),  # a 1 MB field
        (tskv_line("Great coffee and very friendly staff, will come back").encode(), "not_russian"),
        (tskv_line("😀" * 25).encode(), "not_russian"),
        (tskv_line(VALID, name="Другое кафе").encode(), "duplicate_text"),
        (tskv_line("Хороший\x00 сервис, вежливые мастера и приятные цены").encode(), None),
        (tskv_line("«Лучший» салон:\\nмастера — профи,\\nцены   честные").encode(), None),
        (tskv_line("Отличный\tсервис и быстрый ремонт машины").encode(), None),
        ("address=Казань\tname_ru=Аптека\trating=4.\ttext=Фармацевт всё подробно объяснил".encode(), None),
    ]


@pytest.fixture()
def defect_file(tmp_path):
    path = tmp_path / "defects.tskv"
    path.write_bytes(b"\n".join(line for line, _ in defect_file_lines()) + b"\n")
    return path


def run_prepare(*args):
    return script("prepare_data.py", "--no_progress", *args, timeout=300)


def test_every_defect_is_counted_under_its_reason(defect_file, tmp_path):
    report = prepare_dataset(str(defect_file), tmp_path / "out", PrepareConfig(test_fraction=0, validation_fraction=0),
                             workers=1, progress=False)
    expected = {}
    for _, reason in defect_file_lines():
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
    assert report["dropped"] == expected
    assert report["read"] == len(defect_file_lines())
    assert report["kept"] == sum(1 for _, reason in defect_file_lines() if reason is None)
    assert report["read"] == report["kept"] + sum(report["dropped"].values())
    texts = pq.read_table(tmp_path / "out" / "train.parquet").column("text").to_pylist()
    assert texts == [
        VALID,
        "Хороший сервис, вежливые мастера и приятные цены",
        '"Лучший" салон: мастера — профи, цены честные',
        "Отличный сервис и быстрый ремонт машины",
        "Фармацевт всё подробно объяснил",
    ]


def test_demo_report_adds_up_and_splits_are_grouped(tmp_path):
    result = run_prepare("--input", DEMO_INPUT, "--output_dir", tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["read"] == 4000
    assert report["read"] == report["kept"] + sum(report["dropped"].values())
    assert report["dropped"]["duplicate_text"] > 0 and report["dropped"]["rating_zero_no_score"] > 0
    tables = {split: pq.read_table(tmp_path / f"{split}.parquet").to_pandas() for split in ("train", "validation", "test")}
    assert sum(len(t) for t in tables.values()) == report["kept"]
    orgs = {split: set(zip(t.name_ru, t.address)) for split, t in tables.items()}
    assert not orgs["train"] & orgs["validation"] and not orgs["train"] & orgs["test"]
    assert not orgs["validation"] & orgs["test"]
    for split, table in tables.items():
        assert report["splits"][split]["rows"] == len(table)
        assert set(table.columns) == {"address", "name_ru", "rating", "rubrics", "text", "keywords", "prompt"}
        share5 = report["splits"][split]["rating_share"]["5"]
        assert abs(share5 - report["rating_share_all"]["5"]) < 0.1
    row = tables["train"].iloc[0]
    assert row.prompt.startswith(f"рейтинг: {row.rating} | рубрики: ")
    assert 1 <= len(row.keywords) <= 5 and ", ".join(row.keywords) in row.prompt
    assert "cache" not in result.stdout.splitlines()[-1]


def test_ratings_filter_keeps_only_those_ratings_and_counts_the_rest(tmp_path):
    result = run_prepare("--input", DEMO_INPUT, "--output_dir", tmp_path, "--ratings", "1,2")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    ratings = set(pq.read_table(tmp_path / "train.parquet").column("rating").to_pylist())
    assert ratings == {1, 2}
    assert report["dropped"]["rating_not_selected"] > 0
    assert report["read"] == report["kept"] + sum(report["dropped"].values())


def test_same_seed_same_files_and_worker_count_does_not_matter(tmp_path):
    config = PrepareConfig(seed=7)
    prepare_dataset(str(DEMO_INPUT), tmp_path / "a", config, workers=1, progress=False)
    prepare_dataset(str(DEMO_INPUT), tmp_path / "b", config, workers=2, progress=False)
    prepare_dataset(str(DEMO_INPUT), tmp_path / "c", PrepareConfig(seed=8), workers=2, progress=False)
    for split in ("train", "validation", "test"):
        a = (tmp_path / "a" / f"{split}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{split}.parquet").read_bytes()
    assert (tmp_path / "a" / "test.parquet").read_bytes() != (tmp_path / "c" / "test.parquet").read_bytes()


def test_rerun_is_served_from_cache_and_a_changed_setting_rebuilds(tmp_path):
    first = run_prepare("--input", DEMO_INPUT, "--output_dir", tmp_path)
    assert first.returncode == 0, first.stderr
    mtime = (tmp_path / "train.parquet").stat().st_mtime_ns
    second = run_prepare("--input", DEMO_INPUT, "--output_dir", tmp_path)
    assert second.returncode == 0 and "cache" in second.stdout.splitlines()[-1]
    assert (tmp_path / "train.parquet").stat().st_mtime_ns == mtime
    third = run_prepare("--input", DEMO_INPUT, "--output_dir", tmp_path, "--num_keywords", "3")
    assert third.returncode == 0 and "cache" not in third.stdout.splitlines()[-1]
    keywords = pq.read_table(tmp_path / "train.parquet").column("keywords").to_pylist()
    assert max(map(len, keywords)) == 3


def test_changed_input_rebuilds(tmp_path):
    source = tmp_path / "in.tskv"
    source.write_text(tskv_line(VALID) + "\n", encoding="utf-8")
    config = PrepareConfig(test_fraction=0, validation_fraction=0)
    assert prepare_dataset(str(source), tmp_path / "out", config, workers=1, progress=False)["kept"] == 1
    source.write_text(tskv_line(VALID) + "\n" + tskv_line("Вкусная выпечка и хороший чай") + "\n", encoding="utf-8")
    report = prepare_dataset(str(source), tmp_path / "out", config, workers=1, progress=False)
    assert not report["cached"] and report["kept"] == 2


def test_a_run_killed_while_writing_leaves_nothing_marked_complete(tmp_path, monkeypatch):
    output = tmp_path / "out"
    prepare_dataset(str(DEMO_INPUT), output, PrepareConfig(), workers=1, progress=False)
    calls = []
    real_write = pipeline.pq.write_table

    def write_then_die(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            real_write(table.slice(0, 3), where)  # a torn temporary file
            raise KeyboardInterrupt
        real_write(table, where, **kwargs)

    monkeypatch.setattr(pipeline.pq, "write_table", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(str(DEMO_INPUT), output, PrepareConfig(seed=1), workers=1, progress=False)
    assert not (output / "report.json").exists()
    assert not list(output.glob(".*.tmp"))
    monkeypatch.undo()
    report = prepare_dataset(str(DEMO_INPUT), output, PrepareConfig(seed=1), workers=1, progress=False)
    assert not report["cached"]
    assert sum(pq.read_metadata(output / f).num_rows for f in report["files"]) == report["kept"]


def test_sigkill_at_random_points_then_rerun_gives_byte_identical_output(tmp_path):
    """A real process killed at seeded random moments; whatever it left is never taken as complete."""
    import random
    import time

    command = [sys.executable, str(PREPARE), "--no_progress", "--input", str(DEMO_INPUT), "--workers", "2"]
    started = time.monotonic()
    reference = subprocess.run([*command, "--output_dir", str(tmp_path / "reference")], capture_output=True,
                               timeout=300)
    duration = time.monotonic() - started
    assert reference.returncode == 0, reference.stderr
    expected = {f.name: f.read_bytes() for f in (tmp_path / "reference").iterdir()}
    output = tmp_path / "out"
    rng = random.Random(20261127)
    for attempt in range(4):
        process = subprocess.Popen([*command, "--output_dir", str(output), "--seed", str(attempt)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.2, 1.0) * duration)
        os.killpg(process.pid, signal.SIGKILL)  # the workers too
        process.wait()
        report = output / "report.json"
        if report.exists():  # the run got to the end: everything it names is complete
            files = json.loads(report.read_text(encoding="utf-8"))["files"]
            assert all(pq.read_metadata(output / f).num_rows >= 0 for f in files)
    rerun = subprocess.run([*command, "--output_dir", str(output)], capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert {f.name: f.read_bytes() for f in output.iterdir()} == expected


def test_a_stale_report_of_other_settings_is_not_trusted(tmp_path):
    output = tmp_path / "out"
    prepare_dataset(str(DEMO_INPUT), output, PrepareConfig(), workers=1, progress=False)
    (output / "train.parquet").write_bytes(b"torn")
    leftover = output / ".train.parquet.x1y2.tmp"  # what a SIGKILL during a write leaves
    leftover.write_bytes(b"partial")
    report = prepare_dataset(str(DEMO_INPUT), output, PrepareConfig(), workers=1, progress=False)
    assert not report["cached"]
    assert pq.read_metadata(output / "train.parquet").num_rows == report["splits"]["train"]["rows"]
    assert not leftover.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "/no/such/file.tskv"], "input file not found"),
        (["--input", "{tmp}"], "is a directory"),
        (["--input", "{tmp}/empty.tskv"], "input is empty"),
        (["--input", "{tmp}/broken.parquet"], "unreadable parquet"),
        (["--input", "{tmp}/nocol.csv"], "missing column(s) text"),
        (["--output_dir", "{tmp}/empty.tskv"], "not a directory"),
        (["--ratings", "0,9"], "ratings must be from 1 to 5"),
        (["--test_fraction", "0.7", "--validation_fraction", "0.5"], "sum to less than 1"),
        (["--no_such_flag"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(tmp_path, args, message):
    (tmp_path / "empty.tskv").write_bytes(b"")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1" + b"\0" * 20)
    (tmp_path / "nocol.csv").write_text("address,name_ru,rating,rubrics\nМосква,Кафе,5,Кафе\n", encoding="utf-8")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--output_dir" not in args:
        args += ["--output_dir", str(tmp_path / "out")]
    result = run_prepare(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith(("error", "prepare_data.py: error"))]) == 1


def test_no_row_left_is_an_error(tmp_path):
    source = tmp_path / "in.tskv"
    source.write_text(tskv_line("Норм") + "\n", encoding="utf-8")
    with pytest.raises(PrepareError, match="no review left"):
        prepare_dataset(str(source), tmp_path / "out", PrepareConfig(), workers=1, progress=False)
