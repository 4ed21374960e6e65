"""The read model: every cached copy of stock and location state, and the queries over it.

- stock.py: stock records by (sku, location) and by sku, each fill checked against the
  write generation;
- directory.py: every location in memory, with a generation that grows on each reload;
- minute.py: answers that hold for a minute (a store's hours and ready-by);
- channels.py: each channel with its group resolved, and each (channel, sku, method)
  total a channel answer is built from, each standing until its valid_until;
- channel_queries.py: channel answers from those totals, built on the pool when missing;
- queries.py: ReadModel, one async method per query, from memory or awaiting the
  database on the bounded pool; the change bus invalidates it through ReadModel.apply.
"""
