"""The database side of the `omnistock` command: the one ``--database-url`` every command
takes (anywhere in the command line, with one default), opening it without a traceback,
and `omnistock migrate`."""

from __future__ import annotations

import argparse
import os
import sys

from omnistock.server.store.database import DEFAULT_DATABASE_URL
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

DATABASE_URL_HELP = (
    "sqlite:///FILE or postgresql://USER@HOST:PORT/DATABASE"
    f" [$OMNISTOCK_DATABASE_URL, {DEFAULT_DATABASE_URL}]"
)


def add_database_option(parser: argparse.ArgumentParser) -> None:
    """``--database-url`` on ``parser``. SUPPRESS keeps a value given earlier in the
    command line (``omnistock --database-url X keys create``) from being reset by a
    subcommand's default."""
    parser.add_argument(
        "--database-url", default=argparse.SUPPRESS, metavar="URL", help=DATABASE_URL_HELP
    )


def database_url(args: argparse.Namespace) -> str:
    """The flag, else $OMNISTOCK_DATABASE_URL, else the default: the same for every command."""
    given: str | None = getattr(args, "database_url", None)
    return given or os.environ.get("OMNISTOCK_DATABASE_URL") or DEFAULT_DATABASE_URL


def open_command_database(args: argparse.Namespace, *, must_exist: bool = False) -> Engine:
    """The command's database, connected once (errors: DatabaseSetupError, one line)."""
    from omnistock.server.store.opening import open_database

    return open_database(database_url(args), must_exist=must_exist, pool_size=2)


def _migrate(args: argparse.Namespace) -> int:
    from alembic import command
    from omnistock.server.store.database import alembic_config, migrate

    action = args.migrate_command or "upgrade"
    if action == "history":
        command.history(alembic_config(), verbose=args.verbose)
        return 0
    engine = open_command_database(args, must_exist=action == "current")
    try:
        if action == "upgrade":
            migrate(engine)
            print(f"database schema is up to date ({_revision(engine)})")
        else:
            config = alembic_config()
            with engine.connect() as connection:
                config.attributes["connection"] = connection
                command.current(config, verbose=args.verbose)
    except SQLAlchemyError as error:
        print(f"omnistock: migration failed: {_first_line(error)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _revision(engine: Engine) -> str:
    from omnistock.server.store.database import schema_revision

    return f"revision {schema_revision(engine)}"


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).split("\n")[0].split())


def add_migrate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date (upgrade), or show it (current, history)",
        description="Apply, or show, the database schema's migrations. `serve` upgrades at"
        " start unless run with --no-migrate; a deployment that runs this as a job first"
        " starts its servers with --no-migrate. Any number of upgrades may run at once: they"
        " take a lock and wait for each other. Exit status: 0 done, 1 on an error, 2 on a"
        " usage error.",
    )
    add_database_option(migrate)
    actions = migrate.add_subparsers(dest="migrate_command", metavar="{upgrade,current,history}")
    for name, text in (
        ("upgrade", "apply every migration the database lacks [the default]"),
        ("current", "the database's revision"),
        ("history", "every revision, newest first"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        add_database_option(action)
        if name != "upgrade":
            action.add_argument("--verbose", action="store_true", help="more detail")
    migrate.set_defaults(run=_migrate, verbose=False)


def prepare_server_database(url: str, *, run_migrations: bool) -> None:
    """Before a server starts: reach its database, then upgrade the schema, or (with
    --no-migrate) check that a job already did. Errors: DatabaseSetupError, one line."""
    from omnistock.server.store.database import head_revision, migrate, schema_revision
    from omnistock.server.store.opening import DatabaseSetupError, open_database

    engine = open_database(url, pool_size=1)
    try:
        if run_migrations:
            migrate(engine)
        elif (found := schema_revision(engine)) != (needed := head_revision()):
            raise DatabaseSetupError(
                f"the database's schema is at revision {found or 'none'}, this version needs"
                f" {needed}: run `omnistock migrate`, or serve without --no-migrate",
                usage=False,
            )
    except SQLAlchemyError as error:
        raise DatabaseSetupError(f"migration failed: {_first_line(error)}", usage=False) from None
    finally:
        engine.dispose()


def add_replica_options(serve: argparse.ArgumentParser) -> None:
    """``serve``'s read replica options (docs/scaling.md)."""
    serve.add_argument(
        "--read-database-url",
        action="append",
        metavar="URL",
        help="a PostgreSQL streaming replica to send reads to; repeat for several"
        " [$OMNISTOCK_READ_DATABASE_URL, URLs separated by spaces; none]",
    )
    serve.add_argument(
        "--replica-max-lag",
        type=float,
        metavar="SECONDS",
        help="a replica lagging more than this is out of rotation until it catches up"
        " [$OMNISTOCK_REPLICA_MAX_LAG, 1]",
    )


def replica_settings(
    args: argparse.Namespace, urls: tuple[str, ...], max_lag: float
) -> tuple[tuple[str, ...], float]:
    """The replica URLs and lag bound: the flags, else the environment's."""
    given: list[str] | None = args.read_database_url
    lag = max_lag if args.replica_max_lag is None else args.replica_max_lag
    return (tuple(given) if given else urls), lag


def check_read_databases(url: str, read_urls: tuple[str, ...], *, statement_timeout: float) -> None:
    """Before a server starts: each read replica can be reached and is a standby of a
    PostgreSQL primary. Errors: DatabaseSetupError, one line."""
    from omnistock.server.store.opening import open_read_replicas

    for engine in open_read_replicas(
        url, read_urls, pool_size=1, statement_timeout=statement_timeout
    ):
        engine.dispose()
