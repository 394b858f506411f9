"""Several gateway processes on one Redis: who holds which charger, and one command path.

- :mod:`~gateway.cluster.node`: this process in the cluster: its node id, its channel
  (messages to it) and the ``changes`` channel (to all), over the store's
  :class:`~gateway.storage.base.MessageStore`.
- :mod:`~gateway.cluster.ownership`: the charger ownership registry (claim at connect,
  renew, release, takeover from another process, the offline sweep under a lease).
- :mod:`~gateway.cluster.router`: the one command path to a charger: a local call when
  this process holds it, else routed to the process that does, same answers.
- :mod:`~gateway.cluster.wire`: the JSON of what travels between processes (pure).

With SQLite (one process) the same code runs on in-memory ownership and messages.

May import: ``gateway.domain``, ``gateway.storage``, ``gateway.csms`` (the central
system it routes to). Never the OCPI side (``roaming``, ``hub``, ``ocpi``), ``admin`` or
the composition root: they reach chargers through the router.
"""
