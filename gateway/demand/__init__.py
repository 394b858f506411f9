"""Demand response: the grid operator's signals become time-bounded site limits.

- :mod:`~gateway.demand.mapping`: pure functions from an OpenADR 2.0b event (as
  ``openleadr`` hands it to a VEN) to site limits, and the opt-in / opt-out answer.
- :mod:`~gateway.demand.ven`: the VEN (``openleadr``'s client), one per cluster under a
  lease, which registers with the operator's VTN, receives events, hands their limits
  to the site load manager and reports the sites' power.

May import: ``gateway.domain``, ``gateway.storage``, ``gateway.leases``; the site load
manager is reached through the :class:`~gateway.demand.mapping.LimitSink` protocol it
implements (``gateway.smart``), never the OCPP or OCPI sides.
"""
