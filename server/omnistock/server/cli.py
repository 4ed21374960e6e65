"""The `omnistock` command."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from omnistock.server.cli_channels import add_channels_command
from omnistock.server.cli_database import (
    add_database_option,
    add_migrate_command,
    add_replica_options,
    check_read_databases,
    database_url,
    open_command_database,
    prepare_server_database,
    replica_settings,
)
from omnistock.server.cli_errors import environment_config, run_command
from omnistock.server.cli_health import add_health_command
from omnistock.server.cli_incoming import add_incoming_command
from omnistock.server.cli_limits import add_rate_limit_options, with_rate_limits
from omnistock.server.config import (
    HOLD_TTL_SETTINGS,
    ServerConfig,
    parse_duration,
    parse_listen,
    parse_log_level,
    parse_retention,
)
from omnistock.server.domain.reservations import TtlPolicy
from omnistock.server.domain.security import Principal, Role
from omnistock.server.observability.logs import LOG_FORMATS
from omnistock.server.observability.logs import configure as configure_logging


def _serve(args: argparse.Namespace) -> int:
    try:
        base = ServerConfig.from_env()
        listen = parse_listen(args.listen) if args.listen else base.listen
        log_level = parse_log_level(args.log_level) if args.log_level else base.log_level
    except ValueError as error:
        print(f"omnistock: {error}", file=sys.stderr)
        return 2
    config = ServerConfig(
        listen=listen,
        database_url=database_url(args),
        demo=args.demo or base.demo,
        db_threads=args.db_threads or base.db_threads,
        grace_seconds=base.grace_seconds if args.grace is None else args.grace,
        log_level=log_level,
        read_cache_size=base.read_cache_size
        if args.read_cache_size is None
        else args.read_cache_size,
        read_cache_ttl=base.read_cache_ttl if args.read_cache_ttl is None else args.read_cache_ttl,
        hold_ttls=replace(
            base.hold_ttls,
            **{
                attribute: value
                for attribute in HOLD_TTL_SETTINGS.values()
                if (value := getattr(args, attribute)) is not None
            },
        ),
        sweep_seconds=base.sweep_seconds if args.sweep_seconds is None else args.sweep_seconds,
        workers=args.workers or base.workers,
        insecure=args.insecure or base.insecure,
        tls_cert=args.tls_cert or base.tls_cert,
        tls_key=args.tls_key or base.tls_key,
        tls_client_ca=args.tls_client_ca or base.tls_client_ca,
        db_timeout_seconds=base.db_timeout_seconds if args.db_timeout is None else args.db_timeout,
        banded_max_quantity=_given(args.banded_max_quantity, base.banded_max_quantity),
        key_cache_seconds=_given(args.key_cache_seconds, base.key_cache_seconds),
        auth_failure_burst=_given(args.auth_failure_burst, base.auth_failure_burst),
        auth_failures_per_second=_given(
            args.auth_failures_per_second, base.auth_failures_per_second
        ),
        migrate=base.migrate and not args.no_migrate,
        retention=replace(
            base.retention,
            audit=_given(args.audit_retention, base.retention.audit),
            reservations=_given(args.reservation_retention, base.retention.reservations),
        ),
    )
    config = _with_operations(config, base, args)
    read_urls, max_lag = replica_settings(args, base.read_database_urls, base.replica_max_lag)
    config = replace(config, read_database_urls=read_urls, replica_max_lag=max_lag)
    try:
        config = with_rate_limits(config, base, args)
    except ValueError as error:
        print(f"omnistock: {error}", file=sys.stderr)
        return 2
    for flag, value in (
        ("--replica-max-lag", config.replica_max_lag),
        ("--ready-check-seconds", config.ready_check_seconds),
        ("--key-cache-seconds", config.key_cache_seconds),
        ("--auth-failure-burst", config.auth_failure_burst),
        ("--auth-failures-per-second", config.auth_failures_per_second),
    ):
        if not (math.isfinite(value) and value > 0):
            print(f"omnistock: {flag} must be a number above 0, not {value}", file=sys.stderr)
            return 2
    if config.metrics_listen:
        from omnistock.server.observability.metrics import parse_listen as parse_metrics_listen

        try:
            parse_metrics_listen(config.metrics_listen)
        except ValueError as error:
            print(f"omnistock: {error}", file=sys.stderr)
            return 2
    if not (math.isfinite(config.drain_seconds) and config.drain_seconds >= 0):
        print(f"omnistock: --drain-seconds must be 0 or more, not {config.drain_seconds}", file=sys.stderr)  # fmt: skip
        return 2
    if config.banded_max_quantity < 1:
        print("omnistock: --banded-max-quantity must be at least 1", file=sys.stderr)
        return 2
    if config.tls_cert and not config.tls_key:
        print("omnistock: --tls-cert needs --tls-key", file=sys.stderr)
        return 2
    if config.log_format not in LOG_FORMATS:
        print(f"omnistock: --log-format must be text or json, not {config.log_format!r}", file=sys.stderr)  # fmt: skip
        return 2
    configure_logging(config.log_level, config.log_format)
    from omnistock.server.app import ListenError, serve, serve_workers

    # The schema is brought up to date (or checked) once, here, before any server starts.
    check_read_databases(
        config.database_url,
        config.read_database_urls,
        statement_timeout=config.db_timeout_seconds,
    )
    prepare_server_database(config.database_url, run_migrations=config.migrate)
    config = replace(config, migrate=False)
    if config.workers > 1:
        if config.listen.endswith(":0"):
            print("omnistock: --workers needs a fixed port to share", file=sys.stderr)
            return 2
        return serve_workers(config)
    try:
        asyncio.run(serve(config))
    except ListenError as error:
        print(f"omnistock: {error}", file=sys.stderr)
        return 2
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("omnistock")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "unknown"


_KEPT_FOR_EVER = object()


def _retention(text: str) -> object:
    try:
        return parse_retention(text) or _KEPT_FOR_EVER
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error} (or never)") from None


def _add_retention_options(serve: argparse.ArgumentParser) -> None:
    for flag, variable, default, what in (
        ("--audit-retention", "OMNISTOCK_AUDIT_RETENTION", "90d", "audit log entries"),
        ("--reservation-retention", "OMNISTOCK_RESERVATION_RETENTION", "30d",
         "finished reservations (released, expired, fulfilled)"),
    ):  # fmt: skip
        serve.add_argument(
            flag,
            type=_retention,
            metavar="DURATION",
            help=f"how long {what} are kept before a background job purges them, such as"
            f" 30d, or never [${variable}, {default}]",
        )


def _with_operations(
    config: ServerConfig, base: ServerConfig, args: argparse.Namespace
) -> ServerConfig:
    """The operations flags (metrics, traces, logs, drain) over their variables."""
    return replace(
        config,
        metrics_listen=args.metrics_listen or base.metrics_listen,
        otlp_endpoint=args.otlp_endpoint or base.otlp_endpoint,
        access_log=args.access_log or base.access_log,
        log_format=args.log_format or base.log_format,
        drain_seconds=_given(args.drain_seconds, base.drain_seconds),
        ready_check_seconds=_given(args.ready_check_seconds, base.ready_check_seconds),
    )


def _add_operations_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (with --workers N, worker i"
        " on PORT+i) [$OMNISTOCK_METRICS_LISTEN, off]",
    )
    serve.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="send traces over OTLP/gRPC to this collector, such as http://127.0.0.1:4317"
        " [$OMNISTOCK_OTLP_ENDPOINT, $OTEL_EXPORTER_OTLP_ENDPOINT, off]",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per call: method, principal, status, latency, request id"
        " [$OMNISTOCK_ACCESS_LOG, off]",
    )
    serve.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text or json [$OMNISTOCK_LOG_FORMAT, text]"
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        metavar="SECONDS",
        help="at SIGTERM, how long health says NOT_SERVING while calls are still served, before"
        " the grace period [$OMNISTOCK_DRAIN_SECONDS, 0]",
    )
    serve.add_argument(
        "--ready-check-seconds",
        type=float,
        metavar="SECONDS",
        help="how often readiness (health service omnistock.ready) checks the database"
        " [$OMNISTOCK_READY_CHECK_SECONDS, 2]",
    )


def _given(flag: Any, default: Any) -> Any:
    if flag is _KEPT_FOR_EVER:
        return None
    return default if flag is None else flag


def _keys(args: argparse.Namespace) -> int:
    """omnistock keys create|list|revoke: API keys, straight in the database."""
    from datetime import UTC

    from omnistock.server.domain.security import Role, rate_limit_violations
    from omnistock.server.domain.stock import Exposure
    from omnistock.server.store.database import migrate
    from omnistock.server.store.keys import KeyRepository

    if args.keys_command == "create":
        # Before the database is touched: one line, and nothing made.
        for problem in rate_limit_violations(args.rate, args.burst):
            print(f"omnistock: --{problem.field} {problem.description}", file=sys.stderr)
            return 2
    config = environment_config()
    engine = open_command_database(args, must_exist=args.keys_command != "create")
    migrate(engine)
    repository = KeyRepository(engine)
    now = datetime.now(UTC)
    try:
        if args.keys_command == "create":
            from omnistock.server.cli_channels import unknown_channels

            missing = unknown_channels(engine, args.channel or [])
            if missing:
                print(f"omnistock: --channel {missing[0]}: no such channel (see "
                      "`omnistock channels list`)", file=sys.stderr)  # fmt: skip
                return 2
            stored, text = repository.create(
                args.name,
                [Role(role) for role in args.role],
                locations=args.location or None,
                exposure=Exposure[args.exposure.upper()],
                rate_per_second=args.rate,
                burst=args.burst,
                now=now,
                channels=args.channel or None,
            )
            print(f"created key {stored.principal.key_id} for {stored.principal.name}")
            print(f"  {_describe(stored.principal)}")
            print("the key (shown once; send it as the 'authorization' metadata):")
            print(text)
        elif args.keys_command == "list":
            for stored in repository.all():
                state = "revoked" if stored.revoked_at else "active"
                print(f"{stored.principal.key_id}  {state:7}  {stored.principal.name}: "
                      f"{_describe(stored.principal)}")  # fmt: skip
        elif not repository.revoke(args.key_id, now=now):
            print(f"omnistock: no active key {args.key_id}", file=sys.stderr)
            return 1
        else:
            print(
                f"revoked key {args.key_id} (servers stop accepting it, open streams "
                f"included, within their key cache time: {config.key_cache_seconds:g} s "
                "unless set otherwise)"
            )
    finally:
        engine.dispose()
    return 0


def _describe(who: Principal) -> str:
    where = "every location" if who.locations is None else ", ".join(sorted(who.locations))
    if who.channels is not None:
        where += "; channels " + ", ".join(sorted(who.channels))
    roles = ", ".join(sorted(role.value for role in who.roles))
    return (f"roles {roles}; {where}; {who.exposure.name.lower()}; "
            f"{who.rate_per_second:g}/s, burst {who.burst}")  # fmt: skip


def _audit(args: argparse.Namespace) -> int:
    from omnistock.server.store.keys import AuditRepository

    engine = open_command_database(args, must_exist=True)
    try:
        for entry in AuditRepository(engine).recent(args.limit):
            detail = ", ".join(f"{k}={v}" for k, v in sorted(entry.detail.items()))
            print(
                f"{entry.at.isoformat()}  {entry.principal} ({entry.key_id})  {entry.method}  {detail}"
            )
    finally:
        engine.dispose()
    return 0


def _show(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _import(args: argparse.Namespace) -> int:
    from omnistock.server.files import Format, ImportOptions, Mode, run_import

    options = ImportOptions(
        path=args.file,
        format=Format(args.format),
        mode=Mode(args.mode),
        target=args.target,
        location=args.location,
        as_of=args.as_of,
        rejects=args.rejects,
        batch_size=args.batch_size,
        api_key=args.api_key,
        allow_rejects=args.allow_rejects,
    )
    return run_import(options, out=sys.stdout, err=sys.stderr)


def _export(args: argparse.Namespace) -> int:
    from omnistock.server.files import Format, run_export

    return run_export(
        args.target,
        args.output,
        args.location,
        out=sys.stdout,
        err=sys.stderr,
        api_key=args.api_key,
        form=Format(args.format),
        channel=args.channel,
    )


def _location_id(text: str) -> str:
    from omnistock.server.files.fields import LineError, parse_id

    try:
        return parse_id(text, "location")
    except LineError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _as_of(text: str) -> datetime:
    from omnistock.server.files.fields import LineError, parse_time

    try:
        return parse_time(text, "time")
    except LineError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _batch_size(text: str) -> int:
    from omnistock.server.service.limits import MAX_STOCK_UPDATES

    if not text.isdigit() or not 1 <= int(text) <= MAX_STOCK_UPDATES:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to {MAX_STOCK_UPDATES:,}")
    return int(text)


def _key_help(command: str) -> str:
    from omnistock.server.cli_keys import key_recipe

    channel = (
        f"; google-products: {key_recipe('export google-products')}" if command == "export" else ""
    )
    return (
        f"the API key, made with `omnistock keys create NAME {key_recipe(command + ' csv/jsonl')}`"
        f" (google-local: {key_recipe(command + ' google-local')}{channel}) [$OMNISTOCK_API_KEY]"
    )


def _add_files_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imports = commands.add_parser(
        "import",
        help="send a stock file (csv, jsonl, google-local) to a server",
        description="Send a stock file to a server, a line at a time. Lines that cannot be"
        " imported go to the rejects file (FILE.rejects), with the reason. Exit status: 0 when"
        " every line was applied (or was stale), 1 when a line was rejected (unless"
        " --allow-rejects) or on an error, 2 on a usage error.",
    )
    imports.add_argument("file", type=Path, metavar="FILE")
    imports.add_argument("--format", required=True, choices=["csv", "jsonl", "google-local"])
    imports.add_argument(
        "--mode",
        required=True,
        choices=["snapshot", "delta"],
        help="snapshot: replace each location's stock (its lines must be together);"
        " delta: apply each line as a change (google-local: delta only)",
    )
    imports.add_argument(
        "--location",
        type=_location_id,
        metavar="ID",
        help="the location of lines that name none (needed when the file has no location column)",
    )
    imports.add_argument(
        "--as-of",
        type=_as_of,
        metavar="ISO8601",
        help="the source time of lines without source_updated_at, and of snapshots"
        " [snapshots: the first line's source_updated_at, else now]",
    )
    imports.add_argument("--target", required=True, metavar="HOST:PORT", help="the server")
    imports.add_argument(
        "--api-key", default=os.environ.get("OMNISTOCK_API_KEY"), help=_key_help("import")
    )
    imports.add_argument(
        "--rejects", type=Path, metavar="PATH", help="the rejects file [FILE.rejects]"
    )
    imports.add_argument(
        "--allow-rejects",
        action="store_true",
        help="exit 0 even when lines were rejected (they still go to the rejects file)",
    )
    imports.add_argument(
        "--batch-size",
        type=_batch_size,
        metavar="N",
        help="records per message [delta: 1,000; snapshot: 5,000]",
    )
    imports.set_defaults(run=_import)

    exports = commands.add_parser(
        "export",
        help="write a server's stock to a file: Google's local inventory feed, or csv/jsonl",
        description="google-local: the stock of every store (or one) as Google's local product"
        " inventory feed, tab-separated; warehouses, stale records and ids over 50 characters"
        " are left out and counted. csv, jsonl: every record of every active location (or one),"
        " with on_hand, safety_stock, source_updated_at and source_sequence, which"
        " `omnistock import --mode delta` takes back as they were.",
    )
    exports.add_argument(
        "--format", required=True, choices=["google-local", "google-products", "csv", "jsonl"]
    )
    exports.add_argument(
        "--channel",
        type=_location_id,
        metavar="ID",
        help="google-local: only the channel's stores, at its quantities; google-products: "
        "the channel's availability (required)",
    )
    exports.add_argument("--target", required=True, metavar="HOST:PORT", help="the server")
    exports.add_argument(
        "--api-key", default=os.environ.get("OMNISTOCK_API_KEY"), help=_key_help("export")
    )
    exports.add_argument("--output", required=True, type=Path, metavar="PATH")
    exports.add_argument("--location", type=_location_id, metavar="ID", help="one location only")
    exports.set_defaults(run=_export)


def _import_postcodes(args: argparse.Namespace) -> int:
    import csv

    from omnistock.server.store.database import migrate
    from omnistock.server.store.postcodes import PostcodeRepository

    if not args.file.is_file():
        print(f"omnistock: no such file: {args.file}", file=sys.stderr)
        return 2
    rejected: list[str] = []

    def rows(reader: csv.DictReader[str]) -> Iterator[tuple[str, str, float, float]]:
        for number, row in enumerate(reader, start=2):
            try:
                code = (row.get("postal_code") or "").strip()
                lat, lon = float(row["latitude"]), float(row["longitude"])
                if not code or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                    raise ValueError("postal_code, latitude or longitude out of range")
            except (KeyError, TypeError, ValueError) as error:
                rejected.append(f"line {number}: {error}")
                continue
            yield (row.get("country") or args.country).strip(), code, lat, lon

    engine = open_command_database(args)
    migrate(engine)
    with args.file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"postal_code", "latitude", "longitude"} - set(reader.fieldnames or ())
        if missing:
            print(
                f"omnistock: {args.file}: missing columns {', '.join(sorted(missing))}",
                file=sys.stderr,
            )
            return 2
        loaded = PostcodeRepository(engine).upsert_many(rows(reader))
    engine.dispose()
    for line in rejected[:20]:
        print(f"  rejected {line}", file=sys.stderr)
    print(f"loaded {loaded:,} postal codes, rejected {len(rejected):,}")
    return 0


def _add_security_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from omnistock.server.cli_keys import role_table

    keys = commands.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description="API keys, straight in the database: a key's roles decide its methods,"
        " its locations (if given) bound what it may read and write, and it sees banded stock"
        " unless created with --exposure exact. The roles each method needs:",
        epilog=role_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_option(keys)
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="a new key for a principal")
    create.add_argument("name", help="who holds it: a store system, a partner, an app")
    create.add_argument(
        "--role", action="append", required=True, choices=[r.value for r in Role],
        help="repeat for several: read, feed, reserve, admin",
    )  # fmt: skip
    create.add_argument(
        "--location", action="append", type=_location_id, metavar="ID",
        help="limit it to these locations (repeat); every location when left out",
    )  # fmt: skip
    create.add_argument(
        "--channel", action="append", type=_location_id, metavar="ID",
        help="bind it to these channels (repeat): it sees them and the locations of their"
        " groups only",
    )  # fmt: skip
    create.add_argument(
        "--exposure", choices=["banded", "exact"], default="banded",
        help="the most exact stock it may see [banded]",
    )  # fmt: skip
    create.add_argument("--rate", type=float, default=100.0, help="calls a second [100]")
    create.add_argument("--burst", type=int, default=200, help="calls at once [200]")
    listing = actions.add_parser("list", help="every key, without secrets")
    revoke = actions.add_parser("revoke", help="stop a key working")
    revoke.add_argument("key_id")
    for action in (create, listing, revoke):
        add_database_option(action)
    keys.set_defaults(run=_keys)
    audit = commands.add_parser(
        "audit",
        help="recent writes: who changed what, and when",
        description="The audit log's newest entries, newest first: each successful write"
        " through an API key, with the key's name and id, the method and what it named.",
    )
    add_database_option(audit)
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(run=_audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnistock",
        description="Channel availability and inventory lookup service. Exit status: 0 done,"
        " 1 on an error, 2 on a usage error.",
    )
    parser.add_argument("--version", action="version", version=f"omnistock {_version()}")
    add_database_option(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the gRPC server",
        description="Serve the gRPC API on --listen. The schema is brought up to date at start"
        " (unless --no-migrate); a database that cannot be reached ends it with one line and"
        " exit status 1, a bad flag or variable with exit status 2.",
    )
    serve.add_argument(
        "--listen", help="HOST:PORT to listen on [$OMNISTOCK_LISTEN, 127.0.0.1:50051]"
    )
    add_database_option(serve)
    add_replica_options(serve)
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not change the schema at start, only check it is current (a job runs"
        " `omnistock migrate`) [$OMNISTOCK_NO_MIGRATE]",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo data set into an empty database [$OMNISTOCK_DEMO]",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve without API keys, every caller an admin: for demos only [$OMNISTOCK_INSECURE]",
    )
    serve.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve TLS with this certificate chain [$OMNISTOCK_TLS_CERT]",
    )
    serve.add_argument(
        "--tls-key", metavar="PEM", help="the certificate's private key [$OMNISTOCK_TLS_KEY]"
    )
    serve.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="require client certificates signed by this CA (mTLS) [$OMNISTOCK_TLS_CLIENT_CA]",
    )
    serve.add_argument(
        "--db-timeout",
        type=float,
        metavar="SECONDS",
        help="longest a database statement may run [$OMNISTOCK_DB_TIMEOUT_SECONDS, 30]",
    )
    serve.add_argument(
        "--key-cache-seconds",
        type=float,
        metavar="SECONDS",
        help="how long a key's lookup is trusted: a revoked key, open streams included, "
        "stops within this [$OMNISTOCK_KEY_CACHE_SECONDS, 5]",
    )
    serve.add_argument(
        "--auth-failure-burst",
        type=int,
        metavar="N",
        help="failed authentications a peer address may make at once "
        "[$OMNISTOCK_AUTH_FAILURE_BURST, 30]",
    )
    serve.add_argument(
        "--auth-failures-per-second",
        type=float,
        metavar="N",
        help="and how fast that allowance refills [$OMNISTOCK_AUTH_FAILURES_PER_SECOND, 1]",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port, pre-forked [$OMNISTOCK_WORKERS, 1]",
    )
    serve.add_argument(
        "--db-threads", type=int, help="database worker threads [$OMNISTOCK_DB_THREADS, 8]"
    )
    serve.add_argument(
        "--grace",
        type=float,
        help="seconds in-flight calls get at shutdown [$OMNISTOCK_GRACE_SECONDS, 10]",
    )
    serve.add_argument(
        "--read-cache-size",
        type=int,
        help="stock records kept for hot reads; 0 turns the cache off [$OMNISTOCK_READ_CACHE_SIZE, 200000]",
    )
    serve.add_argument(
        "--read-cache-ttl",
        type=float,
        help="seconds before a cached record is read again, a backstop for a lost change notice"
        " [$OMNISTOCK_READ_CACHE_TTL, 30]",
    )
    defaults = TtlPolicy()
    for name, attribute in HOLD_TTL_SETTINGS.items():
        method, kind = name.split("_", 1)
        serve.add_argument(
            "--" + name.lower().replace("_", "-"),
            dest=attribute,
            type=parse_duration,
            metavar="DURATION",
            help=f"{'longest' if 'MAX' in kind else 'default'} {method.lower()} hold, such as 15m"
            f" or 2h [$OMNISTOCK_{name}, {_show(getattr(defaults, attribute))}]",
        )
    serve.add_argument(
        "--sweep-seconds",
        type=float,
        help="how often lapsed holds are recorded as expired [$OMNISTOCK_SWEEP_SECONDS, 5]",
    )
    serve.add_argument(
        "--banded-max-quantity",
        type=int,
        metavar="N",
        help="most units a line may ask for with a key not granted exact counts (searches,"
        " fulfilment options, holds) [$OMNISTOCK_BANDED_MAX_QUANTITY, 10]",
    )
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING [$OMNISTOCK_LOG_LEVEL, INFO]")
    _add_retention_options(serve)
    _add_operations_flags(serve)
    add_rate_limit_options(serve)
    serve.set_defaults(run=_serve)
    _add_files_commands(commands)
    add_incoming_command(commands, _batch_size)
    _add_security_commands(commands)
    add_channels_command(commands)
    add_migrate_command(commands)
    add_health_command(commands)

    postcodes = commands.add_parser(
        "import-postcodes",
        help="load postal code centroids (CSV) into the database, for searches by postal code",
        description="Load a CSV with the columns postal_code, latitude, longitude and optionally"
        " country (default NL) into the database. Codes are matched without spaces, in upper case.",
    )
    postcodes.add_argument("file", type=Path, metavar="FILE")
    add_database_option(postcodes)
    postcodes.add_argument("--country", default="NL", help="country for rows without one [NL]")
    postcodes.set_defaults(run=_import_postcodes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command: exit 0 when done, 1 on an error, 2 on a usage error, each error
    one line on stderr (never a traceback)."""
    args = build_parser().parse_args(argv)
    return run_command(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
