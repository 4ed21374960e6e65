"""The schema, as SQLAlchemy 2.0 typed models.

Times are stored as integer microseconds since the Unix epoch (UTC): they
compare exactly and the same way on SQLite and PostgreSQL, which the feed
ordering rule depends on. Alembic migrations in store/migrations create these
tables; tests/test_migrations.py checks the two agree.
"""

from __future__ import annotations

from typing import Any

from omnistock.server.domain.feed_order import MAX_QUANTITY, MIN_ON_HAND, MIN_SAFETY_STOCK
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import true

ID_LENGTH = 64


class Base(DeclarativeBase):
    pass


class LocationRow(Base):
    __tablename__ = "locations"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(500), default="")
    postal_code: Mapped[str] = mapped_column(String(16), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    time_zone: Mapped[str] = mapped_column(String(64))
    # [{"weekday": 1, "opens": "09:00", "closes": "18:00"}, ...]
    weekly_hours: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{"date": "2026-12-25", "opens": null, "closes": null}, ...]
    hours_exceptions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    pickup: Mapped[bool] = mapped_column(Boolean, default=False)
    ship_from: Mapped[bool] = mapped_column(Boolean, default=False)
    ship_to_store: Mapped[bool] = mapped_column(Boolean, default=False)
    pickup_lead_time_minutes: Mapped[int] = mapped_column(Integer, default=0)
    shipping_days: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    default_safety_stock: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    freshness_budget_seconds: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at_us: Mapped[int] = mapped_column(BigInteger)


def _integer_within(column: str, low: int, high: int) -> str:
    # CAST catches a non-integer on SQLite, whose columns would otherwise keep a float
    # (an integer overflow there turns into one); on PostgreSQL the type already does.
    return f"{column} BETWEEN {low} AND {high} AND {column} = CAST({column} AS BIGINT)"


# The stored range of each quantity, enforced by the schema too: a bug elsewhere fails
# its write loudly instead of poisoning reads (DESIGN.md, "Range").
STOCK_CHECKS = (
    CheckConstraint(
        _integer_within("on_hand", MIN_ON_HAND, MAX_QUANTITY), name="ck_stock_on_hand_range"
    ),
    CheckConstraint(_integer_within("reserved", 0, MAX_QUANTITY), name="ck_stock_reserved_range"),
    CheckConstraint(
        "safety_stock IS NULL OR ("
        + _integer_within("safety_stock", MIN_SAFETY_STOCK, MAX_QUANTITY)
        + ")",
        name="ck_stock_safety_stock_range",
    ),
)


class StockRow(Base):
    """One (sku, location) record. Keyed sku first: reads ask for a sku at many locations."""

    __tablename__ = "stock"
    __table_args__ = (
        Index("ix_stock_location_id", "location_id"),
        *STOCK_CHECKS,
        {"sqlite_with_rowid": False},
    )

    sku: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    location_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("locations.id"), primary_key=True
    )
    on_hand: Mapped[int] = mapped_column(BigInteger)
    # Units held by active reservations; kept apart from on_hand so feeds never wipe holds.
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    safety_stock: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    received_at_us: Mapped[int] = mapped_column(BigInteger)
    # on_hand's source time and sequence: the ``as_of`` its answers carry.
    source_updated_at_us: Mapped[int] = mapped_column(BigInteger)
    source_sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Each field keeps the ordering key of the update that last set it, packed so that
    # bytes compare as keys do (domain.feed_order.UpdateKey.packed). Safety stock's is
    # null until an update carries one.
    on_hand_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    safety_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)


locations_table: Table = LocationRow.__table__  # type: ignore[assignment]
stock_table: Table = StockRow.__table__  # type: ignore[assignment]


class FeedStatusRow(Base):
    """What the feeds of one location have done: times and counts, updated with each write."""

    __tablename__ = "feed_status"

    location_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("locations.id"), primary_key=True
    )
    last_snapshot_as_of_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_snapshot_received_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_delta_source_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_delta_received_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    snapshot_count: Mapped[int] = mapped_column(BigInteger, default=0)
    delta_applied_count: Mapped[int] = mapped_column(BigInteger, default=0)
    stale_count: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected_count: Mapped[int] = mapped_column(BigInteger, default=0)


feed_status_table: Table = FeedStatusRow.__table__  # type: ignore[assignment]


class PostalCodeRow(Base):
    """The centroid of a postal code. Codes are stored normalised: upper case, no spaces."""

    __tablename__ = "postal_codes"

    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    postal_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)


postal_codes_table: Table = PostalCodeRow.__table__  # type: ignore[assignment]


class ReservationRow(Base):
    """A hold of stock at one location (see domain.reservations)."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_location_state_expires", "location_id", "state", "expires_at_us"),
        Index("ix_reservations_state_expires", "state", "expires_at_us"),
        # Idempotency keys are per principal: two keys' "basket-1" are two reservations.
        UniqueConstraint("owner", "idempotency_key", name="uq_reservations_owner_idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("locations.id"))
    method: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    # The API key id (principal) that made it; "" for reservations made before 0009.
    owner: Mapped[str] = mapped_column(String(32), server_default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # sha256 of what the caller asked for, to tell a retry from a new request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    customer_reference: Mapped[str] = mapped_column(String(128), default="")
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    expires_at_us: Mapped[int] = mapped_column(BigInteger)
    committed_at_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ended_at_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    holds_stock: Mapped[bool] = mapped_column(Boolean, default=True)
    # A network hold's channel and method (domain.channels.ChannelMethod name); None for a
    # hold made at a location.
    channel_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    channel_method: Mapped[str | None] = mapped_column(String(16), nullable=True)


class ReservationLineRow(Base):
    """One line of a reservation. ``counted``: its quantity is in stock.reserved now.
    ``expires_at_us``: set while the reservation is active, so reads can drop a lapsed
    hold before the sweeper does."""

    __tablename__ = "reservation_lines"
    __table_args__ = (Index("ix_reservation_lines_sku_location", "sku", "location_id"),)

    reservation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("reservations.id"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    quantity: Mapped[int] = mapped_column(BigInteger)
    counted: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The part of quantity held from incoming supply (a pre-order line of a network hold).
    incoming_quantity: Mapped[int] = mapped_column(BigInteger, server_default="0")


reservations_table: Table = ReservationRow.__table__  # type: ignore[assignment]
reservation_lines_table: Table = ReservationLineRow.__table__  # type: ignore[assignment]


class ChangeLogRow(Base):
    """What writes changed, for other processes sharing an SQLite file to poll (the change
    bus; PostgreSQL uses LISTEN/NOTIFY instead). Rows live about a minute."""

    __tablename__ = "change_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class ApiKeyRow(Base):
    """An API key: a principal's name, roles, scope and limits. Only the secret's hash."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    secret_hash: Mapped[str] = mapped_column(String(64))
    roles: Mapped[list[str]] = mapped_column(JSON)
    # None: every location.
    locations: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    exposure: Mapped[str] = mapped_column(String(16))
    # None: every channel.
    channels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rate_per_second: Mapped[float] = mapped_column(Float)
    burst: Mapped[int] = mapped_column(Integer)
    created_at_us: Mapped[int] = mapped_column(BigInteger)
    revoked_at_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ServerSecretRow(Base):
    """Secrets the processes on one database share (the page token key), made on first use."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at_us: Mapped[int] = mapped_column(BigInteger)


class AuditRow(Base):
    """Who changed what, and when: one row per successful write call."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at_us"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at_us: Mapped[int] = mapped_column(BigInteger)
    principal: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(128))
    # What was touched: location ids, a reservation id, record counts.
    detail: Mapped[str] = mapped_column(Text)


class LocationGroupRow(Base):
    """A named set of locations (domain.channels.LocationGroup); members below."""

    __tablename__ = "location_groups"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    updated_at_us: Mapped[int] = mapped_column(BigInteger)


class LocationGroupMemberRow(Base):
    __tablename__ = "location_group_members"
    __table_args__ = (Index("ix_location_group_members_location", "location_id"),)

    group_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("location_groups.id"), primary_key=True
    )
    location_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("locations.id"), primary_key=True
    )


class LocationGroupChildRow(Base):
    """A group another group takes in (its locations count as the parent's)."""

    __tablename__ = "location_group_children"

    group_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("location_groups.id"), primary_key=True
    )
    member_group_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("location_groups.id"), primary_key=True
    )


class ChannelRow(Base):
    """A way shoppers buy, selling from one location group (domain.channels.Channel)."""

    __tablename__ = "channels"
    __table_args__ = (
        CheckConstraint(
            f"default_protection BETWEEN 0 AND {MAX_QUANTITY}", name="ck_channels_protection"
        ),
        CheckConstraint("low_threshold >= 1", name="ck_channels_low_threshold"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    group_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("location_groups.id"))
    default_protection: Mapped[int] = mapped_column(BigInteger)
    sells_incoming: Mapped[bool] = mapped_column(Boolean)
    ship_enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    pickup_enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    low_threshold: Mapped[int] = mapped_column(Integer)
    updated_at_us: Mapped[int] = mapped_column(BigInteger)


class ChannelProtectionRow(Base):
    """Units one location keeps back from one channel, where it differs from the default."""

    __tablename__ = "channel_protection"
    __table_args__ = (
        CheckConstraint(f"units BETWEEN 0 AND {MAX_QUANTITY}", name="ck_channel_protection_units"),
    )

    channel_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("channels.id"), primary_key=True
    )
    location_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("locations.id"), primary_key=True
    )
    units: Mapped[int] = mapped_column(BigInteger)


location_groups_table: Table = LocationGroupRow.__table__  # type: ignore[assignment]
location_group_members_table: Table = LocationGroupMemberRow.__table__  # type: ignore[assignment]
location_group_children_table: Table = LocationGroupChildRow.__table__  # type: ignore[assignment]
channels_table: Table = ChannelRow.__table__  # type: ignore[assignment]
channel_protection_table: Table = ChannelProtectionRow.__table__  # type: ignore[assignment]


class IncomingLineRow(Base):
    """Expected supply: one line of a purchase order or transfer to a location. Lines for
    the same (location, sku) add up. ``line_key``: the packed ordering key of the update
    that last set it (the feed rules of stock records apply); a line a newer snapshot of
    the location's incoming left out has quantity 0."""

    __tablename__ = "incoming_lines"
    __table_args__ = (
        Index("ix_incoming_lines_sku", "sku", "location_id"),
        CheckConstraint(
            f"quantity BETWEEN 0 AND {MAX_QUANTITY}", name="ck_incoming_lines_quantity"
        ),
    )

    location_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("locations.id"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    # A calendar date at the location, "YYYY-MM-DD".
    expected_date: Mapped[str] = mapped_column(String(10))
    line_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    received_at_us: Mapped[int] = mapped_column(BigInteger)


class IncomingWatermarkRow(Base):
    """The as_of of each location's newest snapshot of its incoming lines."""

    __tablename__ = "incoming_watermarks"

    location_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("locations.id"), primary_key=True
    )
    as_of_us: Mapped[int] = mapped_column(BigInteger)


incoming_lines_table: Table = IncomingLineRow.__table__  # type: ignore[assignment]
incoming_watermarks_table: Table = IncomingWatermarkRow.__table__  # type: ignore[assignment]


class RateLimitBucketRow(Base):
    """One key's token bucket, shared by every process on the database: checked and
    taken from in one statement."""

    __tablename__ = "rate_limit_buckets"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at_us: Mapped[int] = mapped_column(BigInteger)


rate_limit_buckets_table: Table = RateLimitBucketRow.__table__  # type: ignore[assignment]
