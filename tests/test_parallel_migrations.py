"""Servers started together on an empty database all come up: migrations wait for each
other under a lock (PostgreSQL: an advisory lock; SQLite: the write lock)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from omnistock.server.store.database import (
    create_database_engine,
    head_revision,
    migrate,
    schema_revision,
)
from processes import clean_env, free_port, wait_serving
from sqlalchemy import Engine, create_engine, text


@pytest.mark.slow
def test_four_servers_started_at_once_on_an_empty_database_all_serve(database_url: str) -> None:
    targets = [f"127.0.0.1:{free_port()}" for _ in range(4)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "omnistock.server.cli",
                "serve",
                "--insecure",
                "--listen",
                target,
                "--database-url",
                database_url,
                "--grace",
                "1",
            ],
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for target in targets
    ]
    try:
        for target, process in zip(targets, processes, strict=True):
            try:
                wait_serving(target, timeout=60)
            except TimeoutError:
                process.kill()
                _, err = process.communicate()
                pytest.fail(f"{target} did not come up: {err.decode()[-2000:]}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def test_migrations_started_at_the_same_moment_wait_for_each_other(database_url: str) -> None:
    engines = [create_database_engine(database_url, pool_size=1) for _ in range(4)]
    start = threading.Barrier(len(engines))
    failures: list[BaseException] = []

    def upgrade(engine: Engine) -> None:
        start.wait()
        try:
            migrate(engine)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=upgrade, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert all(schema_revision(engine) == head_revision() for engine in engines)
    for engine in engines:
        engine.dispose()
