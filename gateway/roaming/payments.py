"""OCPI 2.3.0 Payments module, CPO side (mod_payments): payment terminals of a Payment
Terminal Provider (PTP) at the CPO's locations, and ad-hoc payments.

What the spec gives the CPO, and where it is here:

* **Receiver interface** (served at ``/ocpi/2.3.0/payments``, 2.3.0 only, the module's
  RECEIVER in our version details): ``POST terminals`` (the PTP creates a terminal it
  shipped or activated; a POST of a terminal id we hold replaces it: the PTP owns the
  object), ``GET terminals/{terminal_id}``, ``POST financial-advice-confirmations`` and
  ``GET financial-advice-confirmations/{id}``. The spec gives the CPO's Receiver no PUT or
  PATCH: the PTP's later changes arrive by POST, or the CPO GETs them (below).
* **The PTP's Sender interface**, called by the CPO: ``GET terminals`` (paginated,
  :meth:`PaymentsService.pull_terminals`), ``PATCH terminals/{terminal_id}`` to assign
  Locations and EVSEs (:meth:`PaymentsService.assign`: through the outbox, written with
  the terminal, so it survives restarts and partner outages), ``POST terminals/activate``
  (a TerminalActivation; the PTP then POSTs the Terminal) and ``POST
  terminals/{terminal_id}/deactivate``.
* **Ad-hoc payment**: the PTP's StartSession carries an ``authorization_reference``
  (the commands path keeps it in the session and the CDR); when a terminal of that PTP
  covering the session's location or EVSE has ``invoice_creator`` CPO, the CDR's
  ``invoice_reference_id`` is that reference (the invoice is then at the terminal's
  ``invoice_base_url`` + authorization_reference, InvoiceCreator CPO);
  a FinancialAdviceConfirmation is kept and matched to the PTP's session (and its CDR)
  with that ``authorization_reference`` (when it arrives, else each time the operator
  lists the confirmations).

Who is a PTP: OCPI 2.3.0's Role enum has no PTP value (types.asciidoc Role: CPO, EMSP,
NAP, NSP, OTHER, SCSP), so a PTP registers with one of those (OTHER, typically). A
partner is taken as a PTP when it registered in 2.3.0 and lists the ``payments`` module
with the SENDER interface (the interface the spec gives the PTP); only such a partner may
POST terminals and confirmations (status 2000 otherwise), and each sees its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

import ocpi.v230 as v230
from gateway.domain.clock import Clock
from gateway.roaming.partners import Partner, PartnerRegistry, PartnerStatus, partner_of
from gateway.roaming.pushes import PushPlanner
from gateway.storage.base import Store
from gateway.storage.payments import (
    PaymentStore,
    StoredConfirmation,
    StoredTerminal,
    payment_store,
)
from ocpi.server import OcpiCall, Operation, ocpi_response, parse_body, path_id
from ocpi.transport import (
    GenericClientError,
    NotFoundError,
    ServerError,
    join_url,
    json_loads,
)

__all__ = [
    "MATCH_WINDOW",
    "MODULE",
    "PAYMENTS",
    "PaymentError",
    "PaymentsService",
    "PaymentsSlot",
    "is_ptp",
    "payments_operations",
    "with_preauthorize",
]

log = logging.getLogger(__name__)

MODULE = "payments"
V230 = "2.3.0"
MATCH_WINDOW = timedelta(days=62)
"""How far back the sessions of a PTP are searched for a confirmation's reference."""
_PAGE = 500


class PaymentError(Exception):
    """What the operator asked cannot be done: ``status`` is the admin API's answer."""

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


def is_ptp(partner: Partner) -> bool:
    """A 2.3.0 partner that offers the Payments Sender interface."""
    return partner.ocpi_version == V230 and partner.endpoint(MODULE, "SENDER") is not None


def terminal_of(record: StoredTerminal) -> v230.Terminal:
    return v230.Terminal.model_validate(json_loads(record.body))


def confirmation_of(record: StoredConfirmation) -> v230.FinancialAdviceConfirmation:
    return v230.FinancialAdviceConfirmation.model_validate(json_loads(record.body))


@dataclass(frozen=True, slots=True)
class Assigned:
    terminal: v230.Terminal
    outbox_item_id: str


class PaymentsService:
    def __init__(
        self,
        store: Store,
        registry: PartnerRegistry,
        planner: PushPlanner,
        clock: Clock,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self._records: PaymentStore = payment_store(store)
        self._store = store
        self._registry = registry
        self._planner = planner
        self._clock = clock
        self._notify = notify

    # -- the Receiver interface (the PTP calls us) ------------------------------------

    async def receive_terminal(self, partner_id: str, terminal: v230.Terminal) -> bool:
        """Keep the PTP's terminal; True when it is new."""
        old = await self._records.get_terminal(partner_id, terminal.terminal_id)
        await self._records.put_terminal(self._stored(partner_id, terminal))
        return old is None

    async def terminal(self, partner_id: str, terminal_id: str) -> v230.Terminal | None:
        record = await self._records.get_terminal(partner_id, terminal_id)
        return None if record is None else terminal_of(record)

    async def receive_confirmation(
        self, partner_id: str, fac: v230.FinancialAdviceConfirmation
    ) -> StoredConfirmation:
        """Keep the confirmation, matched to the PTP's session by its reference."""
        session_id, cdr_id = await self._match(partner_id, fac.authorization_reference)
        if session_id is None:
            log.warning(
                "financial advice confirmation %s of partner %s: no session with"
                " authorization_reference %r (yet)",
                fac.id, partner_id, fac.authorization_reference,
            )  # fmt: skip
        record = StoredConfirmation(
            partner_id,
            fac.id,
            fac.authorization_reference,
            fac.to_json(),
            fac.last_updated,
            self._clock.now(),
            session_id=session_id,
            cdr_id=cdr_id,
        )
        await self._records.put_confirmation(record)
        return record

    async def confirmation(
        self, partner_id: str, confirmation_id: str
    ) -> v230.FinancialAdviceConfirmation | None:
        record = await self._records.get_confirmation(partner_id, confirmation_id)
        return None if record is None else confirmation_of(record)

    # -- the operator's view -----------------------------------------------------------

    async def terminals(
        self, partner_id: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[StoredTerminal], int]:
        return await self._records.terminals(partner_id, offset=offset, limit=limit)

    async def confirmations(
        self, partner_id: str | None = None, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[StoredConfirmation], int]:
        """A page of confirmations; one not matched yet is matched again (its session
        may have come later), and kept so when it now matches."""
        records, total = await self._records.confirmations(partner_id, offset=offset, limit=limit)
        out = []
        for record in records:
            if record.session_id is None or record.cdr_id is None:
                session_id, cdr_id = await self._match(
                    record.partner_id, record.authorization_reference
                )
                if (session_id, cdr_id) != (record.session_id, record.cdr_id):
                    record = StoredConfirmation(
                        record.partner_id,
                        record.confirmation_id,
                        record.authorization_reference,
                        record.body,
                        record.last_updated,
                        record.received_at,
                        session_id=session_id,
                        cdr_id=cdr_id,
                    )
                    await self._records.put_confirmation(record)
            out.append(record)
        return out, total

    # -- the CPO calls the PTP ----------------------------------------------------------

    def _ptp(self, partner_id: str) -> tuple[Partner, str]:
        partner = self._registry.get(partner_id)
        if partner is None:
            raise PaymentError(404, f"no partner {partner_id!r}")
        if partner.status is not PartnerStatus.REGISTERED or not is_ptp(partner):
            raise PaymentError(
                409,
                f"partner {partner_id!r} is not a registered OCPI 2.3.0 payment terminal"
                " provider (no payments SENDER endpoint)",
            )
        url = partner.endpoint(MODULE, "SENDER")
        assert url is not None
        return partner, url

    async def assign(
        self,
        partner_id: str,
        terminal_id: str,
        location_ids: Sequence[str] | None,
        evse_uids: Sequence[str] | None,
    ) -> Assigned:
        """Assign Locations and EVSEs to the PTP's terminal (mod_payments PATCH Terminal:
        the EVSEs of both are enabled). The stored terminal and the PATCH to the PTP
        are written together; what is not given stays as it is."""
        _, url = self._ptp(partner_id)
        record = await self._records.get_terminal(partner_id, terminal_id)
        if record is None:
            raise PaymentError(404, f"partner {partner_id!r} has no terminal {terminal_id!r}")
        if location_ids is None and evse_uids is None:
            raise PaymentError(422, "give location_ids, evse_uids or both", "location_ids")
        for index, location_id in enumerate(location_ids or ()):
            if await self._store.locations.get(location_id) is None:
                raise PaymentError(422, f"no location {location_id!r}", f"location_ids[{index}]")
        now = self._clock.now()
        changes: dict[str, Any] = {"last_updated": now}
        if location_ids is not None:
            changes["location_ids"] = list(location_ids)
        if evse_uids is not None:
            changes["evse_uids"] = list(evse_uids)
        patch = v230.TerminalPatch.model_validate(changes)
        terminal = terminal_of(record).model_copy(update=changes)
        item = self._planner.item(
            partner_id,
            MODULE,
            "PATCH",
            join_url(url, "terminals", terminal_id),
            patch,
            f"terminal:{terminal_id}",
        )
        await self._records.put_terminal(self._stored(partner_id, terminal), enqueue=[item])
        self._notify()
        return Assigned(terminal, item.id)

    async def pull_terminals(self, partner_id: str) -> int:
        """GET the PTP's terminals (every page) and keep them: how many."""
        partner, url = self._ptp(partner_id)
        client = self._registry.client(partner)
        count = 0
        async for terminal in client.get_all(join_url(url, "terminals"), v230.Terminal):
            await self._records.put_terminal(self._stored(partner_id, terminal))
            count += 1
        return count

    async def activate(self, partner_id: str, activation: v230.TerminalActivation) -> Any:
        """Ask the PTP to activate a terminal (its answer's data); the PTP then POSTs
        the Terminal to us."""
        partner, url = self._ptp(partner_id)
        client = self._registry.client(partner)
        return await client.post(join_url(url, "terminals", "activate"), activation)

    async def deactivate(self, partner_id: str, terminal_id: str) -> Any:
        partner, url = self._ptp(partner_id)
        client = self._registry.client(partner)
        return await client.post(join_url(url, "terminals", terminal_id, "deactivate"))

    # -- ad-hoc payments: the tariff's preauthorize_amount, the CDR ------------------------

    async def set_preauthorize(self, tariff_id: str, amount: Decimal | None) -> bool:
        """Set (None: remove) what a terminal reserves for ``tariff_id``
        (Tariff.preauthorize_amount, served in 2.3.0). False: nothing to remove."""
        if amount is not None and await self._store.tariffs.get(tariff_id) is None:
            raise PaymentError(404, f"no tariff {tariff_id!r}")
        text = None if amount is None else str(amount)
        return await self._records.set_preauthorize(tariff_id, text, self._clock.now())

    async def preauthorize_amounts(self) -> dict[str, Decimal]:
        return {k: Decimal(v) for k, v in (await self._records.preauthorize_amounts()).items()}

    async def invoice_reference(
        self,
        partner_id: str,
        location_id: str,
        evse_uid: str,
        authorization_reference: str | None,
    ) -> str | None:
        """The CDR's ``invoice_reference_id``: the authorization_reference, when a
        terminal of the session's PTP covering its location or EVSE says the CPO makes
        the invoice (InvoiceCreator CPO: "via the invoice_base_url +
        authorization_reference"); else None (the PTP makes it)."""
        if authorization_reference is None:
            return None
        offset = 0
        while True:
            records, total = await self._records.terminals(partner_id, offset=offset, limit=_PAGE)
            for record in records:
                terminal = terminal_of(record)
                covers = location_id in (terminal.location_ids or ()) or evse_uid in (
                    terminal.evse_uids or ()
                )
                if covers and terminal.invoice_creator == v230.InvoiceCreator.CPO:
                    return authorization_reference
            offset += len(records)
            if not records or offset >= total:
                return None

    # -- helpers -----------------------------------------------------------------------

    def _stored(self, partner_id: str, terminal: v230.Terminal) -> StoredTerminal:
        return StoredTerminal(
            partner_id,
            terminal.terminal_id,
            terminal.to_json(),
            terminal.last_updated,
            self._clock.now(),
        )

    async def _match(self, partner_id: str, reference: str) -> tuple[str | None, str | None]:
        """The PTP's session (and its CDR, once made) with ``reference``, among its
        sessions of the last :data:`MATCH_WINDOW`; the latest one wins."""
        since: datetime = self._clock.now() - MATCH_WINDOW
        offset, found = 0, None
        while True:
            docs, total = await self._store.sessions.list(
                owner=partner_id, date_from=since, offset=offset, limit=_PAGE
            )
            for doc in docs:
                if doc.data.get("authorization_reference") == reference:
                    found = doc
            offset += len(docs)
            if not docs or offset >= total:
                break
        if found is None:
            return None, None
        tx_id = found.data.get("tx_id")
        cdr = None if tx_id is None else await self._store.cdrs.get(str(tx_id))
        return found.key, None if cdr is None else cdr.key


class PaymentsSlot:
    """The service, attached by the composition root once the store is open (the OCPI
    routes are built with the application, before)."""

    def __init__(self) -> None:
        self.service: PaymentsService | None = None

    def get(self) -> PaymentsService:
        if self.service is None:
            raise ServerError("payments are not available yet")
        return self.service


PAYMENTS = web.AppKey("payments", PaymentsSlot)


def _ptp_of(call: OcpiCall) -> Partner:
    partner = partner_of(call.context.party)
    if not is_ptp(partner):
        raise GenericClientError(
            "only a payment terminal provider (a partner offering the payments SENDER"
            " interface in OCPI 2.3.0) may use the payments module"
        )
    return partner


def with_preauthorize(operations: Sequence[Operation], slot: PaymentsSlot) -> list[Operation]:
    """The 2.3.0 Tariffs Sender's operations, each tariff of a page with the
    ``preauthorize_amount`` the operator set for it (mod_tariffs: what a payment
    terminal reserves; the internal 2.2.1 form has no such field)."""

    def wrap(operation: Operation) -> Operation:
        async def handle(call: OcpiCall) -> web.Response:
            response = await operation.handler(call)
            data = None if response.text is None else json_loads(response.text).get("data")
            if not isinstance(data, list) or not data or slot.service is None:
                return response
            amounts = await slot.service.preauthorize_amounts()
            if not any(isinstance(t, dict) and t.get("id") in amounts for t in data):
                return response
            for tariff in data:
                if isinstance(tariff, dict) and tariff.get("id") in amounts:
                    tariff["preauthorize_amount"] = amounts[tariff["id"]]
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
            return ocpi_response(data, http_status=response.status, headers=headers)

        return Operation(operation.method, operation.path, handle)

    return [wrap(op) for op in operations]


def payments_operations(slot: PaymentsSlot) -> list[Operation]:
    """The CPO's Payments Receiver interface (OCPI 2.3.0), below the module's URL."""

    async def post_terminal(call: OcpiCall) -> web.Response:
        partner = _ptp_of(call)
        terminal = await parse_body(call, v230.Terminal)
        created = await slot.get().receive_terminal(partner.id, terminal)
        return ocpi_response(None, http_status=201 if created else 200)

    async def get_terminal(call: OcpiCall) -> web.Response:
        partner = _ptp_of(call)
        terminal_id = path_id(call, "terminal_id")
        terminal = await slot.get().terminal(partner.id, terminal_id)
        if terminal is None:
            raise NotFoundError(f"terminal_id: unknown Terminal {terminal_id!r}")
        return ocpi_response(terminal)

    async def post_confirmation(call: OcpiCall) -> web.Response:
        partner = _ptp_of(call)
        fac = await parse_body(call, v230.FinancialAdviceConfirmation)
        await slot.get().receive_confirmation(partner.id, fac)
        return ocpi_response(None, http_status=201)

    async def get_confirmation(call: OcpiCall) -> web.Response:
        partner = _ptp_of(call)
        fac_id = path_id(call, "financial_advice_confirmation_id")
        fac = await slot.get().confirmation(partner.id, fac_id)
        if fac is None:
            raise NotFoundError(
                f"financial_advice_confirmation_id: unknown confirmation {fac_id!r}"
            )
        return ocpi_response(fac)

    confirmations = "/financial-advice-confirmations"
    return [
        Operation("POST", "/terminals", post_terminal),
        Operation("POST", "/terminals/", post_terminal),
        Operation("GET", "/terminals/{terminal_id}", get_terminal),
        Operation("POST", confirmations, post_confirmation),
        Operation("POST", confirmations + "/", post_confirmation),
        Operation("GET", confirmations + "/{financial_advice_confirmation_id}", get_confirmation),
    ]
