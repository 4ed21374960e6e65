"""Request size limits, shared by validation and documentation."""

# The documented range of stored quantities lives with the feed rules.
from omnistock.server.domain.feed_order import MAX_QUANTITY as MAX_QUANTITY

MAX_UPSERT_LOCATIONS = 1_000
MAX_LIST_PAGE_SIZE = 1_000
DEFAULT_LIST_PAGE_SIZE = 100
MAX_AVAILABILITY_LOCATIONS = 1_000
MAX_BATCH_PAIRS = 1_000
MAX_STOCK_UPDATES = 10_000
