"""Packed ordering keys in SQL, for the statements that build them from columns.

domain.feed_order.pack_key packs an update's key into 32 bytes that compare as the key
does: four big-endian 64-bit parts with the sign bit flipped. PostgreSQL builds the same
bytes from numbers; SQLite cannot, so its statements bind keys packed in Python (or call
``omnistock_pack_key``, a Python function registered on the connection).
"""

from __future__ import annotations

_SIGN_BIT = "(-9223372036854775807 - 1)"


def pack_key_sql(
    time: str, sequence: str, tie_quantity: str, tie_safety: str, *, postgres: bool
) -> str:
    """SQL for the packed key of four bigint expressions (``sequence`` -1 when absent)."""
    parts = (time, sequence, tie_quantity, tie_safety)
    if not postgres:
        return "omnistock_pack_key(" + ", ".join(parts) + ")"
    hexes = " || ".join(f"lpad(to_hex(({part}) # {_SIGN_BIT}), 16, '0')" for part in parts)
    return f"decode({hexes}, 'hex')"
