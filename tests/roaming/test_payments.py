"""OCPI 2.3.0 Payments, the gateway as CPO (gateway.roaming.payments), with a real PTP
written from mod_payments (tests/roaming/ptp.py) and a simulated OCPP 1.6 charger, on
both storage backends.

The PTP registers in 2.3.0 (role OTHER: 2.3.0 has no PTP role; it offers the payments
Sender interface), POSTs a terminal, the operator assigns a location to it (PATCHed to
the PTP through the outbox), the PTP's StartSession with an ``authorization_reference``
reaches the charger, the session and CDR carry it (valid against the 2.3.0 OpenAPI), the
CDR's ``invoice_reference_id`` says the CPO invoices (the terminal's invoice_creator), and
a FinancialAdviceConfirmation is kept and matched to the session and CDR.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ocpp.v16 import call as call16

from gateway.roaming.server import REGISTRY
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.ocpi.openapi import validate_against_openapi, validate_envelope
from tests.roaming.emsp_versions import VersionedEmsp
from tests.roaming.ptp import PaymentTerminalProvider
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect

V230 = "2.3.0"


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.02)
    return result


async def _registered(gw: Gateway, ptp: VersionedEmsp) -> str:
    _, partner = await gw.admin("POST", "/partners", {"name": ptp.name})
    ptp.rewrite = (gw.settings.base_url, gw.url)
    await ptp.register_with(partner["our_versions_url"], partner["token_a"])
    return str(partner["id"])


async def _catalog(gw: Gateway) -> None:
    assert (await gw.admin("PUT", "/tariffs/AC-STD", TARIFF))[0] == 201
    assert (await gw.admin("PUT", "/locations/LOC1", LOCATION))[0] == 201
    evses = [{"ocpp_id": 1, "evse_uid": "CP16-1", "evse_id": "ZZ*GWY*E16"}]
    status, _ = await gw.admin("PUT", "/chargers/CP16", {"location_id": "LOC1", "evses": evses})
    assert status == 201


TERMINAL: dict[str, Any] = {
    "terminal_id": "a06dc823-3e5a-40c8-89cf-1b5b9e941412",
    "reference": "Term-SerialNumber",
    "invoice_base_url": "https://ptp.example.com/invoices/",
    "invoice_creator": "CPO",
    "last_updated": "2026-11-23T08:00:00Z",
}
TID = TERMINAL["terminal_id"]


def _mv(ts: str, wh: str) -> list[dict[str, Any]]:
    sampled = [{"value": wh, "measurand": "Energy.Active.Import.Register"}]
    return [{"timestamp": ts, "sampledValue": sampled}]


async def test_terminal_assignment_and_an_ad_hoc_payment(gateways: GatewayFactory) -> None:
    clock = FakeClock()
    gw = await gateways.start(clock=clock, outbox_poll_interval=0.2)
    ptp = PaymentTerminalProvider()
    await ptp.start()
    try:
        partner_id = await _registered(gw, ptp)
        partner = gw.app[REGISTRY].get(partner_id)
        assert partner is not None and partner.version == V230
        assert partner.parties() == [("DE", "PTP")] and partner.roles[0]["role"] == "OTHER"
        # Our 2.3.0 version details list the Payments Receiver.
        assert ptp.cpo_endpoints["payments"] == f"{gw.settings.base_url}/ocpi/2.3.0/payments"
        await _catalog(gw)

        # The PTP creates its terminal (201), and again (200: replaced).
        status, body = await ptp.post_terminal(TERMINAL)
        assert (status, body["status_code"]) == (201, 1000)
        validate_envelope(body, version=V230)
        status, body = await ptp.post_terminal(TERMINAL)
        assert (status, body["status_code"]) == (200, 1000)
        status, _, body = await ptp.call("GET", f"{ptp.cpo_endpoints['payments']}/terminals/{TID}")
        assert status == 200
        validate_envelope(body, "payments", "Terminal", version=V230)
        assert body["data"]["invoice_creator"] == "CPO"
        status, _, body = await ptp.call("GET", f"{ptp.cpo_endpoints['payments']}/terminals/nope")
        assert (status, body["status_code"]) == (404, 2000)

        # The operator sees it and assigns LOC1: stored, and PATCHed to the PTP.
        status, listed = await gw.admin("GET", "/payments/terminals")
        assert status == 200 and [t["terminal"]["terminal_id"] for t in listed] == [TID]
        assert listed[0]["partner_id"] == partner_id
        path = f"/payments/terminals/{partner_id}/{TID}/assign"
        status, error = await gw.admin("POST", path, {"location_ids": ["NOWHERE"]})
        assert (status, error["field"]) == (422, "location_ids[0]")
        status, assigned = await gw.admin("POST", path, {"location_ids": ["LOC1"]})
        assert status == 202 and assigned["terminal"]["location_ids"] == ["LOC1"]
        await eventually(lambda: ptp.terminals[TID].get("location_ids") == ["LOC1"])
        [patch] = ptp.taken("payments", "PATCH")
        assert patch.path == f"{ptp.base}/payments/terminals/{TID}"
        assert set(patch.body) == {"location_ids", "last_updated"}
        status, _ = await gw.admin(
            "POST", f"/payments/terminals/{partner_id}/NOPE/assign", {"evse_uids": ["CP16-1"]}
        )
        assert status == 404

        # An ad-hoc payment: the PTP's StartSession carries its authorization_reference.
        respond = f"{ptp.url}{ptp.base}/commands/START_SESSION/1"
        token = ptp.token("TERMINAL-TX-1") | {"type": "AD_HOC_USER", "contract_id": "DE-PTP-ADHOC1"}
        command = {
            "response_url": respond,
            "token": token,
            "location_id": "LOC1",
            "evse_uid": "CP16-1",
            "authorization_reference": "PAY-0001",
        }
        validate_against_openapi("commands", "StartSession", command, version=V230)
        async with connect(gw.ws_url, "CP16", "1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="A", charge_point_model="B"))
            await cp.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Available")
            )
            _, _, answer = await ptp.call(
                "POST", f"{gw.url}/ocpi/2.3.0/commands/START_SESSION", command
            )
            assert answer["data"]["result"] == "ACCEPTED"
            await eventually(
                lambda: (
                    ("RemoteStartTransaction", {"id_tag": "TERMINAL-TX-1", "connector_id": 1})
                    in cp.received
                )
            )
            start = await cp.call(
                call16.StartTransaction(
                    connector_id=1,
                    id_tag="TERMINAL-TX-1",
                    meter_start=0,
                    timestamp="2026-11-23T10:00:00Z",
                )
            )
            assert start.id_tag_info["status"] == "Accepted"
            clock.advance(61)
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=start.transaction_id,
                    meter_value=_mv("2026-11-23T10:30:00Z", "4000"),
                )
            )
            clock.advance(61)
            await cp.call(
                call16.StopTransaction(
                    meter_stop=10_000,
                    timestamp="2026-11-23T11:00:00Z",
                    transaction_id=start.transaction_id,
                )
            )
            [cdr] = await eventually(lambda: ptp.cdrs)
        await eventually(lambda: ptp.results)
        assert ptp.results[0][1] == {"result": "ACCEPTED"}
        [session] = [s for s in ptp.sessions.values() if s["status"] == "COMPLETED"]
        assert session["authorization_reference"] == "PAY-0001"
        assert cdr["authorization_reference"] == "PAY-0001"
        # The terminal says the CPO invoices: the invoice is invoice_base_url + reference.
        assert cdr["invoice_reference_id"] == "PAY-0001"
        assert cdr["total_cost"]["before_taxes"] == Decimal("3.5")  # 10 kWh x 0.35
        validate_against_openapi("sessions", "Session", session, version=V230)
        validate_against_openapi("cdrs", "CDR", cdr, version=V230)
        for received in ptp.taken("sessions"):
            schema = "Session" if received.method == "PUT" else "SessionPatch"
            validate_against_openapi("sessions", schema, received.body, version=V230)

        # The capture's confirmation: kept, matched to the session and the CDR.
        fac = {
            "id": "FAC-0001",
            "authorization_reference": "PAY-0001",
            "total_costs": {
                "before_taxes": Decimal("3.5"),
                "taxes": [{"name": "VAT", "amount": Decimal("0.67"), "percentage": 19}],
            },
            "currency": "EUR",
            "eft_data": ["TID:12345678", "AID:A0000000041010", "Visa", "PAN:************1234"],
            "capture_status_code": "SUCCESS",
            "last_updated": "2026-11-23T11:05:00Z",
        }
        status, body = await ptp.post_confirmation(fac)
        assert (status, body["status_code"]) == (201, 1000)
        url = f"{ptp.cpo_endpoints['payments']}/financial-advice-confirmations/FAC-0001"
        status, _, body = await ptp.call("GET", url)
        validate_envelope(body, "payments", "FinancialAdviceConfirmation", version=V230)
        assert body["data"]["total_costs"]["before_taxes"] == 3.5
        status, confirmations = await gw.admin("GET", "/payments/confirmations")
        assert status == 200
        [kept] = confirmations
        assert kept["session_id"] == session["id"] and kept["cdr_id"] == cdr["id"]
        assert kept["confirmation"]["eft_data"][0] == "TID:12345678"
        assert ptp.invalid == []
    finally:
        await ptp.stop()


async def test_pull_activate_and_deactivate_terminals(gateways: GatewayFactory) -> None:
    """The CPO as client of the PTP's Sender interface: every terminal by GET (pages
    followed by Link), an activation and a deactivation, each body valid."""
    gw = await gateways.start(clock=FakeClock())
    ptp = PaymentTerminalProvider()
    await ptp.start()
    try:
        partner_id = await _registered(gw, ptp)
        for n in range(5):
            ptp.terminals[f"T-{n}"] = {
                "terminal_id": f"T-{n}",
                "last_updated": f"2026-11-23T08:0{n}:00Z",
            }
        status, pulled = await gw.admin("POST", f"/payments/partners/{partner_id}/terminals/pull")
        assert (status, pulled) == (200, {"terminals": 5})
        assert len([r for r in ptp.taken("payments", "GET")]) == 3  # pages of 2
        _, listed = await gw.admin("GET", f"/payments/terminals?partner_id={partner_id}&limit=10")
        assert [t["terminal"]["terminal_id"] for t in listed] == [f"T-{n}" for n in range(5)]

        activation = {
            "reference": "OEM-SERIAL-42",
            "location_ids": ["LOC1"],
            "last_updated": "2026-11-23T09:00:00Z",
        }
        status, answer = await gw.admin(
            "POST", f"/payments/partners/{partner_id}/terminals/activate", activation
        )
        assert status == 200, answer
        assert ptp.activated == [activation]
        status, _ = await gw.admin("POST", f"/payments/terminals/{partner_id}/T-3/deactivate")
        assert status == 200 and ptp.deactivated == ["T-3"]
        status, _ = await gw.admin("POST", f"/payments/terminals/{partner_id}/T-9/deactivate")
        assert status == 502
        assert ptp.invalid == []
    finally:
        await ptp.stop()


async def test_only_a_ptp_uses_the_payments_module(gateways: GatewayFactory) -> None:
    """An eMSP (no payments Sender) gets status 2000 on the module; a PTP's objects are
    its own; a role PTP in 2.3.0 credentials is refused (not in the Role enum); the
    module is not in 2.2.1 nor 2.1.1 version details."""
    gw = await gateways.start(clock=FakeClock())
    emsp = VersionedEmsp(version=V230, party_id="EMS")
    ptp = PaymentTerminalProvider()
    await emsp.start()
    await ptp.start()
    try:
        await _registered(gw, emsp)
        url = f"{gw.url}/ocpi/2.3.0/payments/terminals"
        status, _, body = await emsp.call("POST", url, TERMINAL)
        assert body["status_code"] == 2000 and "payment terminal provider" in body["status_message"]
        partner_id = await _registered(gw, ptp)
        assert (await ptp.post_terminal(TERMINAL))[0] == 201
        status, _, body = await emsp.call("GET", f"{url}/{TID}")
        assert body["status_code"] == 2000
        # Not a PTP partner for the operator's calls either.
        emsp_id = next(p.id for p in gw.app[REGISTRY].all() if p.id != partner_id)
        status, _ = await gw.admin("POST", f"/payments/partners/{emsp_id}/terminals/pull")
        assert status == 409
        for version in ("2.1.1", "2.2.1"):
            _, _, details = await ptp.call("GET", f"{gw.url}/ocpi/{version}")
            assert "payments" not in {e["identifier"] for e in details["data"]["endpoints"]}
        _, partner = await gw.admin("POST", "/partners", {"name": "strict"})
        credentials = ptp.credentials("other-token") | {
            "roles": [dict(ptp.credentials("x")["roles"][0], role="PTP")]
        }
        status, _, body = await ptp.call(
            "POST", f"{gw.url}/ocpi/2.3.0/credentials", credentials, token=partner["token_a"]
        )
        assert body["status_code"] == 2001 and "role" in body["status_message"]
    finally:
        await emsp.stop()
        await ptp.stop()


async def test_tariffs_carry_the_preauthorize_amount_in_2_3_0(gateways: GatewayFactory) -> None:
    """The amount a terminal reserves, set per tariff by the operator, is in the 2.3.0
    tariffs the PTP pulls (valid against the OpenAPI), until it is removed."""
    gw = await gateways.start(clock=FakeClock())
    ptp = PaymentTerminalProvider()
    await ptp.start()
    try:
        await _registered(gw, ptp)
        await _catalog(gw)
        tariffs_url = ptp.cpo_endpoints["tariffs"]
        [tariff] = await ptp.get_all(tariffs_url)
        assert "preauthorize_amount" not in tariff
        status, _ = await gw.admin("PUT", "/payments/tariffs/NOPE", {"preauthorize_amount": 50})
        assert status == 404
        status, body = await gw.admin(
            "PUT", "/payments/tariffs/AC-STD", {"preauthorize_amount": "50.00"}
        )
        assert status == 200 and Decimal(str(body["preauthorize_amount"])) == Decimal(50)
        assert (await gw.admin("GET", "/payments/tariffs"))[1][0]["tariff_id"] == "AC-STD"
        status, headers, body = await ptp.call("GET", tariffs_url)
        validate_envelope(body, "tariffs", "Tariff", many=True, version=V230)
        assert body["data"][0]["preauthorize_amount"] == 50
        assert headers["X-Total-Count"] == "1"
        assert (await gw.admin("DELETE", "/payments/tariffs/AC-STD"))[0] == 204
        assert (await gw.admin("DELETE", "/payments/tariffs/AC-STD"))[0] == 404
        [tariff] = await ptp.get_all(tariffs_url)
        assert "preauthorize_amount" not in tariff
    finally:
        await ptp.stop()
