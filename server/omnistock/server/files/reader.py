"""FeedReader: a feed file as a stream of Records and Rejects, one line at a time."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

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


def _json_getter(line: Line) -> Getter:
    data = json.loads(line.text)
    if not isinstance(data, dict):
        raise LineError("not a JSON object")

    def get(field: str) -> str:
        for name in COLUMNS.get(field, ()):
            if data.get(name) is not None:
                return json_text(data[name], name)
        return ""

    return get


class FeedReader:
    """Reads a feed file; ``items()`` streams it, ``reread()`` goes over a stretch again."""

    def __init__(
        self, path: Path, settings: Settings, on_progress: Callable[[int], None] | None = None
    ) -> None:
        self.path = path
        self.settings = settings
        self._on_progress = on_progress
        self._handle = path.open("rb")
        self._start = 0
        self._number = 1
        self._delimiter = ","
        self._index: dict[str, int] = {}
        try:
            if settings.format is not Format.JSONL:
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
        if self.settings.format is Format.GOOGLE_LOCAL and "\t" in physical.text:
            self._delimiter = "\t"
        rows = delimited_rows(iter([physical]), self._delimiter, quoted=self._quoted)
        self._index = map_columns(next(rows).fields, self.settings)
        self._start, self._number = physical.end, physical.number + 1

    @property
    def _quoted(self) -> bool:
        return self._delimiter != "\t"

    def items(self) -> Iterator[Record | Reject]:
        """Every line after the header, in order."""
        return self._items(self._handle, self._start, self._number, self._on_progress)

    def reread(self, first: Line) -> Iterator[Record | Reject]:
        """The lines from ``first`` on, read again from a handle of their own."""
        with self.path.open("rb") as handle:
            yield from self._items(handle, first.start, first.number, None)

    def _items(
        self, handle: BinaryIO, start: int, number: int, progress: Callable[[int], None] | None
    ) -> Iterator[Record | Reject]:
        lines = physical_lines(handle, start=start, number=number, on_progress=progress)
        settings = self.settings
        if settings.format is Format.JSONL:
            for physical in lines:
                line = join([physical])
                if physical.problem:
                    yield Reject(line, physical.problem)
                elif line.text.strip():
                    try:
                        get = _json_getter(line)
                    except (ValueError, RecursionError) as error:  # incl. LineError
                        yield Reject(line, _json_problem(error))
                        continue
                    yield build(get, line, settings)
            return
        index = self._index
        for row in delimited_rows(lines, self._delimiter, quoted=self._quoted):
            if row.problem:
                yield Reject(row.line, row.problem)
                continue
            yield build(_row_getter(index, row.fields), row.line, settings)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
