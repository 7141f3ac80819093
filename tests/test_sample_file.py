"""The strict reader of sample files, and what scoring and --mark do with hand-edited files.

The bar: no hand edit can make --mark change an entry it did not show, or make scoring count a set of
entries other than the file holds, without an error or a warning that names the line or the entry.
"""

import builtins
import random
import re

import pytest
from conftest import script_here

from reviewkit.marking.sample_file import (Entry, Incomplete, SampleFormatError, format_sample, parse_sample,
                                           read_sample_file)

MARKS = ["1", "0", "", "1", "yes", "0", "", "1"]


def entries(marks=MARKS):
    return [Entry(n, str(1 + n % 5), "Кафе; Кофейня", "кофе, десерт", f"Отзыв номер {n}.", mark)
            for n, mark in enumerate(marks, start=1)]


def sample_text(marks=MARKS) -> str:
    return format_sample(["test"], entries(marks))


def write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


def line_of(text: str, line: str) -> int:
    """The line number (from 1) of the first line equal to `line`."""
    return text.split("\n").index(line) + 1


def overall(stdout: str) -> list[str]:
    """marked, correct, share of the `all` row."""
    return next(line for line in stdout.splitlines() if line.startswith("all")).split()[1:4]


# The reader.

def test_editor_variants_read_as_the_same_entries():
    text = sample_text()
    variants = {
        "BOM": "\ufeff" + text,
        "CRLF": text.replace("\n", "\r\n"),
        "CR": text.replace("\n", "\r"),
        "no spaces in headers": re.sub(r"=== (\d+) ===", r"===\1===", text),
        "a missing space": text.replace("=== 3 ===", "=== 3===").replace("=== 5 ===", "===5 ==="),
        "indents, tabs, trailing spaces": re.sub(r"(?m)^(=== \d+ ===|rating:.*)$", "\t \\1  ", text),
        "spelling of field names": text.replace("mark:", "Mark :").replace("review:", "REVIEW:"),
        "a non-breaking space around the number": text.replace("=== 2 ===", "===\u00a02\u00a0==="),
    }
    expected = entries()
    for name, variant in variants.items():
        sample = read_sample_file(variant)
        assert sample.errors == [], name
        assert sample.entries == expected, name


REVIEW_4 = "review: Отзыв номер 4."


@pytest.mark.parametrize("edit, line, message", [
    # (the edit; the original line the error is at, + lines added before it; the message, from the edited text)
    (lambda t: t.replace("=== 4 ===", "=== 3 ==="), ("=== 4 ===", 0),
     lambda t: f"entry 3 again (the first is at line {line_of(t, '=== 3 ===')})"),
    (lambda t: t.replace("=== 4 ===", "== 4 ==="), ("=== 4 ===", 0), lambda t: "not an entry header '== 4 ==='"),
    (lambda t: t.replace("=== 4 ===", "=== 4"), ("=== 4 ===", 0), lambda t: "not an entry header '=== 4'"),
    (lambda t: t.replace("=== 4 ===", "=== four ==="), ("=== 4 ===", 0), lambda t: "not an entry header"),
    (lambda t: t.replace(REVIEW_4, REVIEW_4 + "\nmark: 0"), (REVIEW_4, 2),  # the first mark is the added one
     lambda t: f"a second 'mark:' line in entry 4 (the first is at line {line_of(t, REVIEW_4) + 1})"),
    (lambda t: t.replace(REVIEW_4, REVIEW_4 + "\nreview: другой"), (REVIEW_4, 1),
     lambda t: f"a second 'review:' line in entry 4 (the first is at line {line_of(t, REVIEW_4)})"),
    (lambda t: t.replace(REVIEW_4, "review: Отзыв\nномер 4."), (REVIEW_4, 1),
     lambda t: "'номер 4.' in entry 4 is not a field"),
    (lambda t: t.replace("\n=== 1 ===", "\nstray text\n=== 1 ==="), ("=== 1 ===", 0),
     lambda t: "'stray text' is outside an entry"),
    (lambda t: t.replace("=== 4 ===", "=== 003 ==="), ("=== 4 ===", 0),
     lambda t: f"entry 3 again (the first is at line {line_of(t, '=== 3 ===')})"),
    (lambda t: t.replace("# test\n", "# Sample id: 0123456789abcdef\n# Sample id: fedcba9876543210\n"), ("# test", 1),
     lambda t: "a second sample id (fedcba9876543210, the first is 0123456789abcdef)"),
])
def test_what_the_reader_cannot_place_is_an_error_naming_its_line(tmp_path, edit, line, message):
    original = sample_text()
    text = edit(original)
    expected = f"line {line_of(original, line[0]) + line[1]}: {message(text)}"
    sample = read_sample_file(text)
    assert len(sample.errors) == 1 and sample.errors[0].startswith(expected), sample.errors
    with pytest.raises(SampleFormatError):
        parse_sample(text)
    path = write(tmp_path / "s.txt", text)
    scored = script_here("score_sample.py", path)
    assert scored.returncode == 1 and expected in scored.stderr and len(scored.stderr.splitlines()) == 1
    assert "all " not in scored.stdout  # no score at all, rather than a score of other entries
    marked = script_here("score_sample.py", "--mark", path, stdin="1\n1\n1\n")
    assert marked.returncode == 1 and expected in marked.stderr and "mark 1 (fits)" not in marked.stdout
    assert path.read_bytes() == text.encode("utf-8")


def test_no_line_is_merged_into_a_neighbour():
    """Entry 4's broken header must not hand its fields to entry 3 (whose mark would then be entry 4's)."""
    text = sample_text().replace("=== 4 ===", "==== 4")
    sample = read_sample_file(text)
    assert [e.number for e in sample.entries] == [1, 2, 3, 5, 6, 7, 8]
    assert sample.entries[2] == entries()[2]


def test_an_entry_missing_fields_and_bad_marks_are_counted_warnings_naming_entry_and_line(tmp_path):
    text = sample_text().replace("keywords: кофе, десерт\nreview: Отзыв номер 6.", "review: Отзыв номер 6.")
    path = write(tmp_path / "s.txt", text.replace("mark: 1\n\n=== 5 ===", "mark: 2\n\n=== 5 ==="))
    result = script_here("score_sample.py", path)
    assert result.returncode == 0, result.stderr
    assert "2 unmarked entries excluded: 3, 7" in result.stderr
    assert (f"3 malformed entries excluded: 4 at line {line_of(text, '=== 4 ===')} (mark '2' is not 0 or 1); "
            f"5 at line {line_of(text, '=== 5 ===')} (mark 'yes' is not 0 or 1); "
            f"6 at line {line_of(text, '=== 6 ===')} (missing keywords)") in result.stderr
    assert overall(result.stdout) == ["3", "2", "0.67"]  # entries 1, 2 and 8
    assert read_sample_file(path.read_text(encoding="utf-8")).entries[5] == Incomplete(6, ("keywords",))


def test_a_bom_before_the_first_header_loses_no_entry(tmp_path):
    text = format_sample([], entries()).split("\n", 2)[2]  # no header: the file starts with "=== 1 ==="
    result = script_here("score_sample.py", write(tmp_path / "s.txt", "\ufeff" + text))
    assert result.returncode == 0 and overall(result.stdout) == ["5", "3", "0.60"]  # entries 1, 2, 4, 6, 8


def test_a_number_missing_from_the_file_is_a_warning(tmp_path):
    text = sample_text()
    start, end = text.index("=== 5 ==="), text.index("=== 6 ===")
    result = script_here("score_sample.py", write(tmp_path / "s.txt", text[:start] + text[end:]))
    assert result.returncode == 0
    assert "the entries are numbered up to 8, but 1 number(s) are not in the file: 5" in result.stderr


def test_empty_and_undecodable_files_are_one_line_errors_naming_the_file(tmp_path):
    empty = write(tmp_path / "empty.txt", "# only a header\n\n")
    for args in ((empty,), ("--mark", empty)):
        result = script_here("score_sample.py", *args)
        assert result.returncode == 1 and result.stderr == f"error: {empty} holds no entries ('=== N ===' headers " \
                                                           f"written by sample.py)\n"
    latin = tmp_path / "latin.txt"
    latin.write_bytes(sample_text().replace("Отзыв", "Caf\xe9").encode("latin-1", errors="replace"))
    result = script_here("score_sample.py", latin)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert f"cannot read {latin}: not UTF-8 text" in result.stderr


# Marking.

def changed_lines(before: bytes, after: bytes) -> list[int]:
    old, new = before.split(b"\n"), after.split(b"\n")
    assert len(old) == len(new)
    return [i + 1 for i, (a, b) in enumerate(zip(old, new)) if a != b]


def test_marking_changes_only_the_mark_lines_of_the_answered_entries(tmp_path):
    """A file as an editor may leave it: BOM, CRLF, a header without spaces, a field name in capitals, bad marks."""
    plain = sample_text().replace("=== 3 ===", "===3===").replace("mark: yes", "MARK:  yes")
    text = "\ufeff" + plain.replace("\n", "\r\n")
    path = write(tmp_path / "s.txt", text)
    before = path.read_bytes()
    result = script_here("score_sample.py", "--mark", path, stdin="1\ns\n0\nq\n")  # entries 3, 5 (yes), 7 offered
    assert result.returncode == 0, result.stderr
    shown = re.findall(r"^=== (\d+) ===", result.stdout, re.M)
    assert shown == ["3", "5", "7"]
    assert "(its mark 'yes' is not 0 or 1: the answer replaces it)" in result.stdout
    after = path.read_bytes()
    assert after.startswith(b"\xef\xbb\xbf") and after.count(b"\r\n") == before.count(b"\r\n")
    assert changed_lines(before, after) == [line_of(plain, "===3===") + 5, line_of(plain, "=== 7 ===") + 5]
    assert [e.mark for e in parse_sample(after.decode("utf-8"))] == ["1", "0", "1", "1", "yes", "0", "0", "1"]
    assert after.decode("utf-8").split("\r\n")[line_of(plain, "===3===") + 4] == "mark: 1"


def test_marking_does_not_overwrite_an_edit_made_meanwhile(tmp_path, monkeypatch):
    path = write(tmp_path / "s.txt", sample_text())
    answers = iter(["1", "0"])

    def answer_and_edit(prompt=""):
        value = next(answers)
        if value == "0":  # the first answer is saved; now someone edits the file in an editor
            path.write_text(path.read_text(encoding="utf-8").replace("mark: yes", "mark: 1"), encoding="utf-8")
        return value

    monkeypatch.setattr(builtins, "input", answer_and_edit)
    result = script_here("score_sample.py", "--mark", path)
    assert result.returncode == 1 and "was changed by something else while marking" in result.stderr
    assert [e.mark for e in parse_sample(path.read_text(encoding="utf-8"))] == ["1", "0", "1", "1", "1", "0", "",
                                                                                "1"]


def test_marking_says_which_entries_it_cannot_mark(tmp_path):
    text = sample_text(["1"] * 8).replace("keywords: кофе, десерт\nreview: Отзыв номер 6.", "review: Отзыв номер 6.")
    path = write(tmp_path / "s.txt", text)
    result = script_here("score_sample.py", "--mark", path, stdin="1\n")
    assert result.returncode == 0 and "mark 1 (fits)" not in result.stdout
    assert "every entry that can be marked is marked" in result.stdout and "1 entries lack fields" in result.stdout
    assert f"6 at line {line_of(text, '=== 6 ===')} (missing keywords)" in result.stderr
    assert path.read_bytes() == text.encode("utf-8")


# Random hand edits: whatever they do, it is an error, a warning naming the entry, or it changes nothing.

JUNK = ["", "mark: 1", "mark: 0", "=== 3 ===", "=== 99 ===", "== 2 ==", "review: вставка", "просто текст",
        "# комментарий", "rating: 4", "\ufeff=== 6 ===", "===", "mark:"]


def random_edit(lines: list[str], rng: random.Random) -> tuple[list[str], set[int]]:
    """(edited lines, indices of the original lines the edit touched or that follow an inserted line)."""
    lines, i = list(lines), rng.randrange(len(lines))
    kind = rng.choice(["delete", "duplicate", "swap", "insert", "mutate"])
    if kind == "delete":
        del lines[i]
        return lines, {i}
    if kind == "duplicate":
        lines.insert(i, lines[i])
        return lines, {i}
    if kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return lines, {i, j}
    if kind == "insert":
        lines.insert(i, rng.choice(JUNK))
        return lines, {i}
    mutations = [lambda s: s.replace(" ", "", 1), lambda s: s.replace("=", "", 1), lambda s: s.upper(),
                 lambda s: s + " ещё", lambda s: " " + s, lambda s: s.replace(":", "", 1), lambda s: "",
                 lambda s: s.replace("1", "7")]
    lines[i] = rng.choice(mutations)(lines[i])
    return lines, {i}


def blocks(lines: list[str]) -> dict[int, tuple[int, int]]:
    """Entry number -> (first, last + 1) line index of its block, by a plain look for `=== N ===` lines."""
    starts = [(i, int(m.group(1))) for i, line in enumerate(lines)
              if (m := re.fullmatch(r"===\s*(\d+)\s*===", line.strip().lstrip("\ufeff").strip()))]
    return {number: (start, (starts[k + 1][0] if k + 1 < len(starts) else len(lines)))
            for k, (start, number) in enumerate(starts)}


@pytest.mark.parametrize("seed", range(6))
def test_random_hand_edits_never_change_the_measurement_silently(tmp_path, seed):
    rng = random.Random(seed)
    original = sample_text().split("\n")
    original_blocks = blocks(original)
    original_marks = {e.number: e.mark for e in entries()}
    for attempt in range(40):
        lines, touched = random_edit(original, rng)
        text = "\n".join(lines)
        sample = read_sample_file(text)
        path = write(tmp_path / f"s{attempt}.txt", text)
        if sample.errors:
            assert all(re.match(r"line \d+: ", error) for error in sample.errors)
            result = script_here("score_sample.py", "--mark", path, stdin="1\n" * 10)
            assert result.returncode == 1 and "mark 1 (fits)" not in result.stdout
            assert path.read_bytes() == text.encode("utf-8")
            continue
        found = blocks(lines)
        assert sorted(e.number for e in sample.entries) == sorted(found), text  # every entry the file holds
        unchanged = {n for n, (a, b) in original_blocks.items() if not touched & set(range(a - 1, b + 1))}
        for entry in sample.entries:
            if entry.number in unchanged and entry.number in found:
                assert isinstance(entry, Entry) and entry.mark == original_marks[entry.number], text
        scored = script_here("score_sample.py", path)
        counted = {e.number for e in sample.entries if isinstance(e, Entry) and e.mark in ("0", "1")}
        warned = set(map(int, re.findall(r"(\d+) at line \d+", scored.stderr)))
        unmarked = re.search(r"unmarked entries excluded: ([\d, ]+)", scored.stderr)
        warned |= set(map(int, unmarked.group(1).split(", "))) if unmarked else set()
        assert counted | warned == set(found) and not counted & warned, (text, scored.stderr)
        if counted:
            assert scored.returncode == 0 and overall(scored.stdout)[0] == str(len(counted))
        check_marking_touches_only_shown_entries(path, lines)


def check_marking_touches_only_shown_entries(path, lines):
    before = path.read_bytes()
    result = script_here("score_sample.py", "--mark", path, stdin="1\n0\n1\n0\n1\n0\n1\n0\n")
    assert result.returncode == 0, result.stderr
    after = path.read_bytes().decode("utf-8").split("\n")
    spans = blocks(lines)
    shown = {int(number): review for number, review in
             re.findall(r"^=== (\d+) ===.*\n(?:(?!=== ).*\n)*?review: (.*)$", result.stdout, re.M)}
    for index in changed_lines(before, path.read_bytes()):
        number = next(n for n, (a, b) in spans.items() if a < index <= b)
        assert number in shown, "a mark was written to an entry that was not shown"
        block = lines[spans[number][0]:spans[number][1]]
        assert any(line.strip().lower().startswith("review") and line.split(":", 1)[1].strip() == shown[number]
                   for line in block), "the entry shown is not the entry whose mark changed"
        assert re.fullmatch(r"\s*mark\s*:\s*[01]", after[index - 1], re.I)
