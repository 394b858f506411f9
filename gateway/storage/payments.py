"""OCPI 2.3.0 Payments records (mod_payments): the payment terminals of each Payment
Terminal Provider (PTP) and the financial advice confirmations it sent.

A narrow interface (:class:`PaymentStore`) over two document collections of the store
(``Store.payment_terminals``, ``Store.payment_confirmations``), so both backends (SQLite
and Redis) hold them with no table or key of their own: the document contract of
:mod:`gateway.storage.base` applies (``tests/storage/test_contract_payments.py`` runs this
interface on both).

Keys are ``{partner_id}|{id}``: a terminal id (or confirmation id) is unique within its
PTP only; the owner is the partner id, so a PTP's own records list without the others'.
The 2.3.0 object is kept as its JSON text (``body``: exact amounts, as sent; the roaming
layer, :mod:`gateway.roaming.payments`, reads and writes it: storage does not import the
OCPI models), with what the gateway adds: when it was received and, for a confirmation,
the session and CDR it was matched to by ``authorization_reference``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.storage import codec
from gateway.storage.base import Document, DocumentStore, OutboxItem, Store

__all__ = [
    "DocumentPaymentStore",
    "PaymentStore",
    "StoredConfirmation",
    "StoredTerminal",
    "payment_store",
]


@dataclass(frozen=True, slots=True)
class StoredTerminal:
    partner_id: str
    terminal_id: str
    body: str  # the 2.3.0 Terminal's JSON
    last_updated: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class StoredConfirmation:
    partner_id: str
    confirmation_id: str
    authorization_reference: str
    body: str  # the 2.3.0 FinancialAdviceConfirmation's JSON
    last_updated: datetime
    received_at: datetime
    session_id: str | None = None  # matched by authorization_reference
    cdr_id: str | None = None


class PaymentStore(Protocol):
    async def put_terminal(
        self, record: StoredTerminal, *, enqueue: Sequence[OutboxItem] = ()
    ) -> None:
        """Insert or replace the terminal (and enqueue ``enqueue``, atomically)."""
        ...

    async def get_terminal(self, partner_id: str, terminal_id: str) -> StoredTerminal | None: ...

    async def terminals(
        self, partner_id: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> tuple[builtins.list[StoredTerminal], int]:
        """A page in (last_updated, key) order and the total (``partner_id``: its own)."""
        ...

    async def put_confirmation(self, record: StoredConfirmation) -> None: ...

    async def get_confirmation(
        self, partner_id: str, confirmation_id: str
    ) -> StoredConfirmation | None: ...

    async def confirmations(
        self, partner_id: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> tuple[builtins.list[StoredConfirmation], int]: ...

    async def set_preauthorize(self, tariff_id: str, amount: str | None, at: datetime) -> bool:
        """Set a tariff's ``preauthorize_amount`` (a decimal's text); None removes it
        (False when there was none)."""
        ...

    async def preauthorize_amounts(self) -> dict[str, str]:
        """Every tariff id with its amount."""
        ...


def _key(partner_id: str, object_id: str) -> str:
    return f"{partner_id}|{object_id}"


def _terminal_doc(record: StoredTerminal) -> Document:
    data = {
        "partner_id": record.partner_id,
        "terminal_id": record.terminal_id,
        "terminal": record.body,
        "received_at": codec.encode_time(record.received_at, "received_at"),
    }
    return Document(
        _key(record.partner_id, record.terminal_id),
        data,
        record.last_updated,
        owner=record.partner_id,
    )


def _terminal(doc: Document) -> StoredTerminal:
    d = doc.data
    return StoredTerminal(
        partner_id=str(d["partner_id"]),
        terminal_id=str(d["terminal_id"]),
        body=str(d["terminal"]),
        last_updated=doc.last_updated,
        received_at=codec.decode_time(str(d["received_at"])),
    )


def _confirmation_doc(record: StoredConfirmation) -> Document:
    data = {
        "partner_id": record.partner_id,
        "confirmation_id": record.confirmation_id,
        "confirmation": record.body,
        "received_at": codec.encode_time(record.received_at, "received_at"),
        "authorization_reference": record.authorization_reference,
        "session_id": record.session_id,
        "cdr_id": record.cdr_id,
    }
    return Document(
        _key(record.partner_id, record.confirmation_id),
        data,
        record.last_updated,
        owner=record.partner_id,
    )


def _confirmation(doc: Document) -> StoredConfirmation:
    d = doc.data
    return StoredConfirmation(
        partner_id=str(d["partner_id"]),
        confirmation_id=str(d["confirmation_id"]),
        authorization_reference=str(d["authorization_reference"]),
        body=str(d["confirmation"]),
        last_updated=doc.last_updated,
        received_at=codec.decode_time(str(d["received_at"])),
        session_id=d.get("session_id"),
        cdr_id=d.get("cdr_id"),
    )


class DocumentPaymentStore:
    """:class:`PaymentStore` over two document collections (any backend)."""

    def __init__(
        self, terminals: DocumentStore, confirmations: DocumentStore, tariffs: DocumentStore
    ) -> None:
        self._terminals = terminals
        self._confirmations = confirmations
        self._tariffs = tariffs

    async def put_terminal(
        self, record: StoredTerminal, *, enqueue: Sequence[OutboxItem] = ()
    ) -> None:
        await self._terminals.put(_terminal_doc(record), enqueue=enqueue)

    async def get_terminal(self, partner_id: str, terminal_id: str) -> StoredTerminal | None:
        doc = await self._terminals.get(_key(partner_id, terminal_id))
        return None if doc is None else _terminal(doc)

    async def terminals(
        self, partner_id: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> tuple[builtins.list[StoredTerminal], int]:
        docs, total = await self._terminals.list(owner=partner_id, offset=offset, limit=limit)
        return [_terminal(d) for d in docs], total

    async def put_confirmation(self, record: StoredConfirmation) -> None:
        await self._confirmations.put(_confirmation_doc(record))

    async def get_confirmation(
        self, partner_id: str, confirmation_id: str
    ) -> StoredConfirmation | None:
        doc = await self._confirmations.get(_key(partner_id, confirmation_id))
        return None if doc is None else _confirmation(doc)

    async def confirmations(
        self, partner_id: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> tuple[builtins.list[StoredConfirmation], int]:
        docs, total = await self._confirmations.list(owner=partner_id, offset=offset, limit=limit)
        return [_confirmation(d) for d in docs], total

    async def set_preauthorize(self, tariff_id: str, amount: str | None, at: datetime) -> bool:
        if amount is None:
            return await self._tariffs.delete(tariff_id)
        await self._tariffs.put(Document(tariff_id, {"preauthorize_amount": amount}, at))
        return True

    async def preauthorize_amounts(self) -> dict[str, str]:
        amounts: dict[str, str] = {}
        offset = 0
        while True:
            docs, total = await self._tariffs.list(offset=offset, limit=1000)
            amounts.update((d.key, str(d.data["preauthorize_amount"])) for d in docs)
            offset += len(docs)
            if not docs or offset >= total:
                return amounts


def payment_store(store: Store) -> PaymentStore:
    """The payments records of ``store``."""
    return DocumentPaymentStore(
        store.payment_terminals, store.payment_confirmations, store.payment_tariffs
    )
