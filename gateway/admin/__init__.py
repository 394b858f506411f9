"""The operator's admin API. Imports ``domain``, ``storage``, the ``csms`` command
interface, the ``roaming`` partner registry and ``gateway.keys``."""
