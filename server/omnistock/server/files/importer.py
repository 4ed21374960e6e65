"""``omnistock import``: send a stock file to a server, then print what became of it.

Exit codes: 0 when every line was applied (or stale), 1 when a line was rejected
(0 with --allow-rejects) or on an error (the server refused a snapshot, could not be
reached, ...), 2 when the command cannot start (no such file, a header without the
needed columns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from omnistock.client import ApiError, Client
from omnistock.server.files.deltas import DeltaImporter
from omnistock.server.files.formats import Format, FormatError, Mode, Settings
from omnistock.server.files.progress import Progress
from omnistock.server.files.reader import FeedReader
from omnistock.server.files.rejects import RejectsWriter
from omnistock.server.files.report import error_lines, totals_line
from omnistock.server.files.snapshots import GroupResult, SnapshotImporter


@dataclass(frozen=True, slots=True)
class ImportOptions:
    path: Path
    format: Format
    mode: Mode
    target: str
    location: str | None = None
    as_of: datetime | None = None
    rejects: Path | None = None  # default: the file's path + ".rejects"
    batch_size: int | None = None
    api_key: str | None = None  # for a server that checks keys
    # Exit 0 although lines were rejected (they are in the rejects file all the same).
    allow_rejects: bool = False


def rejects_path(options: ImportOptions) -> Path:
    return options.rejects or options.path.with_name(options.path.name + ".rejects")


def _say(stream: TextIO, lines: list[str]) -> None:
    for line in lines:
        print(line, file=stream)


def usage_problem(options: ImportOptions) -> str:
    path = options.path
    if not path.exists():
        return f"{path}: no such file"
    if not path.is_file():
        return f"{path}: not a file"
    if rejects_path(options).resolve() == path.resolve():
        return f"{path}: the rejects file cannot be the file being imported"
    if options.format is Format.GOOGLE_LOCAL and options.mode is Mode.SNAPSHOT:
        # A local inventory feed may list only what changed: it is never a location's whole stock.
        return "a google-local file applies as updates at its time, never as a snapshot: use --mode delta"
    return ""


def snapshot_summary(results: list[GroupResult], rejected_lines: int, rejects: str) -> list[str]:
    lines = []
    applied = stale = skipped = 0
    for result in results:
        skipped += result.skipped
        response = result.response
        if response is not None and result.as_of is not None:
            applied += response.applied_count
            stale += response.stale_count
            lines.append(
                f"{result.location_id}: snapshot as of {result.as_of.isoformat()}"
                f"  received {response.received_count:,}  applied {response.applied_count:,}"
                f"  stale {response.stale_count:,}  zeroed {response.zeroed_count:,}"
            )
        else:
            problem = result.problem or "the import stopped first"
            counts = f"{result.skipped:,} lines skipped"
            if result.rejected:
                counts = f"{result.rejected:,} rejected, {counts}"
            lines.append(f"{result.location_id}: not applied: {problem} ({counts})")
    lines.append(totals_line(applied, stale, rejected_lines - skipped, skipped, rejects))
    return lines


def run_import(options: ImportOptions, *, out: TextIO, err: TextIO) -> int:
    problem = usage_problem(options)
    if problem:
        print(f"omnistock import: {problem}", file=err)
        return 2
    settings = Settings(
        options.format, options.mode, options.location, options.as_of, now=datetime.now(UTC)
    )
    progress = Progress(options.path.stat().st_size, err, label=options.path.name)
    try:
        reader = FeedReader(options.path, settings, progress.update)
    except FormatError as error:
        print(f"omnistock import: {options.path}: {error}", file=err)
        return 2
    except OSError as error:
        print(f"omnistock import: cannot read {options.path}: {error.strerror}", file=err)
        return 2
    shown = str(rejects_path(options))
    with (
        reader,
        RejectsWriter(rejects_path(options)) as rejects,
        Client(options.target, api_key=options.api_key) as client,
    ):
        summary: Callable[[], list[str]]
        if options.mode is Mode.SNAPSHOT:
            snapshots = SnapshotImporter(client, reader, rejects, batch_size=options.batch_size)
            run: Callable[[], object] = snapshots.run

            def summary() -> list[str]:
                return snapshot_summary(snapshots.results, rejects.count, shown)
        else:
            deltas = DeltaImporter(client, reader, rejects, batch_size=options.batch_size)
            run = deltas.run

            def summary() -> list[str]:
                t = deltas.totals
                rejected = rejects.count - t.skipped
                return [totals_line(t.applied, t.stale, rejected, t.skipped, shown)]

        code = run_reporting(run, progress, options.target, err)
    _say(out, summary())
    if code == 0 and options.mode is Mode.SNAPSHOT:
        refused = [r for r in snapshots.results if r.refused]
        for result in refused:
            print(f"omnistock: {result.location_id}: {result.problem}", file=err)
        code = 1 if refused else 0
    if code == 0 and rejects.count and not options.allow_rejects:
        print(
            f"omnistock import: {rejects.count:,} line(s) rejected, listed in {shown}"
            " (--allow-rejects exits 0 all the same)",
            file=err,
        )
        code = 1
    return code


def run_reporting(run: Callable[[], object], progress: Progress, target: str, err: TextIO) -> int:
    """Run the import; an error ends it with a message (and what was done so far)."""
    try:
        run()
    except ApiError as error:
        progress.finish()
        _say(err, [*error_lines(error, target), "omnistock: import stopped; so far:"])
        return 1
    except OSError as error:
        progress.finish()
        print(f"omnistock: import stopped: {error}; so far:", file=err)
        return 1
    except KeyboardInterrupt:
        progress.finish()
        print("omnistock: interrupted; so far:", file=err)
        return 130
    progress.finish()
    return 0
