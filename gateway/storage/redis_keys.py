"""Every Redis key name the gateway uses, in one place.

All keys start with the store's prefix (``gw:`` by default). A key is either a
fixed name (``{prefix}{name}``) or a namespace and one identifier
(``{prefix}{namespace}:{id}``); names and namespaces contain no ``:``, so two
keys can only be equal when they are the same key, whatever the identifiers hold.
A few namespaces are qualified by a collection name or an outbox status
(``{prefix}{namespace}:{qualifier}:{id}``): those are fixed words without ``:``
(collection names are checked), so the same holds.

Roaming documents of collection ``{c}`` (``locations``, ``sessions``...) and the
outbox. ``{t}`` = ``last_updated`` as µs since the epoch (sorted-set members with
equal scores are ordered by their bytes, so a range is in (last_updated, key) order);
``{s}`` = an outbox status (``pending``, ``done``, ``failed``).

=====================================  ===========  ===========================================
key                                    type         content
=====================================  ===========  ===========================================
``{p}schema``                          string       layout version of this keyspace
``{p}chargers``                        hash         charger id -> Charger JSON
``{p}charger-states``                  hash         charger id -> ChargerState JSON
``{p}tokens``                          hash         token_key(uid) (ASCII upper-cased) -> JSON
``{p}connectors:{charger_id}``         hash         ``{evse_id}:{connector_id}`` -> JSON
``{p}tx:{tx_id}``                      string       Transaction JSON
``{p}tx-readings:{tx_id}``             list         MeterReading JSON, in arrival order
``{p}tx-by-start``                     sorted set   tx id, score = started_at (µs since epoch)
``{p}tx-by-start:{charger_id}``        sorted set   the same, one charger's transactions
``{p}tx-by-ocpp-id:{charger_id}``      hash         ocpp_id -> tx id
``{p}tx-active:{charger_id}``          set          ids of the charger's active transactions
``{p}seq-ocpp16``                      string       last OCPP 1.6 transactionId handed out (INCR)
``{p}doc:{c}``                         hash         document key -> Document JSON
``{p}doc-owner:{c}``                   hash         document key -> owner (if it has one)
``{p}doc-by-time:{c}``                 sorted set   document key, score = ``{t}``
``{p}doc-by-owner:{c}:{owner}``        sorted set   the same, the documents of one owner
``{p}outbox-item:{item_id}``           hash         one item: ``data`` (immutable JSON),
                                                    ``partner_id``, ``ordering_key``, ``seq``,
                                                    ``status``, ``attempts``, ``last_error``
                                                    (JSON string or null), ``next_attempt_at``
                                                    (µs since the epoch), ``completed_at``
                                                    (µs, once done)
``{p}outbox-seq``                      string       last outbox seq handed out (INCR)
``{p}outbox-all``                      sorted set   item id, score = seq
``{p}outbox-status:{s}``               sorted set   ids of the items in status ``{s}``, by seq
``{p}outbox-partner:{partner_id}``     sorted set   ids of the partner's items, by seq
``{p}outbox-partner-status:{s}:{pid}`` sorted set   the partner's items in status ``{s}``
``{p}outbox-key:{ordering_key}``       sorted set   ids of the key's undelivered (not done)
                                                    items, score = seq: the first is the head
``{p}outbox-due``                      sorted set   pending heads, member ``{seq:020d}:{id}``
                                                    (so equal times come by seq), score =
                                                    ``next_attempt_at`` (µs)
``{p}outbox-done``                     sorted set   ids of the done items, score =
                                                    ``completed_at`` (µs): what purge scans
``{p}deleted:{request_id}``            string       "1" for a minute or so after a delete
                                                    (random request id) removed something:
                                                    how a delete sent again after its answer
                                                    was lost answers as the first time
``{p}lease:{name}``                    string       the holder of a once-per-cluster job's
                                                    lease (``gateway.leases``), with a TTL
                                                    (PX): gone when its holder stops renewing
``{p}owner:{charger_id}``              hash         the process holding the charger's
                                                    connection (``gateway.cluster``):
                                                    ``node``, ``since`` and ``hb`` (last
                                                    heartbeat, µs), with a TTL (PX): gone
                                                    when that process stops renewing
``{p}channel:{name}``                  pub/sub      messages between processes (never
                                                    stored): ``node:{node}`` to one process,
                                                    ``changes`` to all
``{p}status-history:{charger_id}``     sorted set   the charger's connection and connector
                                                    status changes (reports), member
                                                    ``{seq:012d}|{slot}|{entry JSON}`` (ties
                                                    of time in append order), score = ``at``
                                                    (µs since the epoch)
``{p}status-history-seq``              hash         charger id -> last ``seq`` of its history
``{p}status-history-chargers``         set          ids of the chargers that have a history
``{p}trail``                           sorted set   every message trail entry's id (score 0:
                                                    ordered by the id's bytes, ``{at:016d}``
                                                    µs then ``{seq:016d}``: time order)
``{p}trail-entry``                     hash         trail entry id -> its JSON (trail_codec)
``{p}trail-seq``                       string       last trail sequence number (INCRBY)
``{p}trail-charger:{charger_id}``      sorted set   the charger's trail entry ids (score 0)
``{p}trail-partner:{partner_id}``      sorted set   the partner's trail entry ids (score 0)
``{p}trail-tx:{transaction_id}``       sorted set   the trail entry ids of an OCPP
                                                    transaction id (score 0)
``{p}certs``                           hash         certificate serial (hex) -> the issued
                                                    certificate's JSON
``{p}certs-by-expiry``                 sorted set   serials of the certificates not revoked,
                                                    score = ``not_after`` (µs)
``{p}certs-charger:{charger_id}``      sorted set   the charger's serials, score =
                                                    ``issued_at`` (µs)
``{p}dm:{charger_id}``                 hash         device model attribute key
                                                    (``VariableKey.text``) -> its description
                                                    JSON (gateway.storage.device_model)
``{p}dm-val:{charger_id}``             hash         attribute key -> its value JSON
``{p}dm-reboot:{charger_id}``          set          attribute keys set RebootRequired
``{p}dm-reports:{charger_id}``         sorted set   the charger's report request ids, score =
                                                    first news of the report (µs); 20 kept
``{p}dm-report:{request_id}:{cid}``    hash         a report's state: ``kind``, ``req``,
                                                    ``ans``, ``last`` (seqNo of the tbc false
                                                    part), ``n`` (attributes), ``upd``
``{p}dm-report-seqs:{rid}:{cid}``      set          the seqNos of a report's parts received
``{p}alerts:{charger_id}``             hash         alert seq -> its JSON (NotifyEvent data)
``{p}alerts-ids:{charger_id}``         list         alert seqs, oldest first (bounded)
``{p}alerts-active:{charger_id}``      hash         seq of each active alert -> its match
                                                    (component and variable)
``{p}alerts-cleared:{charger_id}``     hash         seq of each cleared alert -> when (µs)
``{p}alerts-seq:{charger_id}``         string       last alert seq of the charger (INCR)
=====================================  ===========  ===========================================
"""

from __future__ import annotations

import re

from gateway.storage.base import LEASE_NAME, check_channel

# Version of the layout above; bump with a migration when it changes.
# 2: roaming documents and the outbox (added keys only: nothing to convert).
# 3: ``outbox-done`` and the items' ``completed_at`` (filled in for the items already
#    done, from their ``next_attempt_at``, before a store claims version 3).
# 4: ``tokens`` keyed by ``domain.models.token_key`` of the uid (case-insensitive), not
#    the uid as it came (moved by ``MOVE_TOKEN`` at every open; a gateway of
#    layout 3 would miss a token asked in another case, so it refuses this layout).
# (``lease:{name}`` and ``owner:{charger_id}`` keys came later without a new version:
# they expire on their own, and a gateway that does not know them never reads them;
# nor ``status-history*``: added keys that an older gateway never reads; nor ``trail*``;
# nor ``certs*``; nor ``dm*`` and ``alerts*``.)
LAYOUT_VERSION = 4

# Collection names are part of key names: fixed words, never ``:``.
_COLLECTION = re.compile(r"[a-z][a-z0-9_]*")


class RedisKeys:
    """The key names under one prefix."""

    __slots__ = (
        "certificates",
        "certificates_by_expiry",
        "charger_states",
        "chargers",
        "outbox_all",
        "outbox_done",
        "outbox_due",
        "outbox_item_prefix",
        "outbox_key_prefix",
        "outbox_partner_prefix",
        "outbox_partner_status_prefix",
        "outbox_seq",
        "outbox_status_prefix",
        "prefix",
        "schema",
        "seq_ocpp16",
        "status_history_chargers",
        "status_history_seq",
        "tokens",
        "trail",
        "trail_charger_prefix",
        "trail_entries",
        "trail_partner_prefix",
        "trail_seq",
        "trail_tx_prefix",
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
        # The message trail; its scripts name an entry's index keys from these prefixes.
        self.trail = f"{prefix}trail"
        self.trail_entries = f"{prefix}trail-entry"
        self.trail_seq = f"{prefix}trail-seq"
        self.trail_charger_prefix = f"{prefix}trail-charger:"
        self.trail_partner_prefix = f"{prefix}trail-partner:"
        self.trail_tx_prefix = f"{prefix}trail-tx:"
        self.status_history_seq = f"{prefix}status-history-seq"
        self.status_history_chargers = f"{prefix}status-history-chargers"
        self.certificates = f"{prefix}certs"
        self.certificates_by_expiry = f"{prefix}certs-by-expiry"
        # ``tx_prefix + tx_id`` is the key of a transaction; Lua scripts that find a
        # transaction id in an index receive this prefix to name its key.
        self.tx_prefix = f"{prefix}tx:"
        # Outbox. The Lua scripts name the keys of an item they find in an index, so
        # they receive these prefixes (``prefix + id``; partner-status:
        # ``prefix + status + ":" + partner_id``) rather than the keys.
        self.outbox_seq = f"{prefix}outbox-seq"
        self.outbox_all = f"{prefix}outbox-all"
        self.outbox_due = f"{prefix}outbox-due"
        self.outbox_done = f"{prefix}outbox-done"
        self.outbox_item_prefix = f"{prefix}outbox-item:"
        self.outbox_key_prefix = f"{prefix}outbox-key:"
        self.outbox_status_prefix = f"{prefix}outbox-status:"
        self.outbox_partner_prefix = f"{prefix}outbox-partner:"
        self.outbox_partner_status_prefix = f"{prefix}outbox-partner-status:"

    def certificates_of(self, charger_id: str) -> str:
        return f"{self.prefix}certs-charger:{charger_id}"

    def device_model(self, charger_id: str) -> tuple[str, str, str]:
        """The charger's attribute descriptions, values and reboot marks."""
        p = self.prefix
        return f"{p}dm:{charger_id}", f"{p}dm-val:{charger_id}", f"{p}dm-reboot:{charger_id}"

    def device_reports(self, charger_id: str) -> str:
        return f"{self.prefix}dm-reports:{charger_id}"

    def device_report(self, charger_id: str, request_id: int) -> tuple[str, str]:
        """A report's state hash and its set of seqNos (the request id first: a charger
        id may hold ``:``, a request id never)."""
        p = self.prefix
        return (
            f"{p}dm-report:{request_id}:{charger_id}",
            f"{p}dm-report-seqs:{request_id}:{charger_id}",
        )

    def alerts(self, charger_id: str) -> tuple[str, str, str, str, str]:
        """The charger's alert records, ids, active ones, clearing times and counter."""
        p = self.prefix
        return (
            f"{p}alerts:{charger_id}",
            f"{p}alerts-ids:{charger_id}",
            f"{p}alerts-active:{charger_id}",
            f"{p}alerts-cleared:{charger_id}",
            f"{p}alerts-seq:{charger_id}",
        )

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

    # -- roaming documents ---------------------------------------------------------------

    @staticmethod
    def _collection(collection: str) -> str:
        if not _COLLECTION.fullmatch(collection):
            raise ValueError(f"collection name {collection!r} is not [a-z][a-z0-9_]*")
        return collection

    def documents(self, collection: str) -> str:
        return f"{self.prefix}doc:{self._collection(collection)}"

    def document_owners(self, collection: str) -> str:
        return f"{self.prefix}doc-owner:{self._collection(collection)}"

    def documents_by_time(self, collection: str) -> str:
        return f"{self.prefix}doc-by-time:{self._collection(collection)}"

    def documents_by_owner_prefix(self, collection: str) -> str:
        """``documents_by_owner_prefix(c) + owner`` is ``documents_by_owner(c, owner)``."""
        return f"{self.prefix}doc-by-owner:{self._collection(collection)}:"

    def documents_by_owner(self, collection: str, owner: str) -> str:
        return self.documents_by_owner_prefix(collection) + owner

    # -- outbox ----------------------------------------------------------------------------

    def outbox_item(self, item_id: str) -> str:
        return self.outbox_item_prefix + item_id

    def outbox_key(self, ordering_key: str) -> str:
        return self.outbox_key_prefix + ordering_key

    def outbox_status(self, status: str) -> str:
        return self.outbox_status_prefix + status

    def outbox_partner(self, partner_id: str) -> str:
        return self.outbox_partner_prefix + partner_id

    def outbox_partner_status(self, status: str, partner_id: str) -> str:
        return f"{self.outbox_partner_status_prefix}{status}:{partner_id}"

    @staticmethod
    def outbox_due_member(seq: int, item_id: str) -> str:
        """The member of ``outbox_due`` for an item (the Lua scripts build the same)."""
        return f"{seq:020d}:{item_id}"

    def deleted(self, request_id: str) -> str:
        return f"{self.prefix}deleted:{request_id}"

    def lease(self, name: str) -> str:
        if not LEASE_NAME.fullmatch(name):
            raise ValueError(f"lease name {name!r} is not [a-z][a-z0-9-]*")
        return f"{self.prefix}lease:{name}"

    def owner(self, charger_id: str) -> str:
        return f"{self.prefix}owner:{charger_id}"

    def status_history(self, charger_id: str) -> str:
        return f"{self.prefix}status-history:{charger_id}"

    def trail_index(self, charger_id: str | None, partner: str | None, tx: str | None) -> str:
        """The trail index to read for these filters (the most selective), or ``trail``."""
        if tx is not None:
            return self.trail_tx_prefix + tx
        if charger_id is not None:
            return self.trail_charger_prefix + charger_id
        if partner is not None:
            return self.trail_partner_prefix + partner
        return self.trail

    def channel(self, name: str) -> str:
        check_channel(name)
        return f"{self.prefix}channel:{name}"

    def match_all(self) -> str:
        """A SCAN MATCH pattern for every key under this prefix (glob characters escaped)."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + "*"
