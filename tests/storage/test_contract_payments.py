"""The payments records contract (``gateway.storage.payments.PaymentStore``), on both
backends: terminals and financial advice confirmations round trip exactly (amounts as
sent), are kept per PTP (the same id at two PTPs is two records), list in
(last_updated, id) order with their total, replace by id, survive a reopen, and a
terminal put with an outbox item writes both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.storage.base import OutboxStatus, Store
from gateway.storage.payments import StoredConfirmation, StoredTerminal, payment_store
from ocpi.transport import json_loads
from ocpi.v230 import FinancialAdviceConfirmation, Terminal
from tests.storage.conftest import StoreFactory
from tests.storage.samples import outbox_item

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def terminal(terminal_id: str, minutes: int = 0, **fields: object) -> Terminal:
    return Terminal.model_validate(
        {"terminal_id": terminal_id, "last_updated": T0 + timedelta(minutes=minutes)} | fields
    )


def stored(partner_id: str, t: Terminal, received: datetime = T0) -> StoredTerminal:
    return StoredTerminal(partner_id, t.terminal_id, t.to_json(), t.last_updated, received)


def kept(partner_id: str, fac: FinancialAdviceConfirmation, **match: str) -> StoredConfirmation:
    return StoredConfirmation(
        partner_id,
        fac.id,
        fac.authorization_reference,
        fac.to_json(),
        fac.last_updated,
        T0,
        **match,
    )


def confirmation(fac_id: str, reference: str, minutes: int = 0) -> FinancialAdviceConfirmation:
    return FinancialAdviceConfirmation.model_validate(
        {
            "id": fac_id,
            "authorization_reference": reference,
            "total_costs": {
                "before_taxes": Decimal("12.3456"),
                "taxes": [{"name": "VAT", "amount": Decimal("2.3457"), "percentage": 19}],
            },
            "currency": "EUR",
            "eft_data": ["TID:12345678", "AID:A0000000041010"],
            "capture_status_code": "SUCCESS",
            "last_updated": T0 + timedelta(minutes=minutes),
        }
    )


async def test_terminals_round_trip_per_ptp_in_order(store: Store) -> None:
    payments = payment_store(store)
    full = terminal(
        "T-1",
        2,
        customer_reference="CPO-REF",
        address="Main street 1",
        city="Arnhem",
        country="NLD",
        coordinates={"latitude": "51.98012", "longitude": "5.91045"},
        invoice_base_url="https://ptp.example/invoices/",
        invoice_creator="CPO",
        location_ids=["LOC1"],
        evse_uids=["E1", "E2"],
    )
    await payments.put_terminal(stored("ptp-a", full))
    await payments.put_terminal(stored("ptp-a", terminal("T-0", 1)))
    await payments.put_terminal(stored("ptp-b", terminal("T-1", 0)))

    got = await payments.get_terminal("ptp-a", "T-1")
    assert got == stored("ptp-a", full)
    assert Terminal.model_validate(json_loads(got.body if got else "")) == full
    assert (await payments.get_terminal("ptp-b", "T-1")) == stored("ptp-b", terminal("T-1", 0))
    assert await payments.get_terminal("ptp-c", "T-1") is None

    page, total = await payments.terminals("ptp-a")
    assert [t.terminal_id for t in page] == ["T-0", "T-1"] and total == 2
    everyone, total = await payments.terminals(limit=2)
    assert [(t.partner_id, t.terminal_id) for t in everyone] == [
        ("ptp-b", "T-1"),
        ("ptp-a", "T-0"),
    ]
    assert total == 3

    # Replaced by id: the assignment the CPO made.
    assigned = full.model_copy(update={"location_ids": ["LOC1", "LOC2"]})
    await payments.put_terminal(stored("ptp-a", assigned, T0 + timedelta(hours=1)))
    got = await payments.get_terminal("ptp-a", "T-1")
    assert got is not None and json_loads(got.body)["location_ids"] == ["LOC1", "LOC2"]
    assert got.received_at == T0 + timedelta(hours=1)
    assert (await payments.terminals("ptp-a"))[1] == 2


async def test_a_terminal_and_its_push_are_written_together(store: Store) -> None:
    payments = payment_store(store)
    item = outbox_item("assign-1", partner_id="ptp-a", ordering_key="ptp-a|payments|T-1")
    await payments.put_terminal(stored("ptp-a", terminal("T-1")), enqueue=[item])
    pending = await store.outbox.get("assign-1")
    assert pending is not None and pending.status is OutboxStatus.PENDING
    assert await payments.get_terminal("ptp-a", "T-1") is not None


async def test_confirmations_round_trip_with_their_match(store_factory: StoreFactory) -> None:
    store = await store_factory()
    payments = payment_store(store)
    fac = confirmation("FAC-1", "AUTH-1", 5)
    await payments.put_confirmation(kept("ptp-a", fac))
    await payments.put_confirmation(kept("ptp-b", confirmation("FAC-1", "X")))
    matched = kept("ptp-a", fac, session_id="S-1", cdr_id="tx-1")
    await payments.put_confirmation(matched)

    await store.close()
    reopened = payment_store(await store_factory())
    got = await reopened.get_confirmation("ptp-a", "FAC-1")
    assert got == matched
    assert got is not None and got.authorization_reference == "AUTH-1"
    back = FinancialAdviceConfirmation.model_validate(json_loads(got.body))
    assert back == fac and back.total_costs.before_taxes == Decimal("12.3456")
    assert await reopened.get_confirmation("ptp-c", "FAC-1") is None
    mine, total = await reopened.confirmations("ptp-a")
    assert [c.confirmation_id for c in mine] == ["FAC-1"] and total == 1
    everyone, total = await reopened.confirmations()
    assert [c.partner_id for c in everyone] == ["ptp-b", "ptp-a"] and total == 2


async def test_preauthorize_amounts_per_tariff(store: Store) -> None:
    payments = payment_store(store)
    assert await payments.preauthorize_amounts() == {}
    assert await payments.set_preauthorize("AC-STD", "50.00", T0)
    assert await payments.set_preauthorize("DC-FAST", "100", T0)
    assert await payments.set_preauthorize("AC-STD", "25.5", T0 + timedelta(minutes=1))
    assert await payments.preauthorize_amounts() == {"AC-STD": "25.5", "DC-FAST": "100"}
    assert await payments.set_preauthorize("DC-FAST", None, T0)
    assert not await payments.set_preauthorize("DC-FAST", None, T0)
    assert await payments.preauthorize_amounts() == {"AC-STD": "25.5"}
