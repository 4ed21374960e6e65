"""Google Merchant Center's local product inventory feed: its values, and what omnistock
makes of them.

A feed line's ``quantity`` is the units available to sell at the store, and its
``availability`` a claim about the same stock. Both are read, and the lesser wins:
out_of_stock (and on_display_to_order, which offers nothing to take away) is 0
whatever the quantity says, limited_availability is at most the LIMITED band's top
(2 units), in_stock is the quantity. So a shopper is never shown more than the
merchant declared, in either column.

On export, a row's quantity is available to sell and its availability the band's.
"""

from __future__ import annotations

from omnistock.client import Location
from omnistock.server.domain.stock import DEFAULT_LOW_THRESHOLD
from omnistock.server.files.fields import LineError

# The spec's availability values. Tab-separated feeds may write them with spaces.
IN_STOCK = "in_stock"
LIMITED = "limited_availability"
ON_DISPLAY = "on_display_to_order"
OUT_OF_STOCK = "out_of_stock"
AVAILABILITY_VALUES = (IN_STOCK, LIMITED, ON_DISPLAY, OUT_OF_STOCK)
# The LIMITED band is 1 <= ATS < the low threshold (3): its top is 2.
LIMITED_TOP = DEFAULT_LOW_THRESHOLD - 1
# The most units each value allows (None: no bound but the quantity).
CEILING: dict[str, int | None] = {
    IN_STOCK: None,
    LIMITED: LIMITED_TOP,
    ON_DISPLAY: 0,
    OUT_OF_STOCK: 0,
}

# The spec's limit on a product id; a longer sku cannot be exported.
MAX_ID_LENGTH = 50
# The spec's pickup_method values used here ("reserve" and "ship to store" are not).
PICKUP_BUY = "buy"
PICKUP_NOT_SUPPORTED = "not supported"
# A store that has an order ready within this many minutes offers same-day pickup.
SAME_DAY_MINUTES = 240


def parse_availability(text: str) -> str | None:
    """One of AVAILABILITY_VALUES ("in stock" reads as in_stock), or None when empty."""
    if not text:
        return None
    value = "_".join(text.lower().split())
    if value not in CEILING:
        raise LineError(f"availability {text!r} is not one of {', '.join(AVAILABILITY_VALUES)}")
    return value


def available_to_sell(quantity: int | None, availability: str | None) -> int:
    """The units a line says are available to sell: the lesser of its quantity and what its
    availability allows. A quantity is needed unless the availability says 0."""
    ceiling = None if availability is None else CEILING[availability]
    if quantity is None:
        if ceiling == 0:
            return 0
        raise LineError("quantity is required")
    return quantity if ceiling is None else min(quantity, ceiling)


def pickup_columns(location: Location) -> tuple[str, str]:
    """pickup_method and pickup_sla of a store (no SLA when pickup is not supported)."""
    if not location.capabilities.pickup:
        return PICKUP_NOT_SUPPORTED, ""
    same_day = location.pickup_lead_time_minutes <= SAME_DAY_MINUTES
    return PICKUP_BUY, "same_day" if same_day else "next_day"
