import subprocess
import sys

from conftest import DEMO_INPUT, ROOT

from reviewkit.loading import read_reviews


def test_committed_demo_data_is_what_the_generator_writes(tmp_path):
    output = tmp_path / "demo.tskv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_data.py"), "--output", str(output)],
                   check=True, capture_output=True, timeout=120)
    assert output.read_bytes() == DEMO_INPUT.read_bytes()


def test_demo_data_is_official_tskv_with_skewed_ratings():
    records = list(read_reviews(str(DEMO_INPUT)))
    assert len(records) == 4000 and all(r.error is None for r in records)
    ratings = [r.fields["rating"] for r in records]
    assert all(r.endswith(".") for r in ratings)
    assert ratings.count("5.") / len(ratings) > 0.5
    assert len({r.fields["rubrics"] for r in records}) >= 8
