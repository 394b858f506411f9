"""The OCPP 1.6J / 2.0.1 / 2.1 central system.

Imports ``gateway.domain``, ``gateway.storage`` and the ``ocpp`` library; never
the OCPI bridge or the admin API. ``v16``, ``v201`` and ``v21`` translate frames to
and from the domain; ``core`` is version-neutral.
"""
