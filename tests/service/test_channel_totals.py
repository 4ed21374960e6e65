"""The kept channel totals: a total read before a write to its sku is never kept after
it, one read after is; the change bus drops what a change may touch; a total stands only
until its expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omnistock.server.domain.channels import Channel, ChannelMethod, ChannelView
from omnistock.server.readmodel.channels import ChannelTotal, ChannelTotals, ResolvedChannel
from omnistock.server.service.changes import RESYNC, Changes

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WEB = ResolvedChannel(ChannelView(Channel("web", "Web", "all"), frozenset({"W1"})), {}, 1)


def total(sku: str, *, expires: datetime = NOW + timedelta(minutes=1)) -> ChannelTotal:
    return ChannelTotal(WEB, sku, ChannelMethod.SHIP, True, (), (), 0, None, NOW, None, expires)


def key(sku: str) -> tuple[str, str, ChannelMethod]:
    return ("web", sku, ChannelMethod.SHIP)


def test_a_total_read_before_a_write_to_its_sku_is_not_kept() -> None:
    totals = ChannelTotals()
    token = totals.token()
    totals.apply(Changes.of_pairs([("PHONE", "S1")]))
    totals.fill(total("PHONE"), token)
    assert totals.get(key("PHONE"), NOW) is None


def test_a_total_read_after_the_last_write_is_kept() -> None:
    totals = ChannelTotals()
    totals.apply(Changes.of_pairs([("PHONE", "S1")]))
    totals.fill(total("PHONE"), totals.token())
    assert totals.get(key("PHONE"), NOW) is not None


def test_a_write_to_another_sku_keeps_a_total() -> None:
    totals = ChannelTotals()
    totals.fill(total("PHONE"), totals.token())
    totals.apply(Changes(incoming=frozenset({("CASE", "W1")})))
    assert totals.get(key("PHONE"), NOW) is not None
    totals.apply(Changes(incoming=frozenset({("PHONE", "W1")})))
    assert totals.get(key("PHONE"), NOW) is None


def test_whole_locations_channels_and_resync_drop_every_total() -> None:
    for change in (Changes(locations=frozenset({"S1"})), Changes(channels=True), RESYNC):
        totals = ChannelTotals()
        totals.fill(total("PHONE"), totals.token())
        totals.apply(change)
        assert totals.get(key("PHONE"), NOW) is None


def test_a_total_stands_until_its_expiry() -> None:
    totals = ChannelTotals()
    totals.fill(total("PHONE", expires=NOW + timedelta(seconds=5)), totals.token())
    assert totals.get(key("PHONE"), NOW + timedelta(seconds=4)) is not None
    assert totals.get(key("PHONE"), NOW + timedelta(seconds=5)) is None


def test_totals_built_together_do_not_expire_together() -> None:
    """The backstop age is about 5 minutes, drawn within +-20% for each total."""
    from omnistock.server.readmodel.channels import total_max_age

    assert total_max_age(lambda low, high: low) == timedelta(minutes=4)
    assert total_max_age(lambda low, high: high) == timedelta(minutes=6)
    ages = {total_max_age() for _ in range(100)}
    assert len(ages) > 50
    assert all(timedelta(minutes=4) <= age <= timedelta(minutes=6) for age in ages)
