"""Markdown tables, the one way the kit writes them: cells with `|` escaped and line breaks made spaces."""

from __future__ import annotations

from typing import Iterable, Sequence


def cell(value) -> str:
    """A value as one table cell: a `|` in it would end the cell, a line break the row."""
    return str(value).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def markdown_table(header: Sequence, rows: Iterable[Sequence]) -> str:
    """`| a | b |`, `|---|---|`, then a line per row; no newline at the end."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
