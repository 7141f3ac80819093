import json
import subprocess
import sys

import pytest
from conftest import DEMO_INPUT, ROOT, read_reviews

GENERATOR = ROOT / "scripts" / "make_demo_data.py"
TEMPLATES = ROOT / "data" / "demo_templates.json"


def test_committed_demo_data_is_what_the_generator_writes(tmp_path):
    output = tmp_path / "demo.tskv"
    subprocess.run([sys.executable, str(GENERATOR), "--output", str(output)],
                   check=True, capture_output=True, timeout=120)
    assert output.read_bytes() == DEMO_INPUT.read_bytes()


def test_demo_data_is_official_tskv_with_skewed_ratings():
    records = list(read_reviews(str(DEMO_INPUT)))
    assert len(records) == 4000 and all(r.error is None for r in records)
    ratings = [r.fields["rating"] for r in records]
    assert all(r.endswith(".") for r in ratings)
    assert ratings.count("5.") / len(ratings) > 0.5
    assert len({r.fields["rubrics"] for r in records}) >= 8


def _without_venue(data):
    del data["families"]["cafe"]["venue"]


def _with_bad_markup(data):
    data["generic_aspects"]["prices"]["pos"][0] = "<Good|Fine> {venue}."  # two forms, not three


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read: No such file or directory"),
    ('{"openers": }', "not valid JSON: Expecting value at line 1 column 13"),
    (lambda data: data.pop("families"), "missing key 'families'"),
    (_without_venue, "families.cafe: missing key 'venue'"),
    (_with_bad_markup, "generic_aspects.prices.pos: bad markup in '<Good|Fine> {venue}.'"),
], ids=["missing_file", "not_json", "missing_key", "missing_nested_key", "bad_markup"])
def test_a_broken_templates_file_is_a_one_line_error(tmp_path, content, expected):
    """content: None = no file, a string = the file's text, a function = edits the real templates."""
    templates = tmp_path / "templates.json"
    if isinstance(content, str):
        templates.write_text(content, encoding="utf-8")
    elif content is not None:
        data = json.loads(TEMPLATES.read_text(encoding="utf-8"))
        content(data)
        templates.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    output = tmp_path / "demo.tskv"
    result = subprocess.run([sys.executable, str(GENERATOR), "--templates", str(templates),
                             "--output", str(output)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == \
        f"make_demo_data.py: error: --templates: {templates}: {expected} (see --help)"
    assert not output.exists()
