"""Reports for the operator (README "Reports"): usage, revenue, uptime and faults per
charger, EVSE, location or roaming partner and period.

``periods`` and ``compute`` are pure (the standard library and ``gateway.domain`` only):
they bucket times and fold transactions, CDR documents and status history into rows.
``source`` reads what they need through the store interfaces (``gateway.storage.base``),
page by page and one charger (or one location) at a time, and yields rows as each
group is done, so a year of 10,000 chargers never sits in memory. ``recorder`` keeps
the status history the uptime and fault reports read: it subscribes to the domain
events and writes them in batches off the hot path.

May import: the standard library, ``gateway.domain``, ``gateway.storage.base`` (and
``gateway.storage`` for its interfaces only). Never the OCPP side, the OCPI side, the
admin API, the composition root or ``gateway.keys`` (checked by
tests/test_architecture.py).
"""
