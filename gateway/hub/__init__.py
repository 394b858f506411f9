"""The gateway as an OCPI 2.2.1 roaming hub (transport_and_format, Message Routing;
mod_hub_client_info): platforms registered at ``/ocpi/hub`` reach every party on the
hub, the CPOs hosted on the gateway included, through :mod:`ocpi.hub`.

Imports ``gateway.domain``, ``gateway.storage``, ``gateway.roaming`` (partners, the
outbox, the hosted CPO's providers) and the ``ocpi`` package; never ``gateway.csms``,
``gateway.admin`` or the composition root.
"""
