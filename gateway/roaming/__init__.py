"""The OCPI bridge: the gateway's CPO interface to roaming partners.

Imports ``gateway.domain``, ``gateway.storage`` and the ``ocpi`` package; never
``gateway.csms`` (it sends domain commands through the interface the composition
root hands it) and never ``gateway.admin``.
"""
