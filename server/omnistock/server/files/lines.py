"""Reading a feed file a line at a time, keeping each line's number and byte span.

Byte offsets drive the progress bar and let an importer read a stretch of the
file again (to list the lines of a snapshot it had to abandon) without keeping
them in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

# A longer line is rejected, so that one runaway line cannot exhaust memory.
MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Line:
    """One record's text in the file: usually one line, more for a quoted CSV field."""

    number: int  # of its first line, counting from 1
    start: int  # byte offset of its first byte
    end: int  # byte offset just after it, line break included
    text: str  # without the final line break


@dataclass(frozen=True, slots=True)
class Physical:
    number: int
    start: int
    end: int
    text: str  # with its line break, as csv.reader wants it
    problem: str  # why the line cannot be read, or ""


@dataclass(frozen=True, slots=True)
class Row:
    line: Line
    fields: list[str]  # empty when problem is set
    problem: str


def physical_lines(
    handle: BinaryIO,
    *,
    start: int = 0,
    number: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[Physical]:
    """The lines of a binary file from byte ``start`` (line ``number``) on."""
    handle.seek(start)
    offset = start
    while raw := handle.readline(MAX_LINE_BYTES):
        problem = ""
        size = len(raw)
        if size == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            problem = f"line longer than {MAX_LINE_BYTES:,} bytes"
            raw = raw[:256]  # a prefix to show in the rejects file
            while more := handle.readline(MAX_LINE_BYTES):
                size += len(more)
                if more.endswith(b"\n"):
                    raw += b"...\n"
                    break
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # surrogateescape keeps the bytes, so the rejects file shows them as they were.
            text = raw.decode("utf-8", "surrogateescape")
            problem = problem or "not valid UTF-8"
        if offset == 0 and text.startswith("\ufeff"):
            text = text[1:]
        end = offset + size
        yield Physical(number, offset, end, text, problem)
        if on_progress is not None:
            on_progress(end)
        offset = end
        number += 1


def join(lines: list[Physical]) -> Line:
    text = "".join(p.text for p in lines).rstrip("\r\n")
    return Line(lines[0].number, lines[0].start, lines[-1].end, text)


def delimited_rows(lines: Iterator[Physical], delimiter: str, *, quoted: bool) -> Iterator[Row]:
    """CSV rows, each with the line(s) it came from; blank rows are left out.

    A quoted field may run over several lines (it reads as one row); a row that
    cannot be read is yielded with ``problem`` set, and reading goes on after it.
    """
    taken: list[Physical] = []

    def feed() -> Iterator[str]:
        for physical in lines:
            taken.append(physical)
            yield physical.text

    reader = csv.reader(
        feed(),
        delimiter=delimiter,
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        strict=False,
    )
    while True:
        problem = ""
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            fields, problem = [], f"cannot read the line: {error}"
        if not taken:
            continue
        line = join(taken)
        problem = next((p.problem for p in taken if p.problem), problem)
        taken.clear()
        if problem:
            yield Row(line, [], problem)
        elif any(field.strip() for field in fields):
            yield Row(line, fields, "")
