"""Every Redis key name the gateway uses, in one place.

All keys start with the store's prefix (``gw:`` by default). A key is either a
fixed name (``{prefix}{name}``) or a namespace and one identifier
(``{prefix}{namespace}:{id}``); names and namespaces contain no ``:``, so two
keys can only be equal when they are the same key, whatever the identifiers hold.

=====================================  ===========  ===========================================
key                                    type         content
=====================================  ===========  ===========================================
``{p}schema``                          string       layout version of this keyspace
``{p}chargers``                        hash         charger id -> Charger JSON
``{p}charger-states``                  hash         charger id -> ChargerState JSON
``{p}tokens``                          hash         token uid -> LocalToken JSON
``{p}connectors:{charger_id}``         hash         ``{evse_id}:{connector_id}`` -> JSON
``{p}tx:{tx_id}``                      string       Transaction JSON
``{p}tx-readings:{tx_id}``             list         MeterReading JSON, in arrival order
``{p}tx-by-start``                     sorted set   tx id, score = started_at (µs since epoch)
``{p}tx-by-start:{charger_id}``        sorted set   the same, one charger's transactions
``{p}tx-by-ocpp-id:{charger_id}``      hash         ocpp_id -> tx id
``{p}tx-active:{charger_id}``          set          ids of the charger's active transactions
``{p}seq-ocpp16``                      string       last OCPP 1.6 transactionId handed out (INCR)
=====================================  ===========  ===========================================
"""

from __future__ import annotations

import re

# Version of the layout above; bump with a migration when it changes.
LAYOUT_VERSION = 1


class RedisKeys:
    """The key names under one prefix."""

    __slots__ = (
        "charger_states",
        "chargers",
        "prefix",
        "schema",
        "seq_ocpp16",
        "tokens",
        "tx_by_start_all",
        "tx_prefix",
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.schema = f"{prefix}schema"
        self.chargers = f"{prefix}chargers"
        self.charger_states = f"{prefix}charger-states"
        self.tokens = f"{prefix}tokens"
        self.tx_by_start_all = f"{prefix}tx-by-start"
        self.seq_ocpp16 = f"{prefix}seq-ocpp16"
        # ``tx_prefix + tx_id`` is the key of a transaction; Lua scripts that find a
        # transaction id in an index receive this prefix to name its key.
        self.tx_prefix = f"{prefix}tx:"

    def connectors(self, charger_id: str) -> str:
        return f"{self.prefix}connectors:{charger_id}"

    @staticmethod
    def connector_field(evse_id: int, connector_id: int) -> str:
        return f"{evse_id}:{connector_id}"

    def tx(self, tx_id: str) -> str:
        return self.tx_prefix + tx_id

    def tx_readings(self, tx_id: str) -> str:
        return f"{self.prefix}tx-readings:{tx_id}"

    def tx_by_start(self, charger_id: str) -> str:
        return f"{self.prefix}tx-by-start:{charger_id}"

    def tx_by_ocpp_id(self, charger_id: str) -> str:
        return f"{self.prefix}tx-by-ocpp-id:{charger_id}"

    def tx_active(self, charger_id: str) -> str:
        return f"{self.prefix}tx-active:{charger_id}"

    def match_all(self) -> str:
        """A SCAN MATCH pattern for every key under this prefix (glob characters escaped)."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*"
