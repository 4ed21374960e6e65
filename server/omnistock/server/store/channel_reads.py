"""What channel answers read besides stock records: the incoming held by pre-order holds."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from omnistock.server.domain.timeutil import from_micros
from omnistock.server.store.tables import reservation_lines_table as lines
from sqlalchemy import Engine, select


@dataclass(frozen=True, slots=True)
class IncomingHold:
    """The incoming part of one pre-order hold's line at a location: counted while the
    hold is active and has not lapsed (``expires_at``; None for a committed hold, which
    counts until it is fulfilled or released)."""

    location_id: str
    quantity: int
    expires_at: datetime | None


class ChannelReads:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def incoming_holds(
        self, sku: str, location_ids: Collection[str] | None = None
    ) -> list[IncomingHold]:
        """The holds of a sku that consume incoming supply: active ones (with their
        expiry; the caller drops those lapsed at its time) and committed ones that still
        hold, at some locations or all."""
        # The rule every hold read uses (store.channel_supply, store.hold_placement): a
        # line counts while ``counted`` (settling a committed hold never clears a line that
        # takes incoming); an active one only until its expiry (NULL once committed).
        stmt = select(lines.c.location_id, lines.c.incoming_quantity, lines.c.expires_at_us).where(
            lines.c.sku == sku, lines.c.incoming_quantity > 0, lines.c.counted
        )
        if location_ids is not None:
            stmt = stmt.where(lines.c.location_id.in_(sorted(location_ids)))
        with self._engine.connect() as connection:
            return [
                IncomingHold(
                    location_id, quantity, None if expires is None else from_micros(expires)
                )
                for location_id, quantity, expires in connection.execute(stmt)
            ]
