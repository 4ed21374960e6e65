"""Reading a csv or jsonl file as a stream of items and Rejects, one line at a time.

``TableReader`` reads any table whose ``Layout`` says its columns and how a line becomes an
item; ``FeedReader`` is the stock feed's (a Record per line), ``omnistock
import-incoming``'s reader the incoming supply's (files/incoming.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Generic, Self, TypeVar

from omnistock.server.files.fields import LineError, json_text
from omnistock.server.files.formats import (
    COLUMNS,
    Format,
    FormatError,
    Getter,
    Record,
    Reject,
    Settings,
    build,
    map_columns,
)
from omnistock.server.files.lines import Line, delimited_rows, join, physical_lines


def _row_getter(index: dict[str, int], fields: list[str]) -> Getter:
    def get(field: str) -> str:
        at = index.get(field)
        return fields[at].strip() if at is not None and at < len(fields) else ""

    return get


def _json_problem(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error.msg} at column {error.colno}"
    if isinstance(error, RecursionError):
        return "not valid JSON: nested too deeply"
    return str(error)


def _json_getter(line: Line, columns: dict[str, tuple[str, ...]]) -> Getter:
    data = json.loads(line.text)
    if not isinstance(data, dict):
        raise LineError("not a JSON object")

    def get(field: str) -> str:
        for name in columns.get(field, ()):
            if data.get(name) is not None:
                return json_text(data[name], name)
        return ""

    return get


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Layout(Generic[T]):
    """What a table's lines hold: each field's names (a jsonl key is the first name that
    a line has), each field's column from a csv header (FormatError when one needed is
    missing), and how one line becomes an item (or a Reject)."""

    columns: dict[str, tuple[str, ...]]
    header: Callable[[list[str]], dict[str, int]]
    build: Callable[[Getter, Line], T | Reject]


class TableReader(Generic[T]):
    """Reads a file; ``items()`` streams it, ``reread()`` goes over a stretch again."""

    def __init__(
        self,
        path: Path,
        format: Format,
        layout: Layout[T],
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.format = format
        self._layout = layout
        self._on_progress = on_progress
        self._handle = path.open("rb")
        self._start = 0
        self._number = 1
        self._delimiter = ","
        self._index: dict[str, int] = {}
        try:
            if format is not Format.JSONL:
                self._read_header()
        except BaseException:
            self._handle.close()
            raise

    def _read_header(self) -> None:
        for physical in physical_lines(self._handle):
            if physical.text.strip():
                break
        else:
            raise FormatError("the file is empty: a header line is required")
        if physical.problem:
            raise FormatError(f"cannot read the header line: {physical.problem}")
        if self.format is Format.GOOGLE_LOCAL and "\t" in physical.text:
            self._delimiter = "\t"
        rows = delimited_rows(iter([physical]), self._delimiter, quoted=self._quoted)
        self._index = self._layout.header(next(rows).fields)
        self._start, self._number = physical.end, physical.number + 1

    @property
    def _quoted(self) -> bool:
        return self._delimiter != "\t"

    def items(self) -> Iterator[T | Reject]:
        """Every line after the header, in order."""
        return self._items(self._handle, self._start, self._number, self._on_progress)

    def reread(self, first: Line) -> Iterator[T | Reject]:
        """The lines from ``first`` on, read again from a handle of their own."""
        with self.path.open("rb") as handle:
            yield from self._items(handle, first.start, first.number, None)

    def _items(
        self, handle: BinaryIO, start: int, number: int, progress: Callable[[int], None] | None
    ) -> Iterator[T | Reject]:
        lines = physical_lines(handle, start=start, number=number, on_progress=progress)
        build = self._layout.build
        if self.format is Format.JSONL:
            for physical in lines:
                line = join([physical])
                if physical.problem:
                    yield Reject(line, physical.problem)
                elif line.text.strip():
                    try:
                        get = _json_getter(line, self._layout.columns)
                    except (ValueError, RecursionError) as error:  # incl. LineError
                        yield Reject(line, _json_problem(error))
                        continue
                    yield build(get, line)
            return
        index = self._index
        for row in delimited_rows(lines, self._delimiter, quoted=self._quoted):
            if row.problem:
                yield Reject(row.line, row.problem)
                continue
            yield build(_row_getter(index, row.fields), row.line)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FeedReader(TableReader[Record]):
    """A stock feed file: a Record (or a Reject) per line, as ``settings`` read it."""

    def __init__(
        self, path: Path, settings: Settings, on_progress: Callable[[int], None] | None = None
    ) -> None:
        self.settings = settings
        layout: Layout[Record] = Layout(
            COLUMNS,
            lambda header: map_columns(header, settings),
            lambda get, line: build(get, line, settings),
        )
        super().__init__(path, settings.format, layout, on_progress)
