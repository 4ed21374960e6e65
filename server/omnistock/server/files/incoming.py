"""``omnistock import-incoming``: an incoming supply file (purchase orders, transfers) sent
as ApplyIncomingUpdates batches, then a summary of what became of it.

A csv with a header, or JSON Lines, with location_id, sku, line_id, quantity,
expected_date (YYYY-MM-DD), source_updated_at (ISO 8601 with an offset) and optionally
source_sequence. Each line is checked here with the server's own rules, so a bad value is
reported against its line; lines the server rejects go to the rejects file too. Exit codes
as for ``omnistock import``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from omnistock.client import ApiError, Client, IncomingUpdate, timestamp
from omnistock.server.domain.channels import EXPECTED_DATE_RULE, parse_expected_date
from omnistock.server.files.deltas import UNCERTAIN
from omnistock.server.files.fields import (
    LineError,
    parse_id,
    parse_int,
    parse_optional_int,
    parse_time,
)
from omnistock.server.files.formats import FormatError, Getter, Mode, Reject
from omnistock.server.files.importer import (
    ImportOptions,
    rejects_path,
    run_reporting,
    usage_problem,
)
from omnistock.server.files.lines import Line
from omnistock.server.files.progress import Progress
from omnistock.server.files.reader import Layout, TableReader
from omnistock.server.files.rejects import RejectsWriter
from omnistock.server.files.report import describe_error, totals_line

DEFAULT_BATCH_SIZE = 1_000
FIELDS = (
    "location_id",
    "sku",
    "line_id",
    "quantity",
    "expected_date",
    "source_updated_at",
    "source_sequence",
)
REQUIRED = FIELDS[:-1]
COLUMNS: dict[str, tuple[str, ...]] = {name: (name,) for name in FIELDS}


@dataclass(frozen=True, slots=True)
class IncomingRecord:
    line: Line
    update: IncomingUpdate


def map_columns(header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise FormatError(
            f"no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
            f" (the header has: {', '.join(names)})"
        )
    return {name: names.index(name) for name in FIELDS if name in names}


def build(get: Getter, line: Line) -> IncomingRecord | Reject:
    location_id = get("location_id")
    try:
        update = IncomingUpdate(
            location_id=parse_id(location_id, "location_id"),
            sku=parse_id(get("sku"), "sku"),
            line_id=parse_id(get("line_id"), "line_id"),
            quantity=parse_int(get("quantity"), "quantity", minimum=0),
            expected_date=_expected(get("expected_date")),
            source_updated_at=timestamp(_source_time(get("source_updated_at"))),
        )
        sequence = parse_optional_int(get("source_sequence"), "source_sequence", minimum=0)
    except LineError as error:
        return Reject(line, str(error), location_id)
    if sequence is not None:
        update.source_sequence = sequence
    return IncomingRecord(line, update)


def _expected(text: str) -> str:
    if not text:
        raise LineError("expected_date is required")
    if parse_expected_date(text) is None:
        raise LineError(f"expected_date {text!r} {EXPECTED_DATE_RULE}")
    return text


def _source_time(text: str) -> datetime:
    if not text:
        raise LineError("source_updated_at is required")
    return parse_time(text, "source_updated_at")


LAYOUT: Layout[IncomingRecord] = Layout(COLUMNS, map_columns, build)


@dataclass(slots=True)
class IncomingTotals:
    applied: int = 0
    stale: int = 0
    skipped: int = 0  # lines not applied because the import stopped before them


class IncomingImporter:
    """Sends the file's valid lines in batches, one call each, and writes every line not
    applied (checked here, or rejected by the server) to the rejects file."""

    def __init__(
        self,
        client: Client,
        reader: TableReader[IncomingRecord],
        rejects: RejectsWriter,
        *,
        batch_size: int | None = None,
    ) -> None:
        self._client = client
        self._reader = reader
        self._rejects = rejects
        self._batch_size = batch_size or DEFAULT_BATCH_SIZE
        self.totals = IncomingTotals()

    def run(self) -> IncomingTotals:
        items = self._reader.items()
        batch: list[IncomingRecord] = []
        for item in items:
            if isinstance(item, Reject):
                self._rejects.write(item.line, item.reason)
                continue
            batch.append(item)
            if len(batch) >= self._batch_size:
                self._send(batch, items)
                batch = []
        if batch:
            self._send(batch, items)
        return self.totals

    def _send(self, batch: list[IncomingRecord], rest: Iterator[IncomingRecord | Reject]) -> None:
        try:
            response = self._client.apply_incoming_updates([r.update for r in batch])
        except ApiError as error:
            self._stopped(error, batch, rest)
            raise
        self.totals.applied += response.applied_count
        self.totals.stale += response.stale_count
        for reject in response.rejects:
            if 0 <= reject.index < len(batch):
                reason = f"{reject.reason}: {reject.description or reject.field}"
                self._rejects.write(batch[reject.index].line, reason)

    def _stopped(
        self,
        error: ApiError,
        batch: list[IncomingRecord],
        rest: Iterator[IncomingRecord | Reject],
    ) -> None:
        problem = describe_error(error)
        if isinstance(error, UNCERTAIN):
            unanswered = f"unconfirmed: the import stopped before the server answered: {problem}"
        else:
            unanswered = f"not applied: the import stopped: {problem}"
        for record in batch:
            self._rejects.write(record.line, unanswered)
        self.totals.skipped += len(batch)
        for item in rest:
            if isinstance(item, Reject):
                self._rejects.write(item.line, item.reason)
            else:
                self._rejects.write(item.line, f"skipped: the import stopped: {problem}")
                self.totals.skipped += 1


def run_import_incoming(options: ImportOptions, *, out: TextIO, err: TextIO) -> int:
    """``options.mode``, ``location`` and ``as_of`` are not used: every line names its own."""
    problem = usage_problem(options)
    if problem:
        print(f"omnistock import-incoming: {problem}", file=err)
        return 2
    progress = Progress(options.path.stat().st_size, err, label=options.path.name)
    try:
        reader = TableReader(options.path, options.format, LAYOUT, progress.update)
    except FormatError as error:
        print(f"omnistock import-incoming: {options.path}: {error}", file=err)
        return 2
    except OSError as error:
        print(f"omnistock import-incoming: cannot read {options.path}: {error.strerror}", file=err)
        return 2
    shown = str(rejects_path(options))
    with (
        reader,
        RejectsWriter(rejects_path(options)) as rejects,
        Client(options.target, api_key=options.api_key) as client,
    ):
        importer = IncomingImporter(client, reader, rejects, batch_size=options.batch_size)
        code = run_reporting(importer.run, progress, options.target, err)
    t = importer.totals
    print(totals_line(t.applied, t.stale, rejects.count - t.skipped, t.skipped, shown), file=out)
    if code == 0 and rejects.count and not options.allow_rejects:
        print(
            f"omnistock import-incoming: {rejects.count:,} line(s) rejected, listed in {shown}"
            " (--allow-rejects exits 0 all the same)",
            file=err,
        )
        code = 1
    return code


def incoming_options(**fields: object) -> ImportOptions:
    """ImportOptions for an incoming file: the stock-only settings left at their defaults."""
    return ImportOptions(mode=Mode.DELTA, **fields)  # type: ignore[arg-type]
