"""Local authorization lists (issue 13 point 3), ClearCache and DataTransfer: real 1.6 and
2.0.1 charge points of the ``ocpp`` library over real WebSockets against the real app, on
both storage backends, with a real eMSP pushing tokens.

The charge points below keep the list they receive as OCPP says a charger does (1.6
section 5.15 / 2.0.1 D01: Full replaces, Differential adds, updates or, without status
information, removes; a message beyond the per-message bound or a list beyond the maximum
is Failed; a version it was not told to expect is not checked), written from the texts and
not from the gateway's converters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from gateway.locallist.service import CLOCK_MARGIN
from tests.conftest import Gateway, GatewayFactory
from tests.roaming.emsp import EmspPlatform, token_header
from tests.sim import Charger16, Charger201, WsAdapter, boot, nothing_before_boot, until_connected


class ListCharger16(Charger16):
    """A 1.6 charger with the Local Auth List Management profile."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn)
        self.supported = True
        self.list_version = 0
        self.local_list: dict[str, dict[str, Any]] = {}
        self.max_length = 100
        self.per_message = 100
        self.mismatch_next = False
        self.sends: list[tuple[str, int, int, str]] = []  # (type, version, entries, answer)
        self.cache_cleared = 0

    @on("GetConfiguration")
    def on_get_configuration(self, **kwargs: Any) -> Any:
        if not self.supported:
            return result16.GetConfiguration(unknown_key=kwargs.get("key") or [])
        values = {
            "LocalAuthListMaxLength": str(self.max_length),
            "SendLocalListMaxLength": str(self.per_message),
        }
        return result16.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": True, "value": values[k]} for k in kwargs["key"]
            ]
        )

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **kwargs: Any) -> Any:
        return result16.GetLocalListVersion(
            list_version=self.list_version if self.supported else -1
        )

    @on("SendLocalList")
    def on_send_local_list(self, **kwargs: Any) -> Any:
        entries = kwargs.get("local_authorization_list") or []
        status = self._apply(kwargs["update_type"], kwargs["list_version"], entries)
        self.sends.append((kwargs["update_type"], kwargs["list_version"], len(entries), status))
        return result16.SendLocalList(status=status)

    def _apply(self, update_type: str, version: int, entries: list[dict[str, Any]]) -> str:
        if not self.supported:
            return "NotSupported"
        if self.mismatch_next:
            self.mismatch_next = False
            return "VersionMismatch"
        if len(entries) > self.per_message:
            return "Failed"
        new = {} if update_type == "Full" else dict(self.local_list)
        for entry in entries:
            if "id_tag_info" in entry:
                new[entry["id_tag"]] = entry["id_tag_info"]
            else:
                new.pop(entry["id_tag"], None)
        if len(new) > self.max_length:
            return "Failed"
        self.local_list, self.list_version = new, version
        return "Accepted"

    @on("ClearCache")
    def on_clear_cache(self, **kwargs: Any) -> Any:
        self.cache_cleared += 1
        return result16.ClearCache(status="Accepted")

    @on("DataTransfer")
    def on_data_transfer(self, **kwargs: Any) -> Any:
        if kwargs["vendor_id"] != "com.acme":
            return result16.DataTransfer(status="UnknownVendorId")
        return result16.DataTransfer(status="Accepted", data=f"echo:{kwargs.get('data')}")


class NoList16(ListCharger16):
    """A 1.6 charger without the Local Auth List Management profile."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn)
        self.supported = False


def holding(version: int, entries: dict[str, dict[str, Any]]) -> type[ListCharger16]:
    """A 1.6 charger that connects holding ``entries`` as list version ``version``."""

    class Holding(ListCharger16):
        def __init__(self, cp_id: str, conn: WsAdapter) -> None:
            super().__init__(cp_id, conn)
            self.list_version, self.local_list = version, dict(entries)

    return Holding


class ListCharger201(Charger201):
    """A 2.0.1 charger with a LocalAuthListCtrlr."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn)
        self.list_version = 0
        self.local_list: dict[str, dict[str, Any]] = {}
        self.items_per_message = 100
        self.sends: list[tuple[str, int, int, str]] = []
        # LocalAuthListCtrlr.Entries maxLimit, told in a report only (None: no report).
        self.entries_max: int | None = None
        self.reports_asked = 0

    @on("GetReport")
    def on_get_report(self, **kwargs: Any) -> Any:
        self.reports_asked += 1
        return result201.GetReport(
            status="Accepted" if self.entries_max is not None else "EmptyResultSet"
        )

    @after("GetReport")
    async def after_get_report(self, **kwargs: Any) -> None:
        if self.entries_max is None:
            return
        entries = {
            "component": {"name": "LocalAuthListCtrlr"},
            "variable": {"name": "Entries"},
            "variable_attribute": [{"type": "Actual", "value": str(len(self.local_list))}],
            "variable_characteristics": {
                "data_type": "integer",
                "max_limit": self.entries_max,
                "supports_monitoring": False,
            },
        }
        await self.call(
            call201.NotifyReport(
                request_id=kwargs["request_id"],
                generated_at="2026-12-03T09:00:00Z",
                seq_no=0,
                report_data=[entries],
            )
        )

    @on("GetVariables")
    def on_get_variables(self, **kwargs: Any) -> Any:
        values = {"Enabled": "true", "ItemsPerMessage": str(self.items_per_message)}
        values["BytesPerMessage"] = "60000"
        results = []
        for d in kwargs["get_variable_data"]:
            name = d["variable"]["name"]
            known = d["component"]["name"] == "LocalAuthListCtrlr" and name in values
            results.append(
                {
                    "attributeStatus": "Accepted" if known else "UnknownComponent",
                    "component": d["component"],
                    "variable": d["variable"],
                    **({"attributeValue": values[name]} if known else {}),
                }
            )
        return result201.GetVariables(get_variable_result=results)

    @on("GetLocalListVersion")
    def on_get_local_list_version(self, **kwargs: Any) -> Any:
        return result201.GetLocalListVersion(version_number=self.list_version)

    @on("SendLocalList")
    def on_send_local_list(self, **kwargs: Any) -> Any:
        entries = kwargs.get("local_authorization_list") or []
        status = "Accepted"
        if len(entries) > self.items_per_message:
            status = "Failed"
        else:
            new = {} if kwargs["update_type"] == "Full" else dict(self.local_list)
            for entry in entries:
                token = entry["id_token"]["id_token"]
                if entry.get("id_token_info"):
                    new[token] = {"type": entry["id_token"]["type"], **entry["id_token_info"]}
                else:
                    new.pop(token, None)  # D01: without idTokenInfo, removed
            self.local_list, self.list_version = new, kwargs["version_number"]
        self.sends.append((kwargs["update_type"], kwargs["version_number"], len(entries), status))
        return result201.SendLocalList(status=status)

    @on("ClearCache")
    def on_clear_cache(self, **kwargs: Any) -> Any:
        return result201.ClearCache(status="Rejected")

    @on("DataTransfer")
    def on_data_transfer(self, **kwargs: Any) -> Any:
        return result201.DataTransfer(status="Accepted", data={"got": kwargs.get("data")})


@contextlib.asynccontextmanager
async def connect_as(gw: Gateway, cp_id: str, cls: type[Any]) -> AsyncIterator[Any]:
    subprotocol = "ocpp1.6" if issubclass(cls, Charger16) else "ocpp2.0.1"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/{cp_id}", protocols=(subprotocol,))
        cp = cls(cp_id, WsAdapter(ws))
        task = asyncio.create_task(cp.start())
        try:
            await boot(cp, "1.6" if subprotocol == "ocpp1.6" else "2.0.1")
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            await ws.close()


async def eventually(check: Any, timeout: float = 8.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _start(gateways: GatewayFactory, **overrides: Any) -> Gateway:
    options: dict[str, Any] = {"local_list": True, "local_list_interval": 0.1}
    return await gateways.start(**(options | overrides))


async def _charger(gw: Gateway, cp_id: str, **config: Any) -> None:
    body = {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}], **config}
    status, answer = await gw.admin("PUT", f"/chargers/{cp_id}", body)
    assert status == 201, answer


async def _token(gw: Gateway, uid: str, **body: Any) -> None:
    status, answer = await gw.admin("PUT", f"/tokens/{uid}", {"valid": True, **body})
    assert status in (200, 201), answer


async def test_ocpp16_full_then_differential_then_mismatch(gateways: GatewayFactory) -> None:
    gw = await _start(gateways)
    await _charger(gw, "LL16")
    await _token(gw, "TAG-A")
    await _token(gw, "TAG-B", valid=False)
    await _token(gw, "TAG-C", expiry="2030-01-01T00:00:00Z", parent_id="GROUP-1")
    async with connect_as(gw, "LL16", ListCharger16) as cp:
        # The first connection: a full update with the tokens that may charge.
        await eventually(lambda: cp.list_version > 0)
        assert cp.sends[0][0] == "Full"
        assert cp.local_list == {
            "TAG-A": {"status": "Accepted"},
            "TAG-C": {
                "status": "Accepted",
                "expiry_date": "2030-01-01T00:00:00.000Z",
                "parent_id_tag": "GROUP-1",
            },
        }
        _, view = await gw.admin("GET", "/chargers/LL16/local-list")
        assert view["version_acked"] == cp.list_version == view["version_sent"]
        assert (view["entries"], view["last_result"], view["truncated"]) == (2, "Accepted", False)
        assert (view["charger_max_entries"], view["per_message"]) == (100, 100)
        first = cp.list_version

        # A new token, one blocked, one deleted: differential updates, version + 1 each.
        await _token(gw, "TAG-D")
        await eventually(lambda: "TAG-D" in cp.local_list)
        assert cp.sends[-1][:3] == ("Differential", first + 1, 1)
        await _token(gw, "TAG-A", valid=False)
        await eventually(lambda: cp.local_list["TAG-A"]["status"] == "Blocked")
        status, _ = await gw.admin("DELETE", "/tokens/TAG-C")
        assert status == 204
        await eventually(lambda: "TAG-C" not in cp.local_list)
        assert [s[0] for s in cp.sends[1:]] == ["Differential"] * 3
        # A token that was never on the list and may not charge is not sent.
        before = len(cp.sends)
        await _token(gw, "TAG-E", valid=False)
        await asyncio.sleep(0.5)
        assert len(cp.sends) == before
        _, view = await gw.admin("GET", "/chargers/LL16/local-list")
        assert view["version_acked"] == cp.list_version == first + 3
        assert view["entries"] == 2  # TAG-A (Blocked) and TAG-D

        # The charger answers VersionMismatch: a full update follows.
        cp.mismatch_next = True
        await _token(gw, "TAG-F")
        await eventually(lambda: "TAG-F" in cp.local_list and cp.sends[-1][0] == "Full")
        assert [s[3] for s in cp.sends[-2:]] == ["VersionMismatch", "Accepted"]
        assert set(cp.local_list) == {"TAG-D", "TAG-F"}  # a full list: usable tokens only
        kept = dict(cp.local_list)
        version = cp.list_version

    # It comes back having lost its list (version 0): a full update at the boot.
    async with connect_as(gw, "LL16", ListCharger16) as cp:
        await eventually(lambda: cp.list_version > 0)
        assert cp.sends[0][0] == "Full"
        assert cp.local_list == kept
        assert cp.list_version > version
        version = cp.list_version
    # It comes back with the version it was last sent: it is asked, and sent nothing.
    async with connect_as(gw, "LL16", holding(version, kept)) as cp2:
        await asyncio.sleep(1.0)
        assert cp2.sends == []
        assert (cp2.list_version, cp2.local_list) == (version, kept)
        _, view = await gw.admin("GET", "/chargers/LL16/local-list")
        assert view["charger_version"] == view["version_acked"] == version


async def test_a_token_put_again_in_another_case_stays_one_entry(
    gateways: GatewayFactory,
) -> None:
    """OCPP compares id tokens case-insensitively: a token the operator puts again in
    another case is the entry the charger holds, updated, not a second one; deleted in a
    third case, it is removed in the spelling the charger was last sent."""
    gw = await _start(gateways)
    await _charger(gw, "LLRESP")
    await _token(gw, "RESP-1")
    await _token(gw, "KEEP-1")
    async with connect_as(gw, "LLRESP", ListCharger16) as cp:
        await eventually(lambda: cp.list_version > 0)
        first = cp.list_version
        await _token(gw, "resp-1", parent_id="G")
        await eventually(lambda: cp.list_version == first + 1)
        assert cp.sends[-1][:3] == ("Differential", first + 1, 1)
        assert cp.local_list["resp-1"] == {"status": "Accepted", "parent_id_tag": "G"}
        _, view = await gw.admin("GET", "/chargers/LLRESP/local-list")
        assert view["entries"] == 2
        status, _ = await gw.admin("DELETE", "/tokens/Resp-1")
        assert status == 204
        await eventually(lambda: "resp-1" not in cp.local_list)
        assert cp.sends[-1][:3] == ("Differential", first + 2, 1)
        assert "KEEP-1" in cp.local_list
        _, view = await gw.admin("GET", "/chargers/LLRESP/local-list")
        assert view["entries"] == 1


async def test_ocpp16_bounds_most_recently_used_first(gateways: GatewayFactory) -> None:
    gw = await _start(gateways)
    await _charger(gw, "LLMAX")
    for uid in ("T1", "T2", "T3", "T4", "T5"):
        await _token(gw, uid)
    # T4 charged last: it goes first once the list cannot hold every token.
    async with connect_as(gw, "LLMAX", NoList16) as cp:
        start = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="T4", meter_start=0, timestamp="2026-11-23T10:00:00Z"
            )
        )
        assert start.id_tag_info["status"] == "Accepted"
    status, _ = await gw.admin("POST", "/chargers/LLMAX/local-list/sync")
    assert status == 409  # not connected
    # A charger that holds 3 tokens, 2 per message: Full then Differential.
    cp_max = 3

    class Small(ListCharger16):
        def __init__(self, cp_id: str, conn: WsAdapter) -> None:
            super().__init__(cp_id, conn)
            self.max_length, self.per_message = cp_max, 2

    async with connect_as(gw, "LLMAX", Small) as cp:
        await eventually(lambda: len(cp.sends) == 2 and cp.sends[-1][3] == "Accepted")
        assert [(s[0], s[2]) for s in cp.sends] == [("Full", 2), ("Differential", 1)]
        assert cp.sends[1][1] == cp.sends[0][1] + 1
        assert set(cp.local_list) == {"T4", "T1", "T2"}
        _, view = await gw.admin("GET", "/chargers/LLMAX/local-list")
        assert (view["entries"], view["truncated"], view["left_out_count"]) == (3, True, 2)
        assert sorted(view["left_out"]) == ["T3", "T5"]
        assert view["max_entries"] == cp_max

        # A full list takes no new token (it stays left out); a removal still goes.
        await _token(gw, "T0")
        # The token's change reaches the list asynchronously: wait until T0 was looked
        # at (and left out) before freeing a place, or it may take that place itself.
        deadline = asyncio.get_running_loop().time() + 8
        while "T0" not in (await gw.admin("GET", "/chargers/LLMAX/local-list"))[1]["left_out"]:
            assert asyncio.get_running_loop().time() < deadline, "T0 never looked at"
            await asyncio.sleep(0.05)
        status, _ = await gw.admin("DELETE", "/tokens/T1")
        await eventually(lambda: "T1" not in cp.local_list)
        # The place T1 left goes to a token waiting for one: T3 (T0 was looked at, and
        # left out, before the place was free).
        assert set(cp.local_list) == {"T4", "T2", "T3"}
        _, view = await gw.admin("GET", "/chargers/LLMAX/local-list")
        assert (sorted(view["left_out"]), view["left_out_count"]) == (["T0", "T5"], 2)

        # The operator's sync: a full update now, answered with the record.
        status, view = await gw.admin("POST", "/chargers/LLMAX/local-list/sync")
        assert status == 200, view
        assert [s[0] for s in cp.sends[-2:]] == ["Full", "Differential"]
        assert view["last_update"] == "Differential"  # its second message
        assert cp.local_list.keys() == {"T4", "T0", "T2"}
        assert view["version_acked"] == cp.list_version
        assert view["entries"] == 3


async def test_not_supported_and_per_charger_setting(gateways: GatewayFactory) -> None:
    gw = await _start(gateways, local_list=False)
    await _charger(gw, "LLON", local_list=True)
    await _charger(gw, "LLOFF")
    await _charger(gw, "LLNS", local_list=True)
    await _token(gw, "TAG-1")
    async with (
        connect_as(gw, "LLON", ListCharger16) as on_,
        connect_as(gw, "LLOFF", ListCharger16) as off,
    ):
        await eventually(lambda: "TAG-1" in on_.local_list)
        await asyncio.sleep(0.3)
        assert off.sends == []
        _, view = await gw.admin("GET", "/chargers/LLOFF/local-list")
        assert (view["enabled"], view["version_sent"]) == (False, 0)
        status, answer = await gw.admin("POST", "/chargers/LLOFF/local-list/sync")
        assert status == 409 and "off" in answer["error"]
        _, charger = await gw.admin("GET", "/chargers/LLON")
        assert charger["local_list"] is True
    async with connect_as(gw, "LLNS", NoList16) as ns:
        # Asked at its boot: GetConfiguration knows none of the keys; recorded.
        async def result() -> Any:
            return (await gw.admin("GET", "/chargers/LLNS/local-list"))[1]["last_result"]

        deadline = asyncio.get_running_loop().time() + 8
        while await result() != "NotSupported":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await _token(gw, "TAG-2")
        await asyncio.sleep(0.5)
        assert ns.sends == []  # left alone until it connects again


class TwoPerMessage201(ListCharger201):
    """Two entries per SendLocalList from the start: the gateway may read ItemsPerMessage
    while the boot is being answered, before a test could change it."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn)
        self.items_per_message = 2


async def _ocpi(gw: Gateway, emsp: EmspPlatform, method: str, path: str, body: Any) -> int:
    assert emsp.cpo_token is not None
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            f"{gw.url}/ocpi/2.2.1/tokens{path}",
            json=body,
            headers=token_header(emsp.cpo_token),
        ) as r,
    ):
        return r.status


async def _register_emsp(gw: Gateway, emsp: EmspPlatform) -> None:
    """The eMSP as a partner of the gateway, through the real credentials handshake."""
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP"})
    status, _ = await gw.admin(
        "POST",
        f"/partners/{partner['id']}/register",
        {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
    )
    assert status == 200


async def test_ocpp201_list_with_roaming_tokens(
    gateways: GatewayFactory, emsp: EmspPlatform
) -> None:
    gw = await _start(gateways)
    await _register_emsp(gw, emsp)
    await _charger(gw, "LL201")
    await _token(gw, "LOCAL-1", parent_id="FLEET")
    await _token(gw, "LOCAL-2")
    await _token(gw, "LOCAL-3")
    assert (
        await _ocpi(gw, emsp, "PUT", "/NL/EMS/EM-ALWAYS", emsp.token("EM-ALWAYS", "ALWAYS")) == 201
    )
    assert await _ocpi(gw, emsp, "PUT", "/NL/EMS/EM-NEVER", emsp.token("EM-NEVER", "NEVER")) == 201

    async with connect_as(gw, "LL201", TwoPerMessage201) as cp:
        await eventually(lambda: len(cp.local_list) == 4 and cp.sends[-1][3] == "Accepted")
        # Four tokens, two per message: Full, then Differential.
        assert [(s[0], s[2]) for s in cp.sends] == [("Full", 2), ("Differential", 2)]
        assert cp.local_list["LOCAL-1"] == {
            "type": "ISO14443",
            "status": "Accepted",
            "group_id_token": {"id_token": "FLEET", "type": "Central"},
        }
        assert cp.local_list["EM-ALWAYS"]["status"] == "Accepted"
        assert "EM-NEVER" not in cp.local_list  # the eMSP must be asked every time

        # The eMSP pushes a token it allows offline: a differential update brings it.
        token = emsp.token("EM-OFFLINE", "ALLOWED_OFFLINE")
        assert await _ocpi(gw, emsp, "PUT", "/NL/EMS/EM-OFFLINE", token) == 201
        await eventually(lambda: "EM-OFFLINE" in cp.local_list)
        assert cp.sends[-1][0] == "Differential"
        # And then blocks it; and turns another to NEVER: Blocked, and removed.
        patch = {"valid": False, "last_updated": "2026-11-23T12:00:00Z"}
        assert await _ocpi(gw, emsp, "PATCH", "/NL/EMS/EM-OFFLINE", patch) == 200
        await eventually(lambda: cp.local_list["EM-OFFLINE"]["status"] == "Blocked")
        never = emsp.token("EM-ALWAYS", "NEVER")
        assert await _ocpi(gw, emsp, "PUT", "/NL/EMS/EM-ALWAYS", never) == 200
        await eventually(lambda: "EM-ALWAYS" not in cp.local_list)
        _, view = await gw.admin("GET", "/chargers/LL201/local-list")
        assert view["version_acked"] == cp.list_version
        assert view["entries"] == len(cp.local_list) == 4


class _ShiftedClock:
    """The real time plus a shift the test moves forward."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


async def test_a_local_token_and_an_emsp_token_differing_in_case_are_one_entry(
    gateways: GatewayFactory, emsp: EmspPlatform
) -> None:
    """OCPP compares id tokens case-insensitively: an eMSP's ``case-1`` and the local
    ``CASE-1`` are one token to the charger, and the local one's entry is the one sent;
    once the local one is deleted, the eMSP's is, found by the local one's spelling."""
    clock = _ShiftedClock()
    gw = await gateways.start(clock=clock, local_list=True, local_list_interval=0.1)
    await _register_emsp(gw, emsp)
    await _charger(gw, "LLCASE")
    await _token(gw, "CASE-1", parent_id="FLEET")
    assert await _ocpi(gw, emsp, "PUT", "/NL/EMS/case-1", emsp.token("case-1", "ALWAYS")) == 201
    assert await _ocpi(gw, emsp, "PUT", "/NL/EMS/EM-2", emsp.token("EM-2", "ALWAYS")) == 201
    # Later than the change notes are read again after a sync (CLOCK_MARGIN): the eMSP's
    # note is not among those the deletion below brings.
    clock.shift = CLOCK_MARGIN * 2
    async with connect_as(gw, "LLCASE", ListCharger201) as cp:
        await eventually(lambda: len(cp.local_list) == 2 and cp.sends[-1][3] == "Accepted")
        assert sorted(cp.local_list) == ["CASE-1", "EM-2"]
        assert cp.local_list["CASE-1"]["group_id_token"] == {"id_token": "FLEET", "type": "Central"}
        status, _ = await gw.admin("DELETE", "/tokens/CASE-1")
        assert status == 204
        await eventually(lambda: "case-1" in cp.local_list)
        assert cp.local_list["case-1"] == {"type": "ISO14443", "status": "Accepted"}
        assert cp.sends[-1][:3] == ("Differential", cp.sends[0][1] + 1, 1)
        _, view = await gw.admin("GET", "/chargers/LLCASE/local-list")
        assert view["entries"] == 2


async def test_ocpp201_list_bounded_by_the_reported_maximum(gateways: GatewayFactory) -> None:
    """2.0.1 reports its list size only as LocalAuthListCtrlr.Entries' maxLimit in a
    report: the gateway asks for that report, and the list is bounded by it from then on."""
    gw = await _start(gateways)
    await _charger(gw, "LLREP")
    for uid in ("T-1", "T-2", "T-3", "T-4"):
        await _token(gw, uid)
    async with connect_as(gw, "LLREP", ListCharger201) as cp:
        cp.entries_max = 2
        await eventually(lambda: cp.reports_asked >= 1 and cp.sends)
        # Before the report came: bounded by the setting (1000).

        async def reported() -> bool:
            _, view = await gw.admin("GET", "/chargers/LLREP/local-list")
            return bool(view["charger_max_entries"] == 2)

        status, _ = await gw.admin("POST", "/chargers/LLREP/local-list/sync")
        assert status == 200
        deadline = asyncio.get_running_loop().time() + 8
        while not await reported():
            assert asyncio.get_running_loop().time() < deadline, "maxLimit not taken"
            await asyncio.sleep(0.1)
            await gw.admin("POST", "/chargers/LLREP/local-list/sync")
        await eventually(lambda: len(cp.local_list) == 2)
        _, view = await gw.admin("GET", "/chargers/LLREP/local-list")
        assert view["max_entries"] == 2 and view["entries"] == 2
        _, model = await gw.admin(
            "GET", "/chargers/LLREP/device-model?component=LocalAuthListCtrlr&variable=Entries"
        )
        assert model["total"] >= 1


async def test_clear_cache_and_data_transfer(gateways: GatewayFactory) -> None:
    gw = await _start(gateways, local_list=False)
    await _charger(gw, "DT16")
    await _charger(gw, "DT201")
    status, answer = await gw.admin("POST", "/chargers/DT16/clear-cache")
    assert status == 409, answer  # not connected
    async with (
        connect_as(gw, "DT16", ListCharger16) as cp16,
        connect_as(gw, "DT201", ListCharger201),
    ):
        status, answer = await gw.admin("POST", "/chargers/DT16/clear-cache")
        assert (status, answer["status"]) == (200, "Accepted")
        assert cp16.cache_cleared == 1
        status, answer = await gw.admin("POST", "/chargers/DT201/clear-cache")
        assert (status, answer["status"]) == (200, "Rejected")

        body = {"vendor_id": "com.acme", "message_id": "ping", "data": "hello"}
        status, answer = await gw.admin("POST", "/chargers/DT16/data-transfer", body)
        assert (status, answer) == (200, {"status": "Accepted", "data": "echo:hello"})
        status, answer = await gw.admin(
            "POST", "/chargers/DT16/data-transfer", {"vendor_id": "org.other"}
        )
        assert (status, answer["status"]) == (200, "UnknownVendorId")
        # 2.0.1 data is any JSON value; it comes back as the charger sent it.
        body = {"vendor_id": "com.acme", "data": {"n": [1, 2]}}
        status, answer = await gw.admin("POST", "/chargers/DT201/data-transfer", body)
        assert (status, answer) == (200, {"status": "Accepted", "data": {"got": {"n": [1, 2]}}})
        # Bad input is named.
        status, answer = await gw.admin("POST", "/chargers/DT16/data-transfer", {"data": "x"})
        assert (status, answer["field"]) == (422, "vendor_id")
        status, answer = await gw.admin("POST", "/chargers/NOPE/data-transfer", body)
        assert status == 404


async def test_a_token_change_leaves_a_charger_that_has_not_booted_alone(
    gateways: GatewayFactory,
) -> None:
    # A charger that has just connected sends its BootNotification first and may refuse
    # requests until it is answered: a token change meanwhile waits for its own check
    # (after its boot, or the settle time for a reconnect without one).
    gw = await _start(gateways)
    await _charger(gw, "LLWAIT")
    await _token(gw, "TAG-1")
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(f"{gw.ws_url}/ocpp/LLWAIT", protocols=("ocpp1.6",)) as ws,
    ):
        await until_connected(gw, "LLWAIT")
        await _token(gw, "TAG-2")  # the next round (every 0.1 s here) updates held chargers
        await nothing_before_boot(ws)
