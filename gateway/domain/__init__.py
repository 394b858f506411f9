"""Version-neutral domain: chargers, connectors, transactions, tokens, commands.

Both OCPP versions are translated into these types by pure functions in
``gateway.csms``; the OCPI bridge and the admin API consume only these.
Imports: the standard library only. No wire model (OCPP or OCPI) appears here.
"""
