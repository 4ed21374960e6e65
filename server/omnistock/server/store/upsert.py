"""INSERT ... ON CONFLICT for both dialects: the one place the store's SQL differs by database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert_statement(
    engine: Engine,
    table: Table,
    key: Sequence[str],
    *,
    update: Sequence[str],
    set_: Callable[[Any], dict[str, Any]] | None = None,
    where: Callable[[Any], Any] | None = None,
) -> Any:
    """INSERT that updates ``update`` columns (or ``set_`` expressions) on a key conflict.

    ``set_`` and ``where`` are callables taking the ``excluded`` pseudo-table: extra
    SET expressions, and a condition to update only some conflicting rows.
    """
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    if engine.dialect.name not in ("postgresql", "sqlite"):
        raise ValueError(f"unsupported dialect {engine.dialect.name}")
    stmt = dialect.insert(table)
    values: dict[str, ColumnElement[Any] | Any] = {name: stmt.excluded[name] for name in update}
    if set_ is not None:
        values.update(set_(stmt.excluded))
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_=values,
        where=None if where is None else where(stmt.excluded),
    )
