"""A progress bar on stderr, from the bytes read out of the file's size.

On a terminal the bar redraws in place at most ten times a second; otherwise
(a log, a pipe) it writes a plain line every few seconds, and one at the end.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

TTY_INTERVAL = 0.1
PLAIN_INTERVAL = 5.0


def size_text(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class Progress:
    """Call ``update(bytes_done)`` as often as you like; it draws only when due."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        label: str,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.total = max(total, 0)
        self._stream = stream
        self._label = label
        self._clock = clock
        self._tty = stream.isatty() if tty is None else tty
        self._interval = TTY_INTERVAL if self._tty else PLAIN_INTERVAL
        self._started = clock()
        self._drawn_at = self._started
        self._done = 0
        self._finished = False

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        if now - self._drawn_at < self._interval or self._finished:
            return
        self._drawn_at = now
        self._draw(now, final=False)

    def finish(self) -> None:
        """Draw the final state (once), ending the bar's line."""
        if self._finished:
            return
        self._finished = True
        self._draw(self._clock(), final=True)

    def _fraction(self) -> float:
        return min(self._done / self.total, 1.0) if self.total else 1.0

    def _draw(self, now: float, *, final: bool) -> None:
        elapsed = now - self._started
        percent = f"{self._fraction():4.0%}"
        amount = f"{size_text(self._done)} of {size_text(self.total)}"
        if final:
            text = f"{self._label}: {percent} {amount} in {duration_text(elapsed)}"
        elif self._tty:
            text = f"{self._label} {self._bar()} {percent}  {amount}{self._eta(elapsed)}"
        else:
            text = f"{self._label}: {percent} {amount}{self._eta(elapsed)}"
        if self._tty:
            width = shutil.get_terminal_size().columns - 1
            self._stream.write("\r" + text[:width].ljust(width) + ("\n" if final else ""))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def _bar(self, width: int = 20) -> str:
        filled = int(self._fraction() * width)
        return "[" + "#" * filled + "-" * (width - filled) + "]"

    def _eta(self, elapsed: float) -> str:
        fraction = self._fraction()
        if elapsed < 1 or fraction <= 0:
            return ""
        rate = self._done / elapsed
        left = elapsed * (1 - fraction) / fraction
        return f"  {size_text(rate)}/s  ETA {duration_text(left)}"
