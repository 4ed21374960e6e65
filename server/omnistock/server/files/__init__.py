"""Stock files in and out: ``omnistock import`` and ``omnistock export``.

- formats, fields, lines, reader: reading csv, jsonl and google-local feeds a
  line at a time, into Records and Rejects;
- google, current: what a local inventory feed's values mean, and the on_hand that
  gives a google-local line's available to sell;
- snapshots, deltas: sending them through the SDK, in constant memory;
- rejects, progress, report: the rejects file, the progress bar, the summary;
- importer, exporter: the two commands.
"""

from omnistock.server.files.exporter import run_export
from omnistock.server.files.formats import Format, Mode
from omnistock.server.files.importer import ImportOptions, run_import

__all__ = ["Format", "ImportOptions", "Mode", "run_export", "run_import"]
