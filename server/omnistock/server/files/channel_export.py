"""``omnistock export --channel``: what one channel may sell, as Google's feeds take it.

- google-local with a channel: the local inventory feed of the channel's stores only (its
  location group, member groups included), each row's quantity the store's channel ATS
  (ATS less the channel's protection there) and its availability the channel's band of
  that quantity, so an online listing never offers the units a store keeps back.
- google-products: the products feed's ``availability`` and ``availability_date`` for
  every sku the channel's locations stock or expect, from the channel's own answer
  (GetAvailability through the channel, SHIP, 1 unit): ``in_stock`` when it can be had
  now; when it cannot but the channel sells incoming and a date is known, ``backorder``
  if a location of the channel has ever stocked the sku and ``preorder`` if none has (a
  product not released yet), with ``availability_date`` that date (Google takes dates up
  to a year ahead; a later one is written ``out_of_stock``); otherwise ``out_of_stock``.
  A sku whose records are all stale is left out (its stock is unknown, and
  ``out_of_stock`` would be news).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TextIO

from omnistock.client import (
    Channel,
    ChannelAvailability,
    Client,
    Exposure,
    LocationKind,
    NotFoundError,
    StockStatus,
)
from omnistock.server.domain.channels import channel_ats
from omnistock.server.domain.stock import DEFAULT_LOW_THRESHOLD, status_band
from omnistock.server.files import google
from omnistock.server.files.exporter import (
    AVAILABILITY,
    LONG_ID,
    STALE,
    ExportError,
    ExportResult,
    why_left_out,
)

PRODUCTS_HEADER = ("id", "availability", "availability_date")
PREORDER = "preorder"
BACKORDER = "backorder"
IN_STOCK = "in_stock"
OUT_OF_STOCK = "out_of_stock"
# Google takes an availability_date at most a year ahead.
MAX_AHEAD = timedelta(days=365)
# Channel answers asked per BatchGetAvailability call (the RPC's limit).
BATCH = 1_000
# Why a row was left out of a channel's feed, as the summary says it.
OUTSIDE = "row outside the channel"


@dataclass(frozen=True, slots=True)
class ChannelScope:
    channel: Channel
    locations: frozenset[str]

    def protection_at(self, location_id: str) -> int:
        for entry in self.channel.protections:
            if entry.location_id == location_id:
                return int(entry.units)
        return int(self.channel.default_protection)

    @property
    def low_threshold(self) -> int:
        return int(self.channel.low_threshold) or DEFAULT_LOW_THRESHOLD


def channel_scope(client: Client, channel_id: str) -> ChannelScope:
    """The channel and every location of its group, member groups included."""
    try:
        channel = client.get_channel(channel_id)
    except NotFoundError as error:
        raise ExportError(f"no channel {channel_id!r}") from error
    seen: set[str] = set()
    locations: set[str] = set()
    pending = [channel.group_id]
    while pending:
        group_id = pending.pop()
        if group_id in seen:
            continue
        seen.add(group_id)
        group = client.get_location_group(group_id)
        locations.update(group.location_ids)
        pending.extend(group.member_group_ids)
    return ChannelScope(channel, frozenset(locations))


def write_google_local_channel(
    client: Client, out: TextIO, location: str | None, channel_id: str
) -> ExportResult:
    scope = channel_scope(client, channel_id)
    stores = {
        loc.id: google.pickup_columns(loc)
        for loc in client.list_locations(kind=LocationKind.STORE)
        if loc.id in scope.locations
    }
    if location is not None and location not in stores:
        raise ExportError(f"{location} is not a store of channel {channel_id}")
    result = ExportResult()
    out.write("\t".join(("store_code", "id", "quantity", "availability")))
    out.write("\t" + "\t".join(("pickup_method", "pickup_sla")) + "\n")
    previous = ""
    for answer in client.export_stock(location or ""):
        pickup = stores.get(answer.location_id)
        if pickup is None:
            result.left_out[OUTSIDE] += 1
            continue
        why = why_left_out(answer)
        if why:
            result.left_out[why] += 1
            continue
        quantity = channel_ats(answer.available_to_sell, scope.protection_at(answer.location_id))
        band = status_band(quantity, stale=False, low_threshold=scope.low_threshold)
        row = (answer.location_id, answer.sku, str(quantity), AVAILABILITY[int(band)], *pickup)
        out.write("\t".join(row) + "\n")
        result.rows += 1
        if answer.location_id != previous:
            result.locations, previous = result.locations + 1, answer.location_id
    return result


def write_google_products(client: Client, out: TextIO, channel_id: str) -> ExportResult:
    today = datetime.now(UTC).date()
    scope = channel_scope(client, channel_id)
    stocked = {a.sku for a in client.export_stock() if a.location_id in scope.locations}
    expected: set[str] = set()
    for location_id in sorted(scope.locations):
        expected.update(line.sku for line in client.list_incoming_supply(location_id=location_id))
    result = ExportResult()
    out.write("\t".join(PRODUCTS_HEADER) + "\n")
    skus = sorted(stocked | expected)
    for answer in _answers(client, skus, channel_id):
        if len(answer.sku) > google.MAX_ID_LENGTH:
            result.left_out[LONG_ID] += 1
            continue
        row = product_row(answer, ever_stocked=answer.sku in stocked, today=today)
        if row is None:
            result.left_out[STALE] += 1
            continue
        out.write("\t".join(row) + "\n")
        result.rows += 1
    result.locations = len(scope.locations)
    return result


def _answers(client: Client, skus: list[str], channel_id: str) -> Iterator[ChannelAvailability]:
    for start in range(0, len(skus), BATCH):
        items = [(sku, channel_id) for sku in skus[start : start + BATCH]]
        yield from client.batch_get_channel_availability(items, exposure=Exposure.EXACT)


def product_row(
    answer: ChannelAvailability, *, ever_stocked: bool, today: date
) -> tuple[str, str, str] | None:
    """A products feed row from a channel answer for 1 unit; None when stock is unknown
    and nothing is expected."""
    if answer.fulfillable:
        return (answer.sku, IN_STOCK, "")
    if answer.available_from:
        since = date.fromisoformat(answer.available_from)
        if since - today > MAX_AHEAD:
            return (answer.sku, OUT_OF_STOCK, "")
        kind = BACKORDER if ever_stocked else PREORDER
        return (answer.sku, kind, f"{since.isoformat()}T00:00Z")
    if int(answer.status) == StockStatus.UNKNOWN:
        return None
    return (answer.sku, OUT_OF_STOCK, "")
