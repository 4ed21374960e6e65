"""The rejects file: every line that was not imported, with the reason.

A TSV with a header: the line number, the reason, then the original line as it
was (a tab-separated line keeps its tabs, so ``cut -f3-`` gives it back). The
file is created only when there is something to write.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import TextIO

from omnistock.server.files.lines import Line

HEADER = "line\treason\toriginal line\n"


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class RejectsWriter:
    """Thread-safe: importers write from the thread that reads the file, too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def write(self, line: Line, reason: str) -> None:
        reason = " ".join(reason.split())  # no tabs or line breaks in the reason
        with self._lock:
            if self._file is None:
                # surrogateescape writes back the bytes of a line that was not UTF-8.
                self._file = self.path.open("w", encoding="utf-8", errors="surrogateescape")
                self._file.write(HEADER)
            self._file.write(f"{line.number}\t{reason}\t{_one_line(line.text)}\n")
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
