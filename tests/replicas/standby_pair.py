"""A PostgreSQL primary and a streaming standby of its own, for the read replica tests.

The machine's cluster allows no replication connections, and CI runs as root, which
PostgreSQL refuses: so the pair is made here, as the postgres user (``runuser``), from the
server binaries in /usr/lib/postgresql/*/bin, on free ports, in a temporary folder owned by
that user, and removed after. It is tiny and fast: initdb and pg_basebackup without fsync.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

DATABASE = "omnistock"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (None: none installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class StandbyPair:
    folder: Path
    bin: Path
    primary_port: int
    standby_port: int

    def url(self, port: int, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def standby_url(self) -> str:
        return self.url(self.standby_port)

    def sql(self, port: int, statement: str, *params: Any) -> Any:
        """The first column of the first row of ``statement`` (None: no row)."""
        with psycopg.connect(self.url(port), autocommit=True) as connection:
            row = connection.execute(statement, params or None).fetchone()
            return None if row is None else row[0]

    def pause(self) -> None:
        self.sql(self.standby_port, "SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        self.sql(self.standby_port, "SELECT pg_wal_replay_resume()")

    def caught_up(self, timeout: float = 10.0) -> None:
        """Wait until the standby has replayed everything the primary has written."""
        target = self.sql(self.primary_port, "SELECT (pg_current_wal_lsn() - '0/0')::bigint")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replayed = self.sql(
                self.standby_port, "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint"
            )
            if replayed is not None and replayed >= target:
                return
            time.sleep(0.02)
        raise TimeoutError("the standby did not catch up")

    def reset(self) -> None:
        """An empty omnistock database on the primary (and so on the standby)."""
        self.resume()
        with psycopg.connect(self.url(self.primary_port), autocommit=True) as connection:
            connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
            connection.execute("CREATE SCHEMA public")
        self.caught_up()


def _as_postgres(*command: str | Path) -> list[str]:
    words = [str(word) for word in command]
    return ["runuser", "-u", "postgres", "--", *words] if os.geteuid() == 0 else words


def _run(*command: str | Path) -> None:
    subprocess.run(_as_postgres(*command), check=True, capture_output=True, timeout=60)


def start_pair(bin: Path) -> Iterator[StandbyPair]:
    folder = Path(tempfile.mkdtemp(prefix="omnistock-standby-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    pair = StandbyPair(folder, bin, _free_port(), _free_port())
    primary, standby = folder / "primary", folder / "standby"
    started: list[Path] = []
    try:
        _run(bin / "initdb", "--no-sync", "-A", "trust", "-U", "postgres", "-D", primary)
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {pair.primary_port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{folder}'\nfsync = off\nfull_page_writes = off\n"
                "shared_buffers = 16MB\nwal_level = replica\nmax_wal_senders = 4\n"
                "max_connections = 60\n"
            )
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        _run(bin / "pg_ctl", "-D", primary, "-l", folder / "primary.log", "-w", "start")
        started.append(primary)
        with psycopg.connect(pair.url(pair.primary_port, "postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        _run(
            bin / "pg_basebackup",
            "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U", "postgres",
            "-D", standby, "-R", "-X", "stream", "--no-sync", "-c", "fast",
        )  # fmt: skip
        with open(standby / "postgresql.conf", "a") as conf:
            conf.write(f"port = {pair.standby_port}\n")
        _run(bin / "pg_ctl", "-D", standby, "-l", folder / "standby.log", "-w", "start")
        started.append(standby)
        pair.caught_up()
        yield pair
    finally:
        for data in reversed(started):
            subprocess.run(
                _as_postgres(bin / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)
