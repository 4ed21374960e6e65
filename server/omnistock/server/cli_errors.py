"""How the `omnistock` command fails: one line on stderr that names the value and the fix,
exit status 2 for a usage mistake and 1 for an error, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from omnistock.server.config import ServerConfig
from omnistock.server.store.opening import DatabaseSetupError

USAGE = 2
ERROR = 1


class CommandError(Exception):
    """A mistake the command reports in one line, with its exit status."""

    def __init__(self, message: str, *, exit_status: int = ERROR) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def environment_config() -> ServerConfig:
    """The OMNISTOCK_* environment's configuration; a bad value is a usage error."""
    try:
        return ServerConfig.from_env()
    except ValueError as error:
        raise CommandError(str(error), exit_status=USAGE) from None


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return int(run(args))
    except DatabaseSetupError as error:
        return _fail(str(error), USAGE if error.usage else ERROR)
    except CommandError as error:
        return _fail(str(error), error.exit_status)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as error:
        # A bug, not a mistake of the caller's: still one line, and the traceback on demand.
        if os.environ.get("OMNISTOCK_TRACEBACK"):
            raise
        return _fail(
            f"unexpected {type(error).__name__}: {error} (a bug: set OMNISTOCK_TRACEBACK=1 to"
            " see where, and please report it)",
            ERROR,
        )


def _fail(message: str, status: int) -> int:
    print(f"omnistock: {' '.join(message.split())}", file=sys.stderr)
    return status
