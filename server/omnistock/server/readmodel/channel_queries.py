"""Channel answers: the read model's query, from the kept totals or built on the pool.

A read resolves each channel (ChannelDirectory), checks the method, then takes each
(channel, sku, method) total from memory (ChannelTotals); the totals it lacks are built
together on the bounded database pool (``run``), never on the event loop. Answers are
made BATCH_SLICE items at a time with the event loop free between slices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from omnistock.server.domain.channels import (
    ChannelAnswer,
    ChannelMethod,
    channel_answer,
    contribution,
    counting_incoming,
    held_incoming,
    incoming_line,
)
from omnistock.server.domain.errors import FailedPrecondition, NotFound
from omnistock.server.domain.stock import Exposure
from omnistock.server.readmodel.channels import (
    ChannelDirectory,
    ChannelTotal,
    ChannelTotals,
    ResolvedChannel,
    TotalKey,
    TotalToken,
    end_of_day,
    today_of,
    total_max_age,
)
from omnistock.server.readmodel.single_flight import SingleFlight
from omnistock.server.readmodel.stock import SkuRecords
from omnistock.server.service.changes import Changes
from omnistock.server.store.channel_reads import ChannelReads
from omnistock.server.store.incoming import IncomingStore, StoredIncoming


def _answer_all(
    asked: Sequence[tuple[ChannelTotal | None, tuple[int, Exposure]]],
) -> list[ChannelAnswer]:
    answers = []
    for total, (quantity, exposure) in asked:
        assert total is not None
        answers.append(total.answer(quantity, exposure))
    return answers


# As queries.BATCH_SLICE: the most items answered before other calls get the loop.
CHANNEL_SLICE = 50


@dataclass(frozen=True, slots=True)
class ChannelItem:
    """One channel answer asked: a sku through a channel, by a method, for a quantity."""

    sku: str
    channel_id: str
    method: ChannelMethod = ChannelMethod.SHIP
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class ChannelReply:
    """A channel answer with what it was asked for and the day it is for."""

    item: ChannelItem
    answer: ChannelAnswer
    today: date
    # The channel's band threshold (a banded answer's hint).
    low_threshold: int
    # The total it was given from (ChannelTotal.stamp): with the item's quantity and the
    # answer's exposure it names this reply among every other.
    stamp: int = 0


class ChannelQueries:
    def __init__(
        self,
        *,
        directory: ChannelDirectory,
        totals: ChannelTotals,
        incoming: IncomingStore,
        reads: ChannelReads,
        records: Callable[[str], SkuRecords],
        cached_records: Callable[[str], SkuRecords | None],
        clock: Callable[[], datetime],
        run: Callable[..., Awaitable[Any]],
    ) -> None:
        self._directory = directory
        self._totals = totals
        self._incoming = incoming
        self._reads = reads
        self._records = records
        self._cached_records = cached_records
        self._clock = clock
        self._run = run
        self._loads: SingleFlight[ResolvedChannel | None] = SingleFlight()

    def _load_channel(self, channel_id: str) -> ResolvedChannel | None:
        """A channel read once for a burst of reads that missed it together (a database
        thread): the first reads it, those that arrive meanwhile wait for that read, and
        those queued behind it find it kept."""

        def load() -> ResolvedChannel | None:
            cached, resolved = self._directory.cached(channel_id)
            return resolved if cached else self._directory.load(channel_id)

        return self._loads.run(channel_id, load)

    def apply(self, changes: Changes) -> None:
        self._directory.apply(changes)
        self._totals.apply(changes)

    async def answers(
        self,
        items: Sequence[ChannelItem],
        exposure: Exposure,
        *,
        field: Callable[[int], str],
        must_exist: bool = True,
    ) -> list[ChannelReply]:
        """Each item's answer, in order. NOT_FOUND (CHANNEL_NOT_FOUND) for an unknown
        channel, naming the first such item's field (``field(i)``); FAILED_PRECONDITION
        (METHOD_NOT_OFFERED) for a method its channel does not sell by; with
        ``must_exist``, NOT_FOUND (SKU_NOT_FOUND) for a sku no location of the channel's
        group has reported or expects."""
        channels = await self.channels(items, field)
        replies: list[ChannelReply] = []
        unknown: list[str] = []
        for start in range(0, len(items), CHANNEL_SLICE):
            if start:
                await asyncio.sleep(0)
            part = items[start : start + CHANNEL_SLICE]
            now = self._clock()
            keys = [(item.channel_id, item.sku, item.method) for item in part]
            totals = {key: self._totals.get(key, now) for key in keys}
            missing = [key for key, total in totals.items() if total is None]
            if missing:
                built = await self._run(self.build_many, [(channels[k[0]], k) for k in missing])
                totals.update(zip(missing, built, strict=True))
            kept = [totals[key] for key in keys]
            # An answer not yet kept in its total sums the total's contributions: built on
            # the pool, so a slice of large groups never holds the event loop.
            asked = [(t, (i.quantity, exposure)) for i, t in zip(part, kept, strict=True)]
            if any(t is not None and a not in t.answers for t, a in asked):
                answers = await self._run(_answer_all, asked)
            else:
                answers = [t.answers[a] for t, a in asked]  # type: ignore[union-attr]
            for item, total, answer in zip(part, kept, answers, strict=True):
                assert total is not None
                if not total.known:
                    unknown.append(item.sku)
                replies.append(
                    ChannelReply(
                        item,
                        answer,
                        today_of(total.built_at),
                        total.channel.view.channel.low_threshold,
                        total.stamp,
                    )
                )
        if unknown and must_exist:
            raise NotFound("sku", dict.fromkeys(unknown), reason="SKU_NOT_FOUND")
        return replies

    async def channels(
        self, items: Sequence[ChannelItem], field: Callable[[int], str]
    ) -> dict[str, ResolvedChannel]:
        """Each item's channel, checked: it exists and sells by the item's method."""
        found: dict[str, ResolvedChannel] = {}
        for i, item in enumerate(items):
            channel = found.get(item.channel_id)
            if channel is None:
                cached, resolved = self._directory.cached(item.channel_id)
                if not cached:
                    resolved = await self._run(self._load_channel, item.channel_id)
                if resolved is None:
                    error = NotFound("channel", [item.channel_id], reason="CHANNEL_NOT_FOUND")
                    error.message = f"channel not found: {item.channel_id} ({field(i)})"
                    raise error
                channel = found[item.channel_id] = resolved
            if item.method not in channel.view.channel.methods:
                error_ = FailedPrecondition(
                    f"channel {item.channel_id} does not sell by {item.method.name}",
                    reason="METHOD_NOT_OFFERED",
                )
                error_.violations = [
                    (
                        "METHOD_NOT_OFFERED",
                        f"{field(i).rsplit('.', 1)[0]}.method".lstrip("."),
                        f"channel {item.channel_id} does not sell by {item.method.name}",
                    )
                ]
                raise error_
        return found

    # -- building totals: on a database thread

    def build_many(self, wanted: Sequence[tuple[ResolvedChannel, TotalKey]]) -> list[ChannelTotal]:
        return [self.build(channel, key[1], key[2]) for channel, key in wanted]

    def build(self, channel: ResolvedChannel, sku: str, method: ChannelMethod) -> ChannelTotal:
        """A total from the sku's records, incoming lines and pre-order holds, kept
        unless a write to the sku came while it was read."""
        token = self._totals.token()
        # The channel as it stands now, not as the read that asked resolved it: a change
        # to the directory or the channel between the two would otherwise keep a total
        # built on the old group under the new token, until it expires (minutes).
        cached, resolved = self._directory.cached(channel.view.channel.id)
        if not cached:
            resolved = self._load_channel(channel.view.channel.id)
        channel = resolved or channel
        records = self._cached_records(sku) or self._records(sku)
        lines = self._incoming_of(sku, token)
        holds = self._reads.incoming_holds(sku)
        now = self._clock()
        view = channel.view
        serving = {loc.id: loc for loc in channel.serving[method]}
        known = not view.location_ids.isdisjoint(records.records) or any(
            line.location_id in view.location_ids for line in lines
        )
        contributions = tuple(
            contribution(loc, record, view.channel.protection_at(loc.id), now)
            for loc in serving.values()
            if (record := records.records.get(loc.id)) is not None
        )
        incoming = tuple(
            counting_incoming(
                (
                    incoming_line(line.expected, line.quantity, serving[line.location_id].time_zone)
                    for line in lines
                    if line.location_id in serving
                ),
                now,
            )
        )
        held, held_until = held_incoming(
            ((h.quantity, h.expires_at) for h in holds if h.location_id in serving), now
        )
        base = channel_answer(
            view.channel,
            contributions,
            incoming=incoming,
            incoming_held=held,
            now=now,
            today=today_of(now),
            exposure=Exposure.EXACT,
            held_until=held_until,
        )
        ends = [end_of_day(now), now + total_max_age()]
        if base.valid_until is not None:
            ends.append(base.valid_until)
        total = ChannelTotal(
            channel,
            sku,
            method,
            known,
            tuple(map(tuple, contributions)),
            incoming,
            held,
            held_until,
            now,
            base.valid_until,
            min(ends),
            {(1, Exposure.EXACT): base},
        )
        self._totals.fill(total, token)
        return total

    def _incoming_of(self, sku: str, token: TotalToken) -> tuple[StoredIncoming, ...]:
        kept = self._totals.incoming(sku)
        if kept is not None:
            return kept
        lines = tuple(self._incoming.lines_for(sku))
        self._totals.fill_incoming(sku, lines, token)
        return lines
