"""Records as text: the canonical stream (PostgreSQL COPY text format), CSV and JSON Lines.

The canonical form of a dataset is its records in id order, one line each, the columns in their
order separated by one tab, a null as ``\\N``, every line ending in ``\\n``, UTF-8. It is exactly
what COPY receives, and ``status.digest`` is its SHA-256. No field holds a tab, a newline, a
backslash or a double quote (the generators make none; city names are cleaned), so no escaping is
needed in any of the three forms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np

from fortress.synthetic.generate import Block, Column, Texts, join

FORMATS: Final = ("text", "csv", "jsonl")
NULL: Final = "\\N"


def _lines(parts: list[Texts | str]) -> str:
    lines = join(*parts)
    return "\n".join(lines.tolist()) + "\n" if len(lines) else ""


def _joined(columns: list[list[str]], separator: str) -> str:
    return "\n".join(map(separator.join, zip(*columns, strict=True))) + "\n"


def text(block: Block) -> str:
    """The canonical form (COPY text) of a block's records."""
    if not len(block):
        return ""
    columns = []
    for index, values in enumerate(block.fields):
        nulls = block.nulls.get(index)
        columns.append((values if nulls is None else np.where(nulls, NULL, values)).tolist())
    return _joined(columns, "\t")


def csv_header(columns: Sequence[Column]) -> str:
    return ",".join(c.name for c in columns) + "\n"


def csv(block: Block) -> str:
    """RFC 4180 rows (a field with a comma is quoted; a null is empty)."""
    if not len(block):
        return ""
    columns = []
    for index, values in enumerate(block.fields):
        nulls = block.nulls.get(index)
        quoted = np.where(np.strings.find(values, ",") >= 0, join('"', values, '"'), values)
        columns.append((quoted if nulls is None else np.where(nulls, "", quoted)).tolist())
    return _joined(columns, ",")


def jsonl(block: Block, columns: Sequence[Column]) -> str:
    """One JSON object per record (strings quoted, numbers and booleans bare, nulls null)."""
    if not len(block):
        return ""
    parts: list[Texts | str] = []
    for index, (column, values) in enumerate(zip(columns, block.fields, strict=True)):
        parts.append(("{" if index == 0 else ",") + f'"{column.name}":')
        shown = join('"', values, '"') if column.json == "string" else values
        nulls = block.nulls.get(index)
        parts.append(shown if nulls is None else np.where(nulls, "null", shown))
    parts.append("}")
    return _lines(parts)


class Digest:
    """SHA-256 of the canonical stream, fed block by block."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.records = 0

    def update(self, blocks: Iterable[Block]) -> bytes:
        """Add the blocks; their canonical bytes (for COPY)."""
        data = "".join(text(b) for b in blocks).encode()
        self._hash.update(data)
        return data

    def feed(self, data: bytes, records: int) -> None:
        self._hash.update(data)
        self.records += records

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
