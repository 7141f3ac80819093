"""The commands and links of README.md and docs/*.md stay true as the code changes.

- Every command in a fenced bash block that runs `python scripts/NAME.py ...` or
  `python benchmarks/NAME.py ...` (also after `&&`, behind `torchrun` or an environment assignment)
  uses only flags that the script's `--help` lists; `--flag=value` counts as `--flag`.
  `bench_train.py --project_flags ...` passes the rest to train_t5.py's parser, so those flags are
  checked against train_t5.py's `--help`. Placeholders such as RUN_ID or HOST are values, never
  flags, so no command needs to be skipped.
- Every docs/*.md is linked from README.md, and every relative link or image in README.md and
  docs/*.md points to a file or directory that exists.

Each script's `--help` runs once a session, beside test_cli's runs (tests/command_help.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
SCRIPT = re.compile(r"^(?:\./)?((?:scripts|benchmarks)/\w+\.py)$")
LAUNCHERS = {"python", "python3", "torchrun"}
# A flag whose remaining arguments another script's parser reads: (script, flag) -> that script.
FORWARDED = {("benchmarks/bench_train.py", "--project_flags"): "scripts/train_t5.py"}


def fenced_commands(page: Path) -> list[tuple[int, str]]:
    """(line number, command) of each command in the page's ```bash/sh/shell blocks; `\\` continuations joined."""
    text = page.read_text(encoding="utf-8")
    found = []
    for block in re.finditer(r"^[ \t]*```(?:bash|sh|shell)[ \t]*\n(.*?)^[ \t]*```", text, re.DOTALL | re.MULTILINE):
        first_line = text.count("\n", 0, block.start(1)) + 1
        pending, start = "", None
        for offset, line in enumerate(block.group(1).splitlines()):
            if start is None:
                start = first_line + offset
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = (pending + line).strip()
            if command and not command.startswith("#"):
                found.append((start, command))
            pending, start = "", None
    return found


def script_calls(command: str) -> list[tuple[str, list[str]]]:
    """(script path, its arguments) for each `python|torchrun ... scripts/X.py|benchmarks/X.py ...` in a command line."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote: words split on blanks still show the flags
        words = command.split("  #")[0].split()
    segments, current = [], []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            segments.append(current)
            current = []
        else:
            current.append(word)
    segments.append(current)
    calls = []
    for segment in segments:
        while segment and re.match(r"^\w+=", segment[0]):  # VAR=value before the program
            segment = segment[1:]
        if not segment or Path(segment[0]).name not in LAUNCHERS:
            continue
        for index, word in enumerate(segment[1:], start=1):
            match = SCRIPT.match(word)
            if match:
                calls.append((match.group(1), segment[index + 1:]))
                break
    return calls


def flags_of(arguments: list[str]) -> list[str]:
    return [word.split("=", 1)[0] for word in arguments if word.startswith("--") and len(word) > 2]


def checks(script: str, arguments: list[str]) -> list[tuple[str, list[str]]]:
    """(script whose --help must list them, flags): forwarded arguments go to the script that parses them."""
    for index, word in enumerate(arguments):
        target = FORWARDED.get((script, word.split("=", 1)[0]))
        if target:
            return [(script, flags_of(arguments[: index + 1])), (target, flags_of(arguments[index + 1:]))]
    return [(script, flags_of(arguments))]


COMMANDS = [(page, line, command, calls) for page in PAGES for line, command in fenced_commands(page)
            if (calls := script_calls(command))]


def listed_flags(help_text: str) -> set[str]:
    """The long options a --help output defines: the invocation part of each option line, aliases included."""
    flags = set()
    for line in help_text.splitlines():
        if re.match(r"^  -", line):  # option lines are indented two spaces; wrapped help text is deeper
            invocation = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
            flags.update(re.findall(r"--[\w-]+", invocation))
    return flags


@pytest.fixture(scope="module")
def script_flags(command_outputs) -> dict[str, set[str] | str]:
    """{script: the flags its --help lists}, or {script: the error} when --help failed."""
    needed = sorted({target for _, _, _, calls in COMMANDS for script, arguments in calls
                     for target, _ in checks(script, arguments)})
    missing = [script for script in needed if not (ROOT / script).is_file()]
    present = [script for script in needed if script not in missing]
    flags: dict[str, set[str] | str] = {script: "the file does not exist" for script in missing}
    for script in present:
        result = command_outputs["--help"][script]
        if result["returncode"] != 0:
            flags[script] = f"`python {script} --help` exited {result['returncode']}:\n{result['output'][-2000:]}"
        else:
            flags[script] = listed_flags(result["output"])
            assert "--help" in flags[script], f"no options found in the --help of {script}:\n{result['output']}"
    return flags


def test_the_pages_quote_script_commands():
    readme_commands = [command for page, _, command, _ in COMMANDS if page.name == "README.md"]
    assert any("scripts/train_t5.py --demo" in command for command in readme_commands)
    assert len(COMMANDS) >= 20, f"only {len(COMMANDS)} script commands found; is the fence parsing broken?"


@pytest.mark.parametrize("page, line, command, calls",
                         [pytest.param(*entry, id=f"{entry[0].relative_to(ROOT)}:{entry[1]}") for entry in COMMANDS])
def test_quoted_command_uses_only_flags_its_script_lists(script_flags, page, line, command, calls):
    for script, arguments in calls:
        for target, flags in checks(script, arguments):
            known = script_flags[target]
            assert not isinstance(known, str), f"{page.relative_to(ROOT)}:{line}: {command}\n{known}"
            unknown = [flag for flag in flags if flag not in known]
            assert not unknown, (f"{page.relative_to(ROOT)}:{line}: {', '.join(unknown)} not in "
                                 f"`python {target} --help`:\n  {command}")


def links(page: Path) -> list[str]:
    """Targets of the page's markdown links and images, outside code blocks and code spans."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [match.group(1) for match in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)]


def local_target(page: Path, target: str) -> Path | None:
    """The file a relative link points to, or None for a URL or an anchor within the page."""
    if re.match(r"^[a-zA-Z][\w+.-]*:", target) or target.startswith("#"):
        return None
    return (page.parent / target.split("#", 1)[0]).resolve()


def test_every_docs_page_is_linked_from_the_readme():
    assert DOCS, "docs/ has no pages"
    readme = ROOT / "README.md"
    linked = {local_target(readme, target) for target in links(readme)}
    unlinked = [page.name for page in DOCS if page.resolve() not in linked]
    assert not unlinked, f"README.md does not link {', '.join(unlinked)}"


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_relative_links_point_to_existing_files(page):
    broken = [target for target in links(page)
              if (path := local_target(page, target)) is not None and not path.exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {', '.join(broken)}"
