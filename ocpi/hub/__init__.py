"""The protocol core of an OCPI 2.2.1 roaming hub (transport_and_format, Message Routing;
mod_hub_client_info), with no knowledge of the gateway that hosts it.

* :mod:`ocpi.hub.directory`: who is connected (platforms, their parties and roles,
  endpoints, connection status; parties handled in-process are *local*).
* :mod:`ocpi.hub.rules`: operator allow/deny rules between pairs of parties.
* :mod:`ocpi.hub.routing`: the pure routing decision for one request.
* :mod:`ocpi.hub.forward`: forwarding a request to a receiver platform over HTTP.
* :mod:`ocpi.hub.local`: handing a request to a party served in-process, through the
  same module operations that serve HTTP (:mod:`ocpi.server`).
* :mod:`ocpi.hub.getall`: "GET All via Hubs", the combined paginated list.
* :mod:`ocpi.hub.response_url`: proxying command ``response_url`` values.
* :mod:`ocpi.hub.clientinfo`: HubClientInfo objects, pushes and the still-alive check.
* :mod:`ocpi.hub.translate`: a routed message between platforms of different OCPI
  versions (2.1.1, 2.2.1, 2.3.0), read in the sender's and written in the receiver's.
"""
