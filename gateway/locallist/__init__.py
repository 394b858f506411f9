"""Local authorization lists: what each charger may authorize offline, kept in sync.

The list a charger gets is built from the local token list (``Store.tokens``) and from
the tokens eMSPs pushed whose whitelist allows offline use (a ``TokenSource`` the
roaming side provides); a token change becomes a differential update, a version
mismatch a full one (see ``gateway.locallist.service``).

Imports ``gateway.domain``, ``gateway.storage`` and aiohttp (its app key); chargers are
reached through the domain's ``CommandSender`` (the cluster router), never the OCPP or
OCPI packages.
"""
