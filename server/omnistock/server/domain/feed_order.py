"""The feed ordering rule: one total key per update, kept per field (DESIGN.md, "Order").

Every update has one key::

    (source time, source sequence (absent sorts first), tie-break on the update's content)

The tie-break is the update's own content, so two different updates stamped with the
same time and sequence still have a winner, and the same one whatever order they
arrive in: the larger quantity wins (an absolute quantity beats a relative adjustment
of the same number), then the larger safety stock (an update without one lowest).

Each field of a record (on_hand, safety stock) keeps the key of the update that last
set it. An update sets each field it carries whose stored key is lower; it is applied
if it set a field and stale if it set none. Because the winner of each field is the
update with the greatest key among those that carry it, any order of the same
absolute updates and snapshots ends in the same state, every field included.

A snapshot's ``as_of`` is a key too: the records it leaves out drop to zero with the
*lowest* key at that time (``snapshot_zero_key``), so anything stamped at ``as_of``
itself (a record of the snapshot, or a delta at that instant) beats the implied zero.

Relative adjustments are the one exception: an adjustment applies to whatever on_hand
is stored when it arrives, if its key is greater than on_hand's; a later-stamped
absolute quantity that arrived first makes an earlier adjustment stale. Adjustments
commute with each other only while they all apply, so a sender that may reorder or
retry should send absolute quantities.

The store keeps each field's key packed (``UpdateKey.packed``): 32 bytes that compare,
byte by byte, in the key's order, so SQL compares a key in one step on both databases
(a row value of four columns cost PostgreSQL's feed path two thirds of its speed). This
module is the rule's one statement; the store compares the packed keys it builds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date

# The documented range of every stored quantity (DESIGN.md, "Range").
MAX_QUANTITY = 1_000_000_000_000
MIN_ON_HAND = -MAX_QUANTITY
MIN_SAFETY_STOCK = 0

# How an absent sequence compares: below every real one (sequences are >= 0).
ABSENT_SEQUENCE = -1
# A tie part below any real update's (quantities are bounded by MAX_QUANTITY), for the
# zero a snapshot implies.
LOWEST_TIE = -(2**62)


@dataclass(frozen=True, order=True, slots=True)
class UpdateKey:
    """The total ordering key of one update, compared field by field, in this order."""

    source_updated_at_us: int
    sequence: int
    tie_quantity: int
    tie_safety: int

    @property
    def source_sequence(self) -> int | None:
        """The sequence as stored: None when the update had none."""
        return None if self.sequence == ABSENT_SEQUENCE else self.sequence

    def packed(self) -> bytes:
        """The key as 32 bytes that sort as the key does (see pack_key)."""
        return pack_key(
            self.source_updated_at_us, self.sequence, self.tie_quantity, self.tie_safety
        )

    @classmethod
    def unpacked(cls, packed: bytes) -> UpdateKey:
        return cls(*(part - _OFFSET for part in _PACKED.unpack(packed)))


# Each part as an unsigned big-endian 64-bit number, offset by 2^63 (the sign bit
# flipped), so that comparing the bytes compares the signed parts in order.
_PACKED = struct.Struct(">QQQQ")
_OFFSET = 2**63


def pack_key(source_updated_at_us: int, sequence: int, tie_quantity: int, tie_safety: int) -> bytes:
    """An UpdateKey's parts packed so that bytes compare as keys do (``sequence`` -1 when
    absent)."""
    return _PACKED.pack(
        source_updated_at_us + _OFFSET,
        sequence + _OFFSET,
        tie_quantity + _OFFSET,
        tie_safety + _OFFSET,
    )


def update_key(
    source_updated_at_us: int,
    source_sequence: int | None,
    quantity: int,
    *,
    relative: bool,
    safety_stock: int | None,
) -> UpdateKey:
    """The key of a delta or snapshot record carrying ``quantity`` (and ``safety_stock``)."""
    return UpdateKey(
        source_updated_at_us,
        ABSENT_SEQUENCE if source_sequence is None else source_sequence,
        2 * quantity + (0 if relative else 1),
        -1 if safety_stock is None else safety_stock,
    )


@dataclass(frozen=True, slots=True)
class DeltaRow:
    """One valid delta record, ready to apply."""

    location_id: str
    sku: str
    # The absolute on_hand, or the change to it when ``relative``.
    quantity: int
    relative: bool
    source_updated_at_us: int
    safety_stock: int | None = None
    source_sequence: int | None = None

    @property
    def key(self) -> UpdateKey:
        return update_key(
            self.source_updated_at_us,
            self.source_sequence,
            self.quantity,
            relative=self.relative,
            safety_stock=self.safety_stock,
        )

    def packed_key(self) -> bytes:
        """``self.key.packed()``, in one step (it runs for every record of a feed)."""
        return pack_key(
            self.source_updated_at_us,
            -1 if self.source_sequence is None else self.source_sequence,
            2 * self.quantity + (0 if self.relative else 1),
            -1 if self.safety_stock is None else self.safety_stock,
        )


@dataclass(frozen=True, slots=True)
class IncomingUpdate:
    """One incoming supply line as a feed states it (store/incoming.py keeps them): its key
    breaks ties on content, the larger quantity, then the later expected date."""

    location_id: str
    sku: str
    line_id: str
    quantity: int
    expected: date
    source_updated_at_us: int
    source_sequence: int | None = None

    def packed_key(self) -> bytes:
        sequence = -1 if self.source_sequence is None else self.source_sequence
        return pack_key(
            self.source_updated_at_us, sequence, 2 * self.quantity + 1, self.expected.toordinal()
        )


def snapshot_zero_key(as_of_us: int) -> UpdateKey:
    """The key of the zero a snapshot at ``as_of_us`` implies for the records it left out:
    the lowest key at that time."""
    return UpdateKey(as_of_us, ABSENT_SEQUENCE, LOWEST_TIE, LOWEST_TIE)


def on_hand_in_range(on_hand: int) -> bool:
    return MIN_ON_HAND <= on_hand <= MAX_QUANTITY


def safety_stock_in_range(safety_stock: int) -> bool:
    return MIN_SAFETY_STOCK <= safety_stock <= MAX_QUANTITY
