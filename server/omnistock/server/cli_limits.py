"""`omnistock serve`'s rate-limit options: where keys' token buckets are kept."""

from __future__ import annotations

import argparse
from dataclasses import replace

from omnistock.server.config import RATE_LIMIT_MODES, ServerConfig, rate_limit_mode


def add_rate_limit_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--rate-limits",
        choices=RATE_LIMIT_MODES,
        help="where keys' rate limits are counted: local (each process on its own, so N"
        " processes allow N times a key's rate), database or redis (shared by every process)"
        " [$OMNISTOCK_RATE_LIMITS; redis with --redis-url, else database, except local for"
        " one process on SQLite]",
    )
    serve.add_argument(
        "--redis-url",
        metavar="URL",
        help="Redis for shared rate limits, such as redis://127.0.0.1:6379/0"
        " [$OMNISTOCK_REDIS_URL]",
    )


def with_rate_limits(
    config: ServerConfig, base: ServerConfig, args: argparse.Namespace
) -> ServerConfig:
    """The rate-limit flags over their variables; ValueError for redis without a URL."""
    config = replace(
        config,
        rate_limits=args.rate_limits or base.rate_limits,
        redis_url=args.redis_url or base.redis_url,
    )
    if rate_limit_mode(config) == "redis" and not config.redis_url:
        raise ValueError("--rate-limits redis needs --redis-url (or $OMNISTOCK_REDIS_URL)")
    return config
