"""`omnistock import-incoming FILE`: send an incoming supply file (purchase orders to a
warehouse, transfers to a store) to a server as ApplyIncomingUpdates batches
(files/incoming.py). Exit status as for `omnistock import`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


def _import_incoming(args: argparse.Namespace) -> int:
    from omnistock.server.files import Format
    from omnistock.server.files.incoming import incoming_options, run_import_incoming

    form = args.format or ("jsonl" if args.file.suffix.lower() == ".jsonl" else "csv")
    options = incoming_options(
        path=args.file,
        format=Format(form),
        target=args.target,
        rejects=args.rejects,
        batch_size=args.batch_size,
        api_key=args.api_key,
        allow_rejects=args.allow_rejects,
    )
    return run_import_incoming(options, out=sys.stdout, err=sys.stderr)


def add_incoming_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    batch_size: Callable[[str], int],
) -> None:
    """``batch_size``: the argparse type of --batch-size, shared with `omnistock import`."""
    from omnistock.server.cli_keys import key_recipe

    command = commands.add_parser(
        "import-incoming",
        help="send an incoming supply file (csv, jsonl) to a server",
        description="Send incoming supply lines (purchase orders, transfers) to a server in"
        " batches. Columns (csv header or jsonl keys): location_id, sku, line_id, quantity,"
        " expected_date (YYYY-MM-DD), source_updated_at (ISO 8601 with an offset), and"
        " optionally source_sequence. Lines that cannot be imported go to the rejects file"
        " (FILE.rejects), with the reason. Exit status: 0 when every line was applied (or was"
        " stale), 1 when a line was rejected (unless --allow-rejects) or on an error, 2 on a"
        " usage error.",
    )
    command.add_argument("file", type=Path, metavar="FILE")
    command.add_argument(
        "--format", choices=["csv", "jsonl"], help="[jsonl for a .jsonl file, else csv]"
    )
    command.add_argument("--target", required=True, metavar="HOST:PORT", help="the server")
    command.add_argument(
        "--api-key",
        default=os.environ.get("OMNISTOCK_API_KEY"),
        help="the API key, made with `omnistock keys create NAME"
        f" {key_recipe('import-incoming')}` [$OMNISTOCK_API_KEY]",
    )
    command.add_argument(
        "--rejects", type=Path, metavar="PATH", help="the rejects file [FILE.rejects]"
    )
    command.add_argument(
        "--allow-rejects",
        action="store_true",
        help="exit 0 even when lines were rejected (they still go to the rejects file)",
    )
    command.add_argument(
        "--batch-size", type=batch_size, metavar="N", help="lines per call [1,000]"
    )
    command.set_defaults(run=_import_incoming)
