"""Site load management: keep each site (a grid connection) under its capacity.

- :mod:`~gateway.smart.allocator`: pure (no I/O). Shares a site's capacity among its
  sessions (equal share or weighted by priority), and plans the steps that move the
  chargers from the limits in force to the new ones so that the limits in force never
  sum above the capacity, on any phase, at any instant.
- :mod:`~gateway.smart.sites`: sites, their demand-response limits and the allocator's
  state as stored documents.
- :mod:`~gateway.smart.manager`: the runtime. Listens to the domain events, runs one
  allocator per site in the process holding the ``sites`` lease, and sends each charger
  its limit (a ChargingStationMaxProfile) through the injected command sender, the same
  command path as the admin API's.

May import: ``gateway.domain``, ``gateway.storage`` (and the standard library). Never
``gateway.csms``, ``gateway.roaming``, ``gateway.hub``, ``gateway.admin``, ``ocpi`` or
``ocpp``: chargers are reached through :class:`~gateway.domain.commands.CommandSender`,
other processes through a small messaging protocol the composition root provides.
"""
