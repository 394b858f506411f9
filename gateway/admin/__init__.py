"""The operator's admin API. Imports ``domain``, ``storage``, the ``csms`` command
interface and ``gateway.keys``; never the OCPI bridge."""
