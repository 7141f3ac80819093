"""Several models in one sample (blind or labelled), scoring and comparing them, and marking in the terminal."""

import json
import math
import re
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DEMO_INPUT, ROOT, SCRIPTS, script_here, tool_env
from scipy.stats import norm

from reviewkit.marking.comparison import (FISHER, MCNEMAR, compare, fisher_exact_p, mcnemar_exact_p, newcombe_interval,
                                          wilson_interval)
from reviewkit.marking.key import format_key, key_path_for
from reviewkit.marking.sample_file import Entry, compute_sample_id, entry_fingerprint, format_sample, parse_sample

PROMPTS = [(5, "Кафе;Кофейня", ["кофе", "десерт"]), (1, "Аптека", ["очередь"]), (4, "Автосервис", ["шина"]),
           (2, "Супермаркет", ["касса", "акция"]), (3, "Кафе", ["обед"]), (5, "Салон красоты", ["мастер"]),
           (1, "Банк", ["кредит"]), (4, "Фитнес-клуб", ["тренер", "зал"])]




@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A test split of 8 prompts and two tiny untrained demo models: (data dir, model dir 1, model dir 2).

    The first has a summary.json beside it naming experiment train_t5 (its label); the second is labelled
    by its directory name, lora_run.
    """
    from reviewkit.training.demo import build_demo_model

    tmp = tmp_path_factory.mktemp("two_models")
    (tmp / "data").mkdir()
    pq.write_table(pa.table({"rating": pa.array([p[0] for p in PROMPTS], pa.int8()),
                             "rubrics": [p[1] for p in PROMPTS],
                             "keywords": pa.array([p[2] for p in PROMPTS], pa.list_(pa.string()))}),
                   tmp / "data" / "test.parquet")
    lines = DEMO_INPUT.read_text(encoding="utf-8").splitlines()[:300]
    texts = [field.removeprefix("text=") for line in lines for field in line.split("\t") if field.startswith("text=")]
    first = build_demo_model(texts, tmp / "t5_run" / "final", seed=0)
    (tmp / "t5_run" / "summary.json").write_text(json.dumps({"experiment": "train_t5"}), encoding="utf-8")
    second = build_demo_model(texts, tmp / "lora_run", seed=1)
    return tmp / "data", first, second


def run_sample(data, *args):
    import sample

    return sample.main(["--data_dir", str(data), "--num_prompts", "6", "--seed", "3", "--max_new_tokens", "12",
                        *map(str, args)])


def test_blind_sample_shuffles_both_models_unnamed_and_its_key_maps_each_entry_back(two_models, tmp_path):
    data, first, second = two_models
    output = tmp_path / "t5_vs_lora.txt"
    assert run_sample(data, "--model", first, "--model", second, "--blind", "--output", output) == 0
    for model, name in ((first, "train_t5"), (second, "lora_run")):
        assert run_sample(data, "--model", model, "--output", tmp_path / f"alone_{name}.txt") == 0
    text = output.read_text(encoding="utf-8")
    for hint in ("train_t5", "lora_run", str(first), str(second), "model:", "t5_run"):
        assert hint not in text
    entries = parse_sample(text)
    assert [e.number for e in entries] == list(range(1, 13)) and all(isinstance(e, Entry) for e in entries)
    key = json.loads((tmp_path / "t5_vs_lora.key.json").read_text(encoding="utf-8"))
    assert [m["label"] for m in key["models"]] == ["train_t5", "lora_run"]
    assert [m["path"] for m in key["models"]] == [str(first), str(second)]
    assert key["sample_id"] in text and key["blind"] is True
    keyed = [(key["entries"][str(e.number)]["model"], key["entries"][str(e.number)]["prompt_index"]) for e in entries]
    assert sorted(keyed) == sorted((label, k) for label in ("train_t5", "lora_run") for k in range(6))
    assert keyed != sorted(keyed, key=lambda pair: (pair[1], pair[0] != "train_t5"))  # not grouped by prompt
    alone = {name: parse_sample((tmp_path / f"alone_{name}.txt").read_text(encoding="utf-8"))
             for name in ("train_t5", "lora_run")}
    for entry, (label, prompt) in zip(entries, keyed):  # the same prompt and review as the model's own sample
        own = alone[label][prompt]
        assert (entry.rating, entry.rubrics, entry.keywords, entry.review) == (own.rating, own.rubrics,
                                                                               own.keywords, own.review)
    marked = text.replace("mark:", "mark: 1")
    first_review, second_review = entries[0].review, entries[1].review
    output.write_text(marked, encoding="utf-8")
    assert script_here("score_sample.py", output, "--key", key_path_for(output)).returncode == 0
    output.write_text(swap(marked, first_review, second_review), encoding="utf-8")  # as another shuffle would
    swapped = script_here("score_sample.py", output, "--key", key_path_for(output))
    assert swapped.returncode == 1 and "entry 1 (line " in swapped.stderr
    output.write_text(text, encoding="utf-8")
    again = tmp_path / "again" / "t5_vs_lora.txt"
    again.parent.mkdir()
    assert run_sample(data, "--model", first, "--model", second, "--blind", "--output", again) == 0
    assert again.read_text(encoding="utf-8") == text  # seeded: the same shuffle and reviews
    assert key_path_for(again).read_text(encoding="utf-8") == key_path_for(output).read_text(encoding="utf-8")


def test_labelled_sample_groups_by_prompt_and_without_key_scoring_asks_for_it(two_models, tmp_path):
    data, first, second = two_models
    output = tmp_path / "labelled.txt"
    assert run_sample(data, "--model", first, "--model", second, "--label", "full", "--label", "lora",
                      "--output", output) == 0
    entries = parse_sample(output.read_text(encoding="utf-8"))
    assert [e.model for e in entries] == ["full", "lora"] * 6
    assert all((a.rating, a.rubrics, a.keywords) == (b.rating, b.rubrics, b.keywords)
               for a, b in zip(entries[::2], entries[1::2]))
    key = json.loads(key_path_for(output).read_text(encoding="utf-8"))
    assert key["blind"] is False and [key["entries"][str(n)]["prompt_index"] for n in (1, 2, 3)] == [0, 0, 1]
    marked = output.read_text(encoding="utf-8").replace("mark:", "mark: 1")
    output.write_text(marked, encoding="utf-8")
    result = script_here("score_sample.py", output)
    assert result.returncode == 1 and "holds entries of 2 models (full, lora): pass --key" in result.stderr
    scored = script_here("score_sample.py", output, "--key", key_path_for(output))
    assert scored.returncode == 0, scored.stderr
    assert "model full: " in scored.stdout and "McNemar's exact test on 6 prompts" in scored.stdout


def test_one_model_writes_no_key_and_the_committed_sample_still_parses(two_models, tmp_path):
    data, first, _ = two_models
    output = tmp_path / "one.txt"
    assert run_sample(data, "--model", first, "--output", output) == 0
    text = output.read_text(encoding="utf-8")
    assert text.startswith(f"# Generated by scripts/sample.py: model {first}\n")
    assert "Sample id" not in text and "\nmodel:" not in text and [p.name for p in tmp_path.iterdir()] == ["one.txt"]
    committed = parse_sample((ROOT / "t5_sample.txt").read_text(encoding="utf-8"))
    assert len(committed) == 100 and all(isinstance(e, Entry) and e.model == "" for e in committed)


@pytest.mark.parametrize("labels, message", [
    ([], "the models get the same label (lora_run): pass one distinct --label per --model, in the same order"),
    (["--label", "x", "--label", "x"], "--label values must be unique (x): pass one distinct --label per --model, "
                                       "in the same order"),
])
def test_labels_that_do_not_tell_the_models_apart_are_one_line(two_models, tmp_path, capsys, labels, message):
    data, _, second = two_models
    assert run_sample(data, "--model", second, "--model", second, *labels, "--output", tmp_path / "s.txt") == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_blind_with_one_model_is_a_usage_error(tmp_path):
    result = script_here("sample.py", "--model", tmp_path, "--blind", "--data_dir", tmp_path)
    assert result.returncode == 2 and result.stderr.strip().endswith("--blind needs at least two --model (see --help)")
    assert len(result.stderr.splitlines()) == 1


def test_more_prompts_than_the_test_split_is_said_on_one_line(two_models, tmp_path, capsys):
    data, first, _ = two_models
    output = tmp_path / "all.txt"
    assert run_sample(data, "--model", first, "--num_prompts", 20, "--output", output) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "--num_prompts" in line]
    assert notes == [f"note: --num_prompts 20 is more than the {len(PROMPTS)} rows of {data / 'test.parquet'}: the sample has "
                     f"all {len(PROMPTS)}"]
    assert len(parse_sample(output.read_text(encoding="utf-8"))) == len(PROMPTS)


def test_null_rubrics_and_keywords_in_the_test_split_read_as_empty(two_models, tmp_path):
    _, first, _ = two_models
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"rating": pa.array([5, 1, 4], pa.int8()), "rubrics": ["Кафе", None, "Банк"],
                             "keywords": pa.array([["кофе"], ["очередь"], None], pa.list_(pa.string()))}),
                   tmp_path / "data" / "test.parquet")
    output = tmp_path / "s.txt"
    assert run_sample(tmp_path / "data", "--model", first, "--num_prompts", 3, "--output", output) == 0
    entries = {(e.rating, e.rubrics, e.keywords) for e in parse_sample(output.read_text(encoding="utf-8"))}
    assert entries == {("5", "Кафе", "кофе"), ("1", "", "очередь"), ("4", "Банк", "")}


def test_a_bad_rating_in_the_test_split_names_its_row(two_models, tmp_path, capsys):
    _, first, _ = two_models
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"rating": pa.array([5, 9], pa.int8()), "rubrics": ["Кафе", "Банк"],
                             "keywords": pa.array([["кофе"], ["кредит"]], pa.list_(pa.string()))}),
                   tmp_path / "data" / "test.parquet")
    assert run_sample(tmp_path / "data", "--model", first, "--num_prompts", 2, "--output", tmp_path / "s.txt") == 1
    assert capsys.readouterr().err == (f"error: {tmp_path / 'data' / 'test.parquet'} row 2: rating must be an "
                                       f"integer from 1 to 5, got 9\n")


def test_an_output_that_cannot_be_written_after_generation_is_one_line(two_models, tmp_path, monkeypatch, capsys):
    """The directory passes the check before the model loads, and is gone when the sample is written."""
    import shutil

    import sample

    data, first, second = two_models
    generate = sample.generate_with

    def generate_then_remove(*args):
        reviews = generate(*args)
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        return reviews

    monkeypatch.setattr(sample, "generate_with", generate_then_remove)
    for models in ([first], [first, second]):
        (tmp_path / "out").mkdir(exist_ok=True)
        output = tmp_path / "out" / "s.txt"
        assert run_sample(data, *(f for m in models for f in ("--model", m)), "--output", output) == 1
        written = output if len(models) == 1 else key_path_for(output)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error" in line.lower()]
        assert errors == [f"error: cannot write {written}: No such file or directory"] and "Traceback" not in err


# The statistics, checked against textbook formulas computed here and against Newcombe's published table.

def textbook_wilson(x, n, z=norm.ppf(0.975)):
    p = x / n
    centre, spread = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def textbook_newcombe(x1, n1, x2, n2):
    (l1, u1), (l2, u2) = textbook_wilson(x1, n1), textbook_wilson(x2, n2)
    p1, p2 = x1 / n1, x2 / n2
    return p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def textbook_mcnemar(b, c):
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n)


def textbook_fisher(x1, n1, x2, n2):
    """Two-sided: the probability of all tables with the margins of this one that are no more likely than it."""
    total, correct = n1 + n2, x1 + x2

    def probability(a):
        return math.comb(n1, a) * math.comb(n2, correct - a) / math.comb(total, correct)

    observed = probability(x1)
    return sum(probability(a) for a in range(max(0, correct - n2), min(n1, correct) + 1)
               if probability(a) <= observed * (1 + 1e-7))


@pytest.mark.parametrize("x, n", [(87, 100), (0, 10), (10, 10), (3, 7), (29, 40)])
def test_wilson_interval_is_the_textbook_score_interval(x, n):
    assert wilson_interval(x, n) == pytest.approx(textbook_wilson(x, n), abs=1e-9)


@pytest.mark.parametrize("counts, published", [  # Newcombe 1998, Table II, method 10
    ((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090)), ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)), ((0, 10, 0, 10), (-0.2775, 0.2775)), ((10, 10, 0, 20), (0.6791, 1.0)),
    ((10, 10, 0, 10), (0.6075, 1.0)),
])
def test_newcombe_interval_matches_the_formula_and_the_published_table(counts, published):
    low, high = newcombe_interval(*counts)
    assert (low, high) == pytest.approx(textbook_newcombe(*counts), abs=1e-9)
    assert (low, high) == pytest.approx(published, abs=5e-5)


@pytest.mark.parametrize("b, c", [(9, 3), (0, 5), (7, 7), (1, 0), (0, 0), (25, 11)])
def test_mcnemar_exact_p_is_the_binomial_tail_of_the_discordant_pairs(b, c):
    assert mcnemar_exact_p(b, c) == pytest.approx(textbook_mcnemar(b, c), rel=1e-9)


@pytest.mark.parametrize("counts", [(29, 40, 23, 40), (3, 10, 9, 10), (0, 5, 5, 5), (12, 30, 20, 45)])
def test_fisher_exact_p_is_the_hypergeometric_sum(counts):
    assert fisher_exact_p(*counts) == pytest.approx(textbook_fisher(*counts), rel=1e-7)


def test_compare_pairs_only_when_given_pairs():
    paired = compare([1, 1, 0, 1], [0, 1, 0, 0], [(1, 0), (1, 1), (0, 0), (1, 0)])
    assert (paired.test, paired.pairs, paired.only_a_correct, paired.only_b_correct) == (MCNEMAR, 4, 2, 0)
    assert paired.difference == pytest.approx(0.5)
    assert compare([1, 1, 0, 1], [0, 1, 0, 0], None).test == FISHER


# score_sample.py on known marks.

def known_sample(tmp_path, outcomes, paired=True, labels=("full", "lora"), fingerprints=True, review="Отзыв"):
    """A marked sample and its key: outcomes[k] = the marks of prompt k, one per label ('' = unmarked).

    fingerprints=False writes a key as sample.py did before entry fingerprints.
    """
    entries, keyed, number = [], {}, 0
    for prompt, marks in enumerate(outcomes):
        for label, mark in zip(labels, marks):
            number += 1
            entries.append(Entry(number, str(1 + prompt % 5), "Кафе", "кофе", f"{review} {number}", mark))
            keyed[number] = {"model": label, "path": f"/models/{label}", "prompt_index": prompt if paired else None}
            if fingerprints:
                keyed[number]["fingerprint"] = entry_fingerprint(entries[-1])
    sample = tmp_path / "s.txt"
    unmarked = [Entry(e.number, e.rating, e.rubrics, e.keywords, e.review) for e in entries]
    sample_id = compute_sample_id(unmarked)
    sample.write_text(format_sample([f"Sample id: {sample_id}"], entries), encoding="utf-8")
    models = [{"label": label, "path": f"/models/{label}"} for label in labels]
    key_path_for(sample).write_text(format_key(models, keyed, sample_id), encoding="utf-8")
    return sample, key_path_for(sample)


def figures(line):
    """The numbers of a printed line, in order."""
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+(?:e[-+]?\d+)?|(?<![\w.])\d+(?![\w.])", line)]


# 20 prompts both right, 9 only full, 3 only lora, 8 both wrong: full 29/40, lora 23/40.
PAIRED = [("1", "1")] * 20 + [("1", "0")] * 9 + [("0", "1")] * 3 + [("0", "0")] * 8


def test_two_paired_models_get_their_shares_the_newcombe_difference_and_mcnemar(tmp_path):
    sample, key = known_sample(tmp_path, PAIRED)
    result = script_here("score_sample.py", sample, "--key", key)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for label, correct in (("full", 29), ("lora", 23)):
        all_line = lines[lines.index(f"model {label}: /models/{label}") + 2]
        low, high = textbook_wilson(correct, 40)
        assert figures(all_line) == [40, correct, round(correct / 40, 2), round(low, 2), round(high, 2)]
    assert "full vs lora" in lines
    difference = next(line for line in lines if "difference of shares" in line)
    low, high = textbook_newcombe(29, 40, 23, 40)
    assert figures(difference) == pytest.approx([0.15, 95, round(low, 2), round(high, 2)])
    assert "Newcombe's hybrid score method" in difference
    test = next(line for line in lines if "McNemar's exact test" in line)
    assert figures(test)[:3] == [40, 9, 3]
    assert figures(test)[-1] == float(f"{textbook_mcnemar(9, 3):.3g}")


def test_unpaired_models_are_compared_by_fisher(tmp_path):
    sample, key = known_sample(tmp_path, PAIRED, paired=False)
    result = script_here("score_sample.py", sample, "--key", key)
    assert result.returncode == 0, result.stderr
    test = next(line for line in result.stdout.splitlines() if "Fisher's exact test" in line)
    assert "cannot be paired" in test and "McNemar" not in result.stdout
    assert figures(test)[-1] == float(f"{textbook_fisher(29, 40, 23, 40):.3g}")


def test_three_models_are_compared_pairwise_and_unmarked_entries_are_listed(tmp_path):
    outcomes = [("1", "0", "1"), ("1", "1", ""), ("0", "0", "1"), ("1", "0", "0"), ("1", "1", "yes")]
    sample, key = known_sample(tmp_path, outcomes, labels=("a", "b", "c"))
    result = script_here("score_sample.py", sample, "--key", key)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if " vs " in line] == ["a vs b", "a vs c", "b vs c"]
    assert "1 unmarked entries excluded: 6" in result.stderr
    header = sample.read_text(encoding="utf-8").splitlines().index("=== 15 ===") + 1
    assert f"1 malformed entries excluded: 15 at line {header} (mark 'yes' is not 0 or 1)" in result.stderr
    a_vs_c = result.stdout.split("a vs c")[1]
    assert "McNemar's exact test on 3 prompts marked for both: 1 correct only for a, 1 only for c" in a_vs_c


def test_a_key_that_does_not_fit_the_sample_is_one_line(tmp_path):
    sample, key = known_sample(tmp_path, PAIRED[:4])
    text = sample.read_text(encoding="utf-8")
    cases = {"entries of the key not in the file: 8": text.split("=== 8 ===")[0],
             "entries of the file not in the key: 9": text + "=== 9 ===\nrating: 5\nrubrics: a\nkeywords: b\n"
                                                          "review: c\nmark: 1\n",
             "it is the key of sample": re.sub(r"Sample id: \w+", "Sample id: 0123456789abcdef", text)}
    for message, changed in cases.items():
        sample.write_text(changed, encoding="utf-8")
        result = script_here("score_sample.py", sample, "--key", key)
        assert result.returncode == 1 and message in result.stderr and len(result.stderr.splitlines()) == 1
    sample.write_text(text, encoding="utf-8")
    for bad_key, message in ((tmp_path / "missing.json", "cannot read key"), (sample, "not JSON")):
        result = script_here("score_sample.py", sample, "--key", bad_key)
        assert result.returncode == 1 and message in result.stderr and len(result.stderr.splitlines()) == 1


def swap(text: str, a: str, b: str) -> str:
    return text.replace(a, "\0").replace(b, a).replace("\0", b)


def without_id_lines(sample, key):
    """Delete the sample-id line of the file and the sample_id of the key."""
    sample.write_text(re.sub(r"# Sample id: \w+\n", "", sample.read_text(encoding="utf-8")), encoding="utf-8")
    document = json.loads(key.read_text(encoding="utf-8"))
    del document["sample_id"]
    key.write_text(json.dumps(document), encoding="utf-8")


def test_a_key_of_another_sample_of_the_same_size_is_refused_without_the_id_lines(tmp_path):
    sample, key = known_sample(tmp_path, PAIRED[:4])
    (tmp_path / "other").mkdir()
    other_sample, other_key = known_sample(tmp_path / "other", PAIRED[:4], review="Другой отзыв")
    for path in (key, other_key):
        without_id_lines(sample if path == key else other_sample, path)
    assert "Sample id" not in sample.read_text(encoding="utf-8")
    own = script_here("score_sample.py", sample, "--key", key)
    assert own.returncode == 0 and "full vs lora" in own.stdout, own.stderr  # the content ties them, not the id
    header = sample.read_text(encoding="utf-8").splitlines().index("=== 1 ===") + 1
    for args in ((sample, "--key", other_key), ("--mark", sample, "--key", other_key)):
        result = script_here("score_sample.py", *args, stdin="1\n")
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1 and "mark 1" not in result.stdout
        assert f"entry 1 (line {header}) is not the entry the key was written for" in result.stderr


def test_a_key_refuses_a_file_whose_entry_was_changed_and_names_it(tmp_path):
    sample, key = known_sample(tmp_path, PAIRED[:4])
    text = sample.read_text(encoding="utf-8")
    sample.write_text(swap(text, "review: Отзыв 6\n", "review: Отзыв 7\n"), encoding="utf-8")
    changed = [e.number for e, f in zip(parse_sample(sample.read_text(encoding="utf-8")), parse_sample(text))
               if e.review != f.review]
    assert changed == [6, 7]  # two reviews swapped: the same set of texts, each under the other's number
    result = script_here("score_sample.py", sample, "--key", key)
    header = sample.read_text(encoding="utf-8").splitlines().index("=== 6 ===") + 1
    assert result.returncode == 1 and f"entry 6 (line {header}) is not the entry the key" in result.stderr
    spaced = text.replace("review: Отзыв 6", "review:   Отзыв   6  ")  # whitespace an editor may change
    sample.write_text(spaced, encoding="utf-8")
    assert script_here("score_sample.py", sample, "--key", key).returncode == 0


def test_a_key_written_before_fingerprints_loads_only_for_its_unchanged_sample(tmp_path):
    new_sample, new_key = known_sample(tmp_path, PAIRED)
    expected = script_here("score_sample.py", new_sample, "--key", new_key)
    (tmp_path / "old").mkdir()
    sample, key = known_sample(tmp_path / "old", PAIRED, fingerprints=False)
    assert "fingerprint" not in key.read_text(encoding="utf-8")
    scored = script_here("score_sample.py", sample, "--key", key)
    assert scored.returncode == 0 and scored.stdout == expected.stdout.replace(str(tmp_path / "s.txt"), str(sample))
    text = sample.read_text(encoding="utf-8")
    sample.write_text(re.sub(r"# Sample id: \w+\n", "", text), encoding="utf-8")
    assert script_here("score_sample.py", sample, "--key", key).returncode == 0  # the id line is not needed
    sample.write_text(text.replace("review: Отзыв 5", "review: Отзыв 50"), encoding="utf-8")  # the id line kept
    changed = script_here("score_sample.py", sample, "--key", key)
    assert changed.returncode == 1 and len(changed.stderr.splitlines()) == 1
    assert "written by an older sample.py without entry fingerprints" in changed.stderr
    assert "regenerate the sample and its key with sample.py" in changed.stderr
    sample.write_text(text, encoding="utf-8")
    without_id_lines(sample, key)
    neither = script_here("score_sample.py", sample, "--key", key)
    assert neither.returncode == 1 and "neither entry fingerprints nor a sample id" in neither.stderr


def drop(mapping, name):
    del mapping[name]


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["models"][0].pop("label"), "model 1 of 'models' has no 'label'"),
    (lambda d: d.update(models="full, lora"), "it has no 'models' list"),
    (lambda d: drop(d, "entries"), "it has no 'entries' object"),
    (lambda d: d["entries"].update({"1": "full"}), "entry 1 does not name its model"),
    (lambda d: d["entries"]["2"].pop("model"), "entry 2 does not name its model"),
    (lambda d: d["entries"]["3"].update(model="base"), "entry 3 names model 'base', which is not in 'models'"),
    (lambda d: d["entries"]["2"].pop("fingerprint"), "entry 2 has no fingerprint, and other entries have one"),
    (lambda d: d["entries"]["2"].update(fingerprint="xyz"), "entry 2: fingerprint 'xyz' is not 16 hexadecimal digits"),
    (lambda d: d["entries"].update({"x": d["entries"]["1"]}), "'x' in 'entries' is not an entry number"),
    (lambda d: d["entries"]["4"].update(prompt_index="1"), "entry 4: prompt_index '1' is not an integer"),
    (lambda d: d.update(sample_id=7), "its sample_id 7 is not a string"),
])
def test_a_key_missing_a_field_gets_a_sentence(tmp_path, damage, message):
    sample, key = known_sample(tmp_path, PAIRED[:4])
    document = json.loads(key.read_text(encoding="utf-8"))
    damage(document)
    key.write_text(json.dumps(document), encoding="utf-8")
    result = script_here("score_sample.py", sample, "--key", key)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"error: {key} is not a key written by sample.py: {message}\n"


def test_a_key_that_is_not_a_json_object_gets_a_sentence(tmp_path):
    sample, key = known_sample(tmp_path, PAIRED[:4])
    key.write_text("[1, 2]", encoding="utf-8")
    result = script_here("score_sample.py", sample, "--key", key)
    assert result.returncode == 1 and result.stderr.endswith(": it is not a JSON object\n")


# Marking in the terminal.

def entries_with(marks):
    return [Entry(n, str(1 + n % 5), "Кафе; Кофейня", "кофе, десерт", f"Отзыв номер {n}.", mark)
            for n, mark in enumerate(marks, start=1)]


def test_marking_saves_every_answer_and_a_rerun_continues_where_it_stopped(tmp_path):
    sample = tmp_path / "s.txt"
    sample.write_text(format_sample(["test"], entries_with([""] * 6)), encoding="utf-8")

    first = script_here("score_sample.py", "--mark", sample, stdin="1\n0\ns\nq\n")
    assert first.returncode == 0, first.stderr
    assert sample.read_text(encoding="utf-8") == format_sample(["test"], entries_with(["1", "0", "", "", "", ""]))
    assert "=== 3 ===   marked 2 (1 correct), 4 remaining" in first.stdout and "review: Отзыв номер 3." in first.stdout
    assert "quit: saved to" in first.stdout and "4 entries unmarked" in first.stdout
    assert next(line for line in first.stdout.splitlines() if line.startswith("all")).split()[1:4] == ["2", "1", "0.50"]

    second = script_here("score_sample.py", "--mark", sample, stdin="maybe\n1\n")  # then the input ends: quit
    assert second.returncode == 0, second.stderr
    assert "=== 3 ===" in second.stdout and "=== 1 ===" not in second.stdout  # resumes at the first unmarked
    assert "'maybe' is not an answer: type 1, 0, s or q" in second.stdout
    assert sample.read_text(encoding="utf-8") == format_sample(["test"], entries_with(["1", "0", "1", "", "", ""]))

    third = script_here("score_sample.py", "--mark", sample, stdin="0\n1\nQ\n")
    assert sample.read_text(encoding="utf-8") == format_sample(["test"], entries_with(["1", "0", "1", "0", "1", ""]))
    fourth = script_here("score_sample.py", "--mark", sample, stdin="1\n")
    assert third.returncode == fourth.returncode == 0
    assert sample.read_text(encoding="utf-8") == format_sample(["test"], entries_with(["1", "0", "1", "0", "1", "1"]))
    assert "every entry is marked" in fourth.stdout and not fourth.stderr
    overall = next(line for line in fourth.stdout.splitlines() if line.startswith("all"))
    low, high = textbook_wilson(4, 6)
    assert figures(overall) == [6, 4, round(4 / 6, 2), round(low, 2), round(high, 2)]
    assert [p.name for p in tmp_path.iterdir()] == ["s.txt"]  # no temporary left behind


def test_each_answer_is_on_disk_before_the_next_is_read(tmp_path):
    sample = tmp_path / "s.txt"
    sample.write_text(format_sample(["test"], entries_with([""] * 4)), encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(SCRIPTS / "score_sample.py"), "--mark", str(sample)],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               text=True, env=tool_env())
    try:
        process.stdin.write("0\n1\n")  # stdin stays open: the script waits for the third answer
        process.stdin.flush()
        expected = format_sample(["test"], entries_with(["0", "1", "", ""]))
        deadline = time.monotonic() + 60
        while sample.read_text(encoding="utf-8") != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()
    assert sample.read_text(encoding="utf-8") == expected


def test_marking_a_blind_sample_shows_per_model_scores_only_when_all_are_marked(tmp_path):
    sample, key = known_sample(tmp_path, [("", "")] * 3)
    halfway = script_here("score_sample.py", "--mark", sample, "--key", key, stdin="1\n1\n0\nq\n")
    assert halfway.returncode == 0, halfway.stderr
    assert "model full" not in halfway.stdout and "scores per model" in halfway.stdout
    assert "--key" in halfway.stdout.split("to continue:")[1].splitlines()[0]
    done = script_here("score_sample.py", "--mark", sample, "--key", key, stdin="0\n1\n1\n")
    assert done.returncode == 0, done.stderr
    assert "model full: /models/full" in done.stdout and "full vs lora" in done.stdout
    assert [e.mark for e in parse_sample(sample.read_text(encoding="utf-8"))] == ["1", "1", "0", "0", "1", "1"]


def test_marking_with_a_key_of_another_sample_stops_before_asking(tmp_path):
    sample, key = known_sample(tmp_path, [("", "")] * 3)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = known_sample(other, [("", "")] * 4)
    result = script_here("score_sample.py", "--mark", sample, "--key", other_key, stdin="1\n")
    assert result.returncode == 1 and "does not match" in result.stderr and "mark 1" not in result.stdout
    assert all(e.mark == "" for e in parse_sample(sample.read_text(encoding="utf-8")))
