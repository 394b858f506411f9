"""ocpi-gateway: the running product.

Sub-packages and what each may import:

- ``gateway.domain``: version-neutral model of chargers, connectors, transactions,
  tokens and commands. Imports nothing from the rest of ``gateway`` and no wire model.
- ``gateway.storage``: store interfaces per entity and their SQLite (embedded, default)
  and Redis backends. Imports ``gateway.domain`` only.
- ``gateway.csms``: the OCPP 1.6J / 2.0.1 central system. Imports ``domain`` and
  ``storage`` (and the ``ocpp`` library); never the OCPI bridge.
- ``gateway.admin``: the operator's JSON API. Imports ``domain``, ``storage`` and the
  command interface of ``csms``.
- ``gateway.app`` / ``gateway.cli`` / ``gateway.settings``: the composition root, which
  alone wires the pieces together.

The ``ocpi`` package (protocol) never imports ``gateway``.
"""
