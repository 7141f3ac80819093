"""Score a hand-marked sample file: share of correct reviews with its 95% Wilson interval, overall and per rating.

    python scripts/score_sample.py t5_sample.txt
    python scripts/score_sample.py t5_vs_lora.txt --key t5_vs_lora.key.json    # per model, and the models compared
    python scripts/score_sample.py --mark t5_vs_lora.txt                       # mark it in the terminal

Entries whose mark is empty, not 0/1, or that cannot be read are listed by number and excluded.
With the key of a sample of several models (sample.py --model A --model B), each model is scored
and every two models are compared: the difference of their shares with its 95% interval
(Newcombe's hybrid score method) and a two-sided test, McNemar's exact test on the prompts both
models answered and that are marked for both, or Fisher's exact test where entries cannot be paired.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from reviewkit.cli import ArgumentParser
from reviewkit.comparison import MCNEMAR, Comparison, compare, wilson_interval
from reviewkit.files import atomic_write_text, remove_stale_temporaries
from reviewkit.marking import Entry, KeyFileError, SampleKey, key_mismatch, key_path_for, parse_sample, read_key, set_mark

ANSWERS = {"1": "1", "0": "0", "s": "skip", "skip": "skip", "q": "quit", "quit": "quit"}


class ScoreError(Exception):
    """The sample or its key cannot be scored; the message is one line for the user."""


@dataclass
class Tally:
    marked: list[Entry] = field(default_factory=list)
    unmarked: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)


def read_sample(path: str) -> tuple[str, list[Entry | tuple[int, str]]]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScoreError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return text, parse_sample(text)


def tally(entries: list[Entry | tuple[int, str]]) -> Tally:
    result = Tally()
    for entry in entries:
        if not isinstance(entry, Entry):
            result.malformed.append(f"{entry[0]} ({entry[1]})")
        elif entry.mark == "":
            result.unmarked.append(str(entry.number))
        elif entry.mark not in ("0", "1"):
            result.malformed.append(f"{entry.number} (mark {entry.mark!r} is not 0 or 1)")
        else:
            result.marked.append(entry)
    return result


def warn_excluded(counts: Tally) -> None:
    if counts.unmarked:
        print(f"warning: {len(counts.unmarked)} unmarked entries excluded: {', '.join(counts.unmarked)}",
              file=sys.stderr)
    if counts.malformed:
        print(f"warning: {len(counts.malformed)} malformed entries excluded: {'; '.join(counts.malformed)}",
              file=sys.stderr)


def score_line(label: str, marks: list[int]) -> str:
    correct, marked = sum(marks), len(marks)
    low, high = wilson_interval(correct, marked)
    return f"{label:<10}{marked:>8}{correct:>9}{correct / marked:>8.2f}   ({low:.2f}, {high:.2f})"


def score_table(marked: list[Entry]) -> list[str]:
    by_rating: dict[str, list[int]] = defaultdict(list)
    for entry in marked:
        by_rating[entry.rating].append(int(entry.mark))
    return [f"{'':<10}{'marked':>8}{'correct':>9}{'share':>8}   95% Wilson interval",
            score_line("all", [int(entry.mark) for entry in marked]),
            *(score_line(f"rating {rating}", by_rating[rating]) for rating in sorted(by_rating))]


def load_key(key_path: str, sample_path: str, text: str, entries: list) -> SampleKey:
    try:
        key = read_key(key_path)
    except KeyFileError as exc:
        raise ScoreError(str(exc)) from None
    mismatch = key_mismatch(key, entries, text)
    if mismatch:
        raise ScoreError(f"{key_path} does not match {sample_path}: {mismatch}")
    return key


def paired_marks(key: SampleKey, label_a: str, label_b: str, marks: dict[int, int]) -> list[tuple[int, int]] | None:
    """(mark a, mark b) per prompt marked for both; None unless both models have one entry for each same prompt."""
    prompts: dict[str, dict[int | None, int]] = {label_a: {}, label_b: {}}
    for number, keyed in key.entries.items():
        if keyed.model in prompts:
            if keyed.prompt_index is None or keyed.prompt_index in prompts[keyed.model]:
                return None
            prompts[keyed.model][keyed.prompt_index] = number
    if prompts[label_a].keys() != prompts[label_b].keys():
        return None
    return [(marks[a], marks[prompts[label_b][prompt]]) for prompt, a in sorted(prompts[label_a].items())
            if a in marks and prompts[label_b][prompt] in marks]


def comparison_lines(label_a: str, label_b: str, result: Comparison, marks_a: list[int], marks_b: list[int]) -> list[str]:
    lines = [f"{label_a} vs {label_b}",
             f"  difference of shares {result.difference:+.2f}   95% interval ({result.low:+.2f}, {result.high:+.2f}) "
             f"by Newcombe's hybrid score method"]
    if result.test == MCNEMAR:
        lines.append(f"  {MCNEMAR} on {result.pairs} prompts marked for both: {result.only_a_correct} correct only "
                     f"for {label_a}, {result.only_b_correct} only for {label_b}; p = {result.p_value:.3g} (two-sided)")
    else:
        lines.append(f"  {result.test} (the entries cannot be paired by prompt): {sum(marks_a)}/{len(marks_a)} "
                     f"correct against {sum(marks_b)}/{len(marks_b)}; p = {result.p_value:.3g} (two-sided)")
    return lines


def print_by_model(key: SampleKey, marked: list[Entry]) -> None:
    marks = {entry.number: int(entry.mark) for entry in marked}
    by_model: dict[str, list[Entry]] = {label: [] for label in key.labels}
    for entry in marked:
        by_model[key.entries[entry.number].model].append(entry)
    blocks = [[f"model {model['label']}: {model.get('path', '?')}",
               *(score_table(by_model[model["label"]]) if by_model[model["label"]] else ["no marked entries"])]
              for model in key.models]
    for label_a, label_b in combinations(key.labels, 2):
        marks_a = [int(e.mark) for e in by_model[label_a]]
        marks_b = [int(e.mark) for e in by_model[label_b]]
        if marks_a and marks_b:
            result = compare(marks_a, marks_b, paired_marks(key, label_a, label_b, marks))
            blocks.append(comparison_lines(label_a, label_b, result, marks_a, marks_b))
    print("\n\n".join("\n".join(block) for block in blocks))


def score(sample_path: str, key_path: str | None) -> None:
    text, entries = read_sample(sample_path)
    key = load_key(key_path, sample_path, text, entries) if key_path else None
    labels = sorted({entry.model for entry in entries if isinstance(entry, Entry) and entry.model})
    if key is None and len(labels) > 1:
        raise ScoreError(f"{sample_path} holds entries of {len(labels)} models ({', '.join(labels)}): "
                         f"pass --key {key_path_for(sample_path)} to score each model")
    counts = tally(entries)
    warn_excluded(counts)
    if not counts.marked:
        raise ScoreError(f"no marked entries in {sample_path} (write 1 or 0 after 'mark:')")
    if key is None:
        print("\n".join(score_table(counts.marked)))
    else:
        print_by_model(key, counts.marked)


def show_entry(entry: Entry, counts: Tally) -> None:
    correct = sum(int(e.mark) for e in counts.marked)
    print(f"\n=== {entry.number} ===   marked {len(counts.marked)} ({correct} correct), "
          f"{len(counts.unmarked)} remaining")
    for name in ("model", "rating", "rubrics", "keywords", "review"):
        if getattr(entry, name):
            print(f"{name}: {getattr(entry, name)}")


def ask() -> str:
    """The next answer from stdin: '1', '0', 'skip' or 'quit' (also at the end of the input or on Ctrl-C)."""
    while True:
        try:
            answer = input("mark 1 (fits), 0 (does not), s (skip), q (quit): ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            print()
            return "quit"
        if answer in ANSWERS:
            return ANSWERS[answer]
        print(f"{answer!r} is not an answer: type 1, 0, s or q")


def save(sample_path: str, text: str) -> None:
    try:
        atomic_write_text(sample_path, text)
    except OSError as exc:
        raise ScoreError(f"cannot save {sample_path}: {exc.strerror or exc}") from None


def mark(sample_path: str, key_path: str | None) -> None:
    """Ask for the mark of every unmarked entry in turn; the file is saved after each answer."""
    text, entries = read_sample(sample_path)
    if key_path:
        load_key(key_path, sample_path, text, entries)
    remove_stale_temporaries(Path(sample_path).parent, of=Path(sample_path).name)
    stopped = False
    for entry in [e for e in entries if isinstance(e, Entry) and e.mark == ""]:
        show_entry(entry, tally(parse_sample(text)))
        answer = ask()
        if answer == "quit":
            stopped = True
            break
        if answer != "skip":
            text = set_mark(text, entry.number, answer)
            save(sample_path, text)
    finish_marking(sample_path, key_path, tally(parse_sample(text)), stopped)


def finish_marking(sample_path: str, key_path: str | None, counts: Tally, stopped: bool) -> None:
    if counts.unmarked:
        rerun = f"python scripts/score_sample.py --mark {sample_path}" + (f" --key {key_path}" if key_path else "")
        print(f"\n{'quit' if stopped else 'done'}: saved to {sample_path}; {len(counts.unmarked)} entries unmarked "
              f"(to continue: {rerun})\n")
    else:
        print(f"\nevery entry is marked; saved to {sample_path}\n")
    if not counts.marked:
        print("nothing is marked yet")
    elif key_path and not counts.unmarked:
        score(sample_path, key_path)
    else:
        # Scores per model would tell the marker which model is which: they wait until nothing is left to mark.
        warn_excluded(counts)
        print("\n".join(score_table(counts.marked)))
        if key_path:
            print(f"(the scores per model from {key_path} are printed once every entry is marked)")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a sample file written by sample.py and marked by a person")
    parser.add_argument("--key", default=None,
                        help="the key sample.py wrote beside a sample of several models (<sample stem>.key.json): "
                             "score each model and compare every two")
    parser.add_argument("--mark", action="store_true",
                        help="mark the file in the terminal: one entry at a time, answers 1, 0, s (skip) or q (quit) "
                             "on stdin, the file saved after every answer; a rerun continues at the first unmarked "
                             "entry; prints the score at the end")
    args = parser.parse_args(argv)
    try:
        (mark if args.mark else score)(args.file, args.key)
    except ScoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
