"""The read model: every cached copy of stock and location state, and the queries over it.

- stock.py: stock records by (sku, location) and by sku, each fill checked against the
  write generation;
- directory.py: every location in memory, with a generation that grows on each reload;
- minute.py: answers that hold for a minute (a store's hours and ready-by);
- queries.py: ReadModel, one async method per query, from memory or awaiting the
  database on the bounded pool; the change bus invalidates it through ReadModel.apply.
"""
