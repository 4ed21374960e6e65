"""The `omnistock` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from omnistock.server.config import ServerConfig


def _serve(args: argparse.Namespace) -> int:
    base = ServerConfig.from_env()
    config = ServerConfig(
        listen=args.listen or base.listen,
        database_url=args.database_url or base.database_url,
        demo=args.demo or base.demo,
        db_threads=args.db_threads or base.db_threads,
        grace_seconds=base.grace_seconds if args.grace is None else args.grace,
        log_level=args.log_level or base.log_level,
        read_cache_size=base.read_cache_size
        if args.read_cache_size is None
        else args.read_cache_size,
        read_cache_ttl=base.read_cache_ttl if args.read_cache_ttl is None else args.read_cache_ttl,
    )
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from omnistock.server.app import ListenError, serve

    try:
        asyncio.run(serve(config))
    except ListenError as error:
        print(f"omnistock: {error}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnistock", description="Channel availability and inventory lookup service."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument(
        "--listen", help="HOST:PORT to listen on [$OMNISTOCK_LISTEN, 127.0.0.1:50051]"
    )
    serve.add_argument(
        "--database-url",
        help="sqlite:///FILE or postgresql+psycopg://... [$OMNISTOCK_DATABASE_URL, sqlite:///omnistock.db]",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo data set into an empty database [$OMNISTOCK_DEMO]",
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
        help="seconds a cached record may live [$OMNISTOCK_READ_CACHE_TTL, 1.0]",
    )
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING [$OMNISTOCK_LOG_LEVEL, INFO]")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
