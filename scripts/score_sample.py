"""Score a hand-marked sample file: share of correct reviews with its 95% Wilson interval, overall and per rating.

    python scripts/score_sample.py t5_sample.txt
    python scripts/score_sample.py t5_vs_lora.txt --key t5_vs_lora.key.json    # per model, and the models compared
    python scripts/score_sample.py --mark t5_vs_lora.txt                       # mark it in the terminal

A file with lines that cannot be placed in an entry (a repeated entry number, a broken header, a
second line of one field, text outside an entry) is refused with the list of those lines. Entries
whose mark is empty or not 0/1, or that lack a field, are listed by number and line and excluded.
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

from reviewkit.common.cli import ArgumentParser
from reviewkit.common.errors import KeyFileError, UserError
from reviewkit.common.files import atomic_path, remove_stale_temporaries
from reviewkit.marking.comparison import MCNEMAR, Comparison, compare, wilson_interval
from reviewkit.marking.key import SampleKey, key_mismatch, key_path_for, read_key
from reviewkit.marking.sample_file import MARKS, Entry, Incomplete, SampleFile, read_sample_file, summarize

ANSWERS = {"1": "1", "0": "0", "s": "skip", "skip": "skip", "q": "quit", "quit": "quit"}


class ScoreError(UserError):
    """The sample or its key cannot be scored; the message is one line for the user."""


@dataclass
class Tally:
    marked: list[Entry] = field(default_factory=list)
    unmarked: list[Entry] = field(default_factory=list)
    to_mark: list[Entry] = field(default_factory=list)  # unmarked or marked other than 0/1: what --mark offers
    malformed: list[str] = field(default_factory=list)  # "N at line L (why)": a bad mark or a missing field


def read_text(path: str) -> str:
    """The file exactly as it is: its line endings and byte-order mark are kept, so a save changes only a mark."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise ScoreError(f"cannot read {path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})") \
            from None
    except OSError as exc:
        raise ScoreError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_sample(path: str, purpose: str) -> tuple[str, SampleFile]:
    """The text and the entries of a sample file that has no line the reader cannot place, and at least one entry."""
    text = read_text(path)
    sample = read_sample_file(text)
    if sample.errors:
        raise ScoreError(f"{path} cannot be {purpose}: {len(sample.errors)} line(s) to fix by hand first: "
                         f"{summarize(sample.errors)}")
    if not sample.entries:
        raise ScoreError(f"{path} holds no entries ('=== N ===' headers written by sample.py)")
    return text, sample


def tally(sample: SampleFile) -> Tally:
    """The entries by state, each list in file order."""
    result = Tally()
    for entry in sample.entries:
        where = f"{entry.number} at line {sample.header_line[entry.number]}"
        if isinstance(entry, Incomplete):
            result.malformed.append(f"{where} ({entry.reason})")
        elif entry.mark in MARKS:
            result.marked.append(entry)
        else:
            result.to_mark.append(entry)
            if entry.mark == "":
                result.unmarked.append(entry)
            else:
                result.malformed.append(f"{where} (mark {entry.mark!r} is not 0 or 1)")
    return result


def warn_excluded(sample: SampleFile, counts: Tally) -> None:
    """Every entry the scores leave out, and numbers missing from 1..N (an entry deleted by hand), on stderr."""
    if counts.unmarked:
        print(f"warning: {len(counts.unmarked)} unmarked entries excluded: "
              f"{', '.join(str(e.number) for e in counts.unmarked)}", file=sys.stderr)
    if counts.malformed:
        print(f"warning: {len(counts.malformed)} malformed entries excluded: {'; '.join(counts.malformed)}",
              file=sys.stderr)
    numbers = {entry.number for entry in sample.entries}
    gaps = sorted(set(range(1, max(numbers) + 1)) - numbers)
    if gaps:
        shown = ", ".join(map(str, gaps[:10])) + (f" and {len(gaps) - 10} more" if len(gaps) > 10 else "")
        print(f"warning: the entries are numbered up to {max(numbers)}, but {len(gaps)} number(s) are not in the "
              f"file: {shown}", file=sys.stderr)


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


def load_key(key_path: str, sample_path: str, sample: SampleFile) -> SampleKey:
    try:
        key = read_key(key_path)
    except KeyFileError as exc:
        raise ScoreError(str(exc)) from None
    mismatch = key_mismatch(key, sample)
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
    _, sample = read_sample(sample_path, "scored")
    key = load_key(key_path, sample_path, sample) if key_path else None
    labels = sorted({entry.model for entry in sample.entries if isinstance(entry, Entry) and entry.model})
    if key is None and len(labels) > 1:
        raise ScoreError(f"{sample_path} holds entries of {len(labels)} models ({', '.join(labels)}): "
                         f"pass --key {key_path_for(sample_path)} to score each model")
    counts = tally(sample)
    warn_excluded(sample, counts)
    if not counts.marked:
        raise ScoreError(f"no marked entries in {sample_path} (write 1 or 0 after 'mark:')")
    if key is None:
        print("\n".join(score_table(counts.marked)))
    else:
        print_by_model(key, counts.marked)


def show_entry(entry: Entry, counts: Tally) -> None:
    correct = sum(int(e.mark) for e in counts.marked)
    print(f"\n=== {entry.number} ===   marked {len(counts.marked)} ({correct} correct), "
          f"{len(counts.to_mark)} remaining")
    if entry.mark:
        print(f"(its mark {entry.mark!r} is not 0 or 1: the answer replaces it)")
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


def save(sample_path: str, before: str, after: str) -> None:
    """Write `after` over the file, which must still hold `before`: an edit made meanwhile is never overwritten."""
    if read_text(sample_path) != before:
        raise ScoreError(f"{sample_path} was changed by something else while marking; the last answer is not "
                         f"saved: rerun --mark to continue from the file as it is now")
    try:
        with atomic_path(sample_path) as tmp:
            tmp.write_bytes(after.encode("utf-8"))
    except OSError as exc:
        raise ScoreError(f"cannot save {sample_path}: {exc.strerror or exc}") from None


def mark(sample_path: str, key_path: str | None) -> None:
    """Ask for the mark of every entry without a 0/1 mark in turn; the file is saved after each answer."""
    text, sample = read_sample(sample_path, "marked")
    if key_path:
        load_key(key_path, sample_path, sample)
    remove_stale_temporaries(Path(sample_path).parent, of=Path(sample_path).name)
    stopped = False
    for entry in tally(sample).to_mark:
        show_entry(entry, tally(sample))
        answer = ask()
        if answer == "quit":
            stopped = True
            break
        if answer != "skip":
            marked = sample.with_mark(entry.number, answer)
            save(sample_path, text, marked)
            text, sample = marked, read_sample_file(marked)
    finish_marking(sample_path, key_path, sample, stopped)


def finish_marking(sample_path: str, key_path: str | None, sample: SampleFile, stopped: bool) -> None:
    counts = tally(sample)
    if counts.to_mark:
        rerun = f"python scripts/score_sample.py --mark {sample_path}" + (f" --key {key_path}" if key_path else "")
        bad = len(counts.to_mark) - len(counts.unmarked)
        print(f"\n{'quit' if stopped else 'done'}: saved to {sample_path}; {len(counts.unmarked)} entries unmarked"
              + (f", {bad} with a mark other than 0 or 1" if bad else "") + f" (to continue: {rerun})\n")
    elif counts.malformed:
        print(f"\nevery entry that can be marked is marked; saved to {sample_path}; "
              f"{len(counts.malformed)} entries lack fields and cannot be (listed below)\n")
    else:
        print(f"\nevery entry is marked; saved to {sample_path}\n")
    if not counts.marked:
        warn_excluded(sample, counts)
        print("nothing is marked yet")
    elif key_path and not counts.to_mark:
        score(sample_path, key_path)
    else:
        # Scores per model would tell the marker which model is which: they wait until nothing is left to mark.
        warn_excluded(sample, counts)
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
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
