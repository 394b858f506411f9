"""OCPI protocol: wire models per version, tariff pricing, client and server modules.

Depends on the standard library, pydantic and aiohttp only. It never imports
``gateway``: the gateway adapts its domain to these models, not the other way round.
"""
