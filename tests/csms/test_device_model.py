"""The 2.0.1/2.1 device model end to end: a charger (the ``ocpp`` library's charge point
over a real WebSocket) that holds a small device model answers GetBaseReport and
GetReport with NotifyReport in several parts, applies SetVariables, takes monitors and
sends NotifyEvent; the admin API shows and searches what the gateway stored, on both
storage backends."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from ocpp.routing import after, on
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from tests.conftest import Gateway
from tests.sim import Charger201, WsAdapter, boot

NOW = "2026-11-23T12:00:00Z"


def _entry(
    component: str,
    variable: str,
    attributes: list[dict[str, Any]],
    *,
    evse: dict[str, int] | None = None,
    data_type: str = "integer",
    unit: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    comp: dict[str, Any] = {"name": component}
    if evse is not None:
        comp["evse"] = evse
    var: dict[str, Any] = {"name": variable}
    if instance is not None:
        var["instance"] = instance
    chars: dict[str, Any] = {"dataType": data_type, "supportsMonitoring": True}
    if unit is not None:
        chars["unit"] = unit
    if data_type == "integer":
        chars |= {"minLimit": 0, "maxLimit": 86400}
    return {
        "component": comp,
        "variable": var,
        "variableAttribute": attributes,
        "variableCharacteristics": chars,
    }


def _held_model() -> list[dict[str, Any]]:
    rw = {"mutability": "ReadWrite", "persistent": True, "constant": False}
    ro = {"mutability": "ReadOnly", "persistent": True, "constant": True}
    return [
        _entry(
            "OCPPCommCtrlr",
            "HeartbeatInterval",
            [{"type": "Actual", "value": "300", **rw}, {"type": "MinSet", "value": "10", **ro}],
            unit="s",
        ),
        _entry("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", [{"value": "3", **rw}]),
        _entry("SecurityCtrlr", "SecurityProfile", [{"value": "1", **rw}]),
        _entry(
            "ChargingStation",
            "Model",
            [{"value": "Acme S1", **ro}],
            data_type="string",
        ),
        _entry(
            "EVSE",
            "Power",
            [{"type": "MaxSet", "value": "22000", **ro}],
            evse={"id": 1},
            data_type="decimal",
            unit="W",
        ),
        _entry(
            "EVSE",
            "Power",
            [{"type": "MaxSet", "value": "11000", **ro}],
            evse={"id": 2},
            data_type="decimal",
            unit="W",
        ),
        _entry(
            "Connector",
            "ConnectorType",
            [{"value": "cType2", **ro}],
            evse={"id": 1, "connectorId": 1},
            data_type="string",
        ),
        _entry(
            "TariffCostCtrlr",
            "Enabled",
            [{"value": "false", **rw}],
            data_type="boolean",
            instance="Cost",
        ),
    ]


# Variables whose new value takes effect at the next boot (B05.FR.08: RebootRequired).
_REBOOT = {"SecurityProfile"}


class DeviceModelCharger(Charger201):
    """A 2.0.1 charger that holds a device model (``model``: NotifyReport reportData
    entries) and reports it ``chunk`` entries per NotifyReport."""

    chunk = 3

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn)
        self.model = _held_model()
        self.monitors: dict[int, dict[str, Any]] = {}
        self.monitoring: dict[str, Any] = {}
        self._next_monitor = 1

    def _find(self, component: dict[str, Any], variable: dict[str, Any]) -> dict[str, Any] | None:
        for entry in self.model:
            c, v = entry["component"], entry["variable"]
            if (
                c["name"] == component["name"]
                and c.get("evse", {}).get("id") == (component.get("evse") or {}).get("id")
                and v["name"] == variable["name"]
                and v.get("instance") == variable.get("instance")
            ):
                return entry
        return None

    def _report(self, request_id: int, entries: list[dict[str, Any]]) -> None:
        parts = [entries[i : i + self.chunk] for i in range(0, len(entries), self.chunk)]

        async def send() -> None:
            for seq, part in enumerate(parts):
                await self.call(
                    call201.NotifyReport(
                        request_id=request_id,
                        generated_at=NOW,
                        seq_no=seq,
                        tbc=seq < len(parts) - 1,
                        report_data=part,
                    )
                )

        self._spawn(send())

    @on("GetBaseReport")
    def on_get_base_report(self, **kwargs: Any) -> Any:
        self.received.append(("GetBaseReport", kwargs))
        if kwargs["report_base"] == "SummaryInventory":
            return result201.GetBaseReport(status="NotSupported")
        return result201.GetBaseReport(status="Accepted")

    @after("GetBaseReport")
    def after_get_base_report(self, **kwargs: Any) -> None:
        if kwargs["report_base"] == "FullInventory":
            self._report(kwargs["request_id"], self.model)
        elif kwargs["report_base"] == "ConfigurationInventory":
            writable = [
                e
                for e in self.model
                if any(a.get("mutability") == "ReadWrite" for a in e["variableAttribute"])
            ]
            self._report(kwargs["request_id"], writable)

    def _selected(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        if kwargs.get("component_criteria"):
            return []  # no component of this charger is Active/Problem/...
        wanted = kwargs.get("component_variable") or []
        return [
            e
            for e in self.model
            if any(
                w["component"]["name"] == e["component"]["name"]
                and ("variable" not in w or w["variable"]["name"] == e["variable"]["name"])
                for w in wanted
            )
        ]

    @on("GetReport")
    def on_get_report(self, **kwargs: Any) -> Any:
        self.received.append(("GetReport", kwargs))
        status = "Accepted" if self._selected(kwargs) else "EmptyResultSet"
        return result201.GetReport(status=status)

    @after("GetReport")
    def after_get_report(self, **kwargs: Any) -> None:
        selected = self._selected(kwargs)
        if selected:
            self._report(kwargs["request_id"], selected)

    @on("SetVariables")
    def on_set_variables(self, **kwargs: Any) -> Any:
        self.received.append(("SetVariables", kwargs))
        results = []
        for data in kwargs["set_variable_data"]:
            attribute_type = data.get("attribute_type") or "Actual"
            entry = self._find(data["component"], data["variable"])
            attribute = None
            if entry is not None:
                attribute = next(
                    (
                        a
                        for a in entry["variableAttribute"]
                        if a.get("type", "Actual") == attribute_type
                    ),
                    None,
                )
            if entry is None:
                status = "UnknownVariable"
            elif attribute is None or attribute.get("mutability") == "ReadOnly":
                status = "Rejected"
            elif data["variable"]["name"] in _REBOOT:
                status = "RebootRequired"
            else:
                attribute["value"] = data["attribute_value"]
                status = "Accepted"
            results.append(
                {
                    "attributeType": attribute_type,
                    "attributeStatus": status,
                    "component": data["component"],
                    "variable": data["variable"],
                }
            )
        return result201.SetVariables(set_variable_result=results)

    @on("GetVariables")
    def on_get_variables(self, **kwargs: Any) -> Any:
        self.received.append(("GetVariables", kwargs))
        results = []
        for data in kwargs["get_variable_data"]:
            entry = self._find(data["component"], data["variable"])
            result: dict[str, Any] = {
                "component": data["component"],
                "variable": data["variable"],
                "attributeStatus": "Accepted" if entry else "UnknownVariable",
            }
            if entry is not None:
                result["attributeValue"] = entry["variableAttribute"][0]["value"]
            results.append(result)
        return result201.GetVariables(get_variable_result=results)

    @on("SetVariableMonitoring")
    def on_set_variable_monitoring(self, **kwargs: Any) -> Any:
        self.received.append(("SetVariableMonitoring", kwargs))
        results = []
        for data in kwargs["set_monitoring_data"]:
            known = self._find(data["component"], data["variable"]) is not None
            result: dict[str, Any] = {
                "status": "Accepted" if known else "UnknownVariable",
                "type": data["type"],
                "severity": data["severity"],
                "component": data["component"],
                "variable": data["variable"],
            }
            if known:
                monitor_id = data.get("id") or self._next_monitor
                self._next_monitor = max(self._next_monitor, monitor_id) + 1
                self.monitors[monitor_id] = data
                result["id"] = monitor_id
            results.append(result)
        return result201.SetVariableMonitoring(set_monitoring_result=results)

    @on("ClearVariableMonitoring")
    def on_clear_variable_monitoring(self, **kwargs: Any) -> Any:
        self.received.append(("ClearVariableMonitoring", kwargs))
        results = [
            {"id": i, "status": "Accepted" if self.monitors.pop(i, None) else "NotFound"}
            for i in kwargs["id"]
        ]
        return result201.ClearVariableMonitoring(clear_monitoring_result=results)

    @on("SetMonitoringBase")
    def on_set_monitoring_base(self, **kwargs: Any) -> Any:
        self.monitoring["base"] = kwargs["monitoring_base"]
        return result201.SetMonitoringBase(status="Accepted")

    @on("SetMonitoringLevel")
    def on_set_monitoring_level(self, **kwargs: Any) -> Any:
        self.monitoring["level"] = kwargs["severity"]
        return result201.SetMonitoringLevel(status="Accepted")

    async def event(self, event_id: int, **fields: Any) -> None:
        data = {
            "eventId": event_id,
            "timestamp": NOW,
            "trigger": "Alerting",
            "actualValue": "81",
            "eventNotificationType": "CustomMonitor",
            "component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": "Power"},
            "variableMonitoringId": 1,
        } | fields  # severity: 2.1 only (2.0.1 EventDataType has none)
        await self.call(call201.NotifyEvent(generated_at=NOW, seq_no=0, event_data=[data]))


class DeviceModelCharger21(DeviceModelCharger):
    """The same charger on OCPP 2.1 (whose device model messages 2.0.1's are)."""

    _call = call21
    _call_result = result21
    _ocpp_version = "2.1"


@contextlib.asynccontextmanager
async def connect(gw: Gateway, cp_id: str, version: str) -> AsyncIterator[DeviceModelCharger]:
    cls = DeviceModelCharger21 if version == "2.1" else DeviceModelCharger
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{gw.ws_url}/ocpp/{cp_id}", protocols=(f"ocpp{version}",))
        cp = cls(cp_id, WsAdapter(ws))
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            await ws.close()


async def _register(gw: Gateway, cp_id: str) -> None:
    evses = [{"ocpp_id": i, "evse_uid": f"{cp_id}-{i}"} for i in (1, 2)]
    status, body = await gw.admin("PUT", f"/chargers/{cp_id}", {"evses": evses})
    assert status == 201, body


async def _complete(gw: Gateway, cp_id: str, request_id: int) -> dict[str, Any]:
    """The report's state once every part came (or fail after a few seconds)."""
    for _ in range(250):
        status, body = await gw.admin("GET", f"/chargers/{cp_id}/device-model?limit=1")
        assert status == 200, body
        states = [r for r in body["reports"] if r["request_id"] == request_id]
        if states and states[0]["complete"]:
            found: dict[str, Any] = states[0]
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"report {request_id} not complete: {body['reports']}")


def _attributes(entries: list[dict[str, Any]]) -> int:
    return sum(len(e["variableAttribute"]) for e in entries)


async def _model(gw: Gateway, cp_id: str, query: str = "") -> dict[str, Any]:
    status, body = await gw.admin("GET", f"/chargers/{cp_id}/device-model{query}")
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def test_base_report_search_set_variables(gateway: Gateway) -> None:
    gw, cp_id = gateway, "DM-1"
    await _register(gw, cp_id)
    async with connect(gw, cp_id, "2.0.1") as cp:
        await boot(cp, "2.0.1")
        status, answer = await gw.admin(
            "POST", f"/chargers/{cp_id}/device-model/report", {"kind": "base"}
        )
        assert status == 200, answer
        assert answer["status"] == "Accepted"
        request_id = answer["request_id"]
        assert cp.received[-1] == (
            "GetBaseReport",
            {"request_id": request_id, "report_base": "FullInventory"},
        )
        state = await _complete(gw, cp_id, request_id)
        parts = math.ceil(len(cp.model) / cp.chunk)
        assert parts > 1
        assert state["parts"] == parts and state["last_seq_no"] == parts - 1
        assert (state["kind"], state["answer"], state["missing"]) == (
            "FullInventory",
            "Accepted",
            [],
        )
        assert state["variables"] == _attributes(cp.model)

        everything = await _model(gw, cp_id)
        assert everything["total"] == _attributes(cp.model)
        heartbeat = [v for v in everything["variables"] if v["variable"] == "HeartbeatInterval"]
        assert [(v["attribute_type"], v["value"], v["mutability"]) for v in heartbeat] == [
            ("Actual", "300", "ReadWrite"),
            ("MinSet", "10", "ReadOnly"),
        ]
        assert heartbeat[0]["characteristics"] == {
            "data_type": "integer",
            "supports_monitoring": True,
            "unit": "s",
            "min_limit": "0",
            "max_limit": "86400",
            "values_list": None,
        }
        # Searches: by component and EVSE, by a part of a name or value, paged.
        evse = await _model(gw, cp_id, "?component=EVSE&evse_id=2")
        assert [(v["variable"], v["value"]) for v in evse["variables"]] == [("Power", "11000")]
        assert (await _model(gw, cp_id, "?evse_id=1"))["total"] == 2  # EVSE and connector
        found = await _model(gw, cp_id, "?q=ctype")
        assert [(v["component"], v["connector_id"]) for v in found["variables"]] == [
            ("Connector", 1)
        ]
        assert (await _model(gw, cp_id, "?q=COST"))["variables"][0]["variable_instance"] == "Cost"
        page = await _model(gw, cp_id, "?limit=2&offset=3")
        assert page["total"] == everything["total"]
        assert page["variables"] == everything["variables"][3:5]

        # SetVariables through the existing command: the answers update the stored model.
        status, answer = await gw.admin(
            "POST",
            f"/chargers/{cp_id}/commands/set-variables",
            {
                "variables": [
                    {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "120"},
                    {"component": "SecurityCtrlr", "variable": "SecurityProfile", "value": "2"},
                    {"component": "ChargingStation", "variable": "Model", "value": "X"},
                    {"component": "Nope", "variable": "Nothing", "value": "1"},
                ]
            },
        )
        assert status == 200, answer
        statuses = [r["attributeStatus"] for r in answer["data"]["setVariableResult"]]
        assert statuses == ["Accepted", "RebootRequired", "Rejected", "UnknownVariable"]
        by_name = {
            v["variable"]: v
            for v in (await _model(gw, cp_id, "?limit=1000"))["variables"]
            if v["attribute_type"] == "Actual"
        }
        assert (by_name["HeartbeatInterval"]["value"], by_name["HeartbeatInterval"]["source"]) == (
            "120",
            "set",
        )
        assert not by_name["HeartbeatInterval"]["reboot_required"]
        assert by_name["HeartbeatInterval"]["characteristics"]["unit"] == "s"  # kept
        profile = by_name["SecurityProfile"]
        assert (profile["value"], profile["reboot_required"]) == ("2", True)
        assert by_name["Model"]["value"] == "Acme S1"  # rejected: unchanged
        assert "Nothing" not in by_name
        # The search finds the new value.
        assert (await _model(gw, cp_id, "?component=OCPPCommCtrlr&q=120"))["total"] == 1

        # A custom report of one component; one that matches nothing.
        status, answer = await gw.admin(
            "POST",
            f"/chargers/{cp_id}/device-model/report",
            {"kind": "custom", "component_variables": [{"component": "OCPPCommCtrlr"}]},
        )
        assert (status, answer["status"]) == (200, "Accepted")
        custom = await _complete(gw, cp_id, answer["request_id"])
        assert custom["kind"] == "custom" and custom["variables"] == 3
        sent = cp.received[-1][1]
        assert sent["component_variable"] == [{"component": {"name": "OCPPCommCtrlr"}}]
        status, answer = await gw.admin(
            "POST",
            f"/chargers/{cp_id}/device-model/report",
            {"kind": "custom", "component_criteria": ["Problem"]},
        )
        assert (status, answer["status"]) == (200, "EmptyResultSet")
        status, answer = await gw.admin(
            "POST",
            f"/chargers/{cp_id}/device-model/report",
            {"kind": "base", "report_base": "SummaryInventory"},
        )
        assert (status, answer["status"]) == (200, "NotSupported")
        states = {r["request_id"]: r for r in (await _model(gw, cp_id))["reports"]}
        assert states[answer["request_id"]]["answer"] == "NotSupported"
        assert not states[answer["request_id"]]["complete"]

    # Removing the charger forgets its model.
    status, _ = await gw.admin("DELETE", f"/chargers/{cp_id}")
    assert status == 204
    await _register(gw, cp_id)
    assert (await _model(gw, cp_id))["total"] == 0


async def test_monitors_and_alerts(gateway: Gateway) -> None:
    gw, cp_id = gateway, "DM-2"
    await _register(gw, cp_id)
    async with connect(gw, cp_id, "2.0.1") as cp:
        await boot(cp, "2.0.1")
        status, answer = await gw.admin(
            "POST",
            f"/chargers/{cp_id}/monitors",
            {
                "monitors": [
                    {
                        "component": "EVSE",
                        "evse_id": 1,
                        "variable": "Power",
                        "type": "UpperThreshold",
                        "value": 20000,
                        "severity": 2,
                    },
                    {
                        "component": "OCPPCommCtrlr",
                        "variable": "HeartbeatInterval",
                        "type": "Periodic",
                        "value": "3600",
                        "severity": 8,
                    },
                ]
            },
        )
        assert status == 200, answer
        results = answer["data"]["setMonitoringResult"]
        assert [(r["status"], r["id"]) for r in results] == [("Accepted", 1), ("Accepted", 2)]
        assert cp.monitors[1]["component"] == {"name": "EVSE", "evse": {"id": 1}}
        assert (cp.monitors[1]["value"], cp.monitors[2]["value"]) == (20000, 3600)
        status, answer = await gw.admin(
            "POST", f"/chargers/{cp_id}/monitors/clear", {"ids": [2, 9]}
        )
        assert status == 200, answer
        assert [r["status"] for r in answer["data"]["clearMonitoringResult"]] == [
            "Accepted",
            "NotFound",
        ]
        assert set(cp.monitors) == {1}
        for path, body in (
            ("monitoring-base", {"base": "HardWiredOnly"}),
            ("monitoring-level", {"severity": 4}),
        ):
            status, answer = await gw.admin("POST", f"/chargers/{cp_id}/{path}", body)
            assert (status, answer["status"]) == (200, "Accepted")
        assert cp.monitoring == {"base": "HardWiredOnly", "level": 4}

        # Alerts: raised, a value report, then the clearing of the first.
        await cp.event(1, techCode="P-HIGH", techInfo="over the threshold")
        await cp.event(2, trigger="Delta", actualValue="19000")
        await cp.event(3, component={"name": "Controller"}, variable={"name": "Fan"})
        status, alerts = await gw.admin("GET", f"/chargers/{cp_id}/alerts?active=true")
        assert status == 200, alerts
        assert [(a["event_id"], a["active"]) for a in alerts] == [(3, True), (1, True)]
        assert alerts[1]["tech_code"] == "P-HIGH" and alerts[1]["evse_id"] == 1
        await cp.event(4, cleared=True, actualValue="15000")
        status, alerts = await gw.admin("GET", f"/chargers/{cp_id}/alerts?active=true")
        assert [a["event_id"] for a in alerts] == [3]
        status, alerts = await gw.admin("GET", f"/chargers/{cp_id}/alerts")
        assert [(a["event_id"], a["active"], a["cleared"]) for a in alerts] == [
            (4, False, True),
            (3, True, False),
            (2, False, False),
            (1, False, False),
        ]
        assert alerts[3]["cleared_at"] is not None
        status, page = await gw.admin(
            "GET", f"/chargers/{cp_id}/alerts?active=false&limit=1&offset=1"
        )
        assert [a["event_id"] for a in page] == [2]

    # Counted in the metrics by trigger and severity (no charger id).
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    # 2.0.1 events carry no severity (2.1 ones do: see the 2.1 test).
    assert 'ocpigw_device_events_received_total{severity="none",trigger="Alerting"} 3.0' in text
    assert 'ocpigw_device_events_received_total{severity="none",trigger="Delta"} 1.0' in text
    assert "DM-2" not in text


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_alerts_kept_per_charger_is_a_setting(gateways: Any) -> None:
    gw = await gateways.start(device_alerts_kept=3)
    await _register(gw, "DM-3")
    async with connect(gw, "DM-3", "2.0.1") as cp:
        await boot(cp, "2.0.1")
        for i in range(1, 6):
            await cp.event(i)
    status, alerts = await gw.admin("GET", "/chargers/DM-3/alerts")
    assert status == 200 and [a["event_id"] for a in alerts] == [5, 4, 3]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_same_on_ocpp_21(gateways: Any) -> None:
    gw = await gateways.start()
    await _register(gw, "DM-21")
    async with connect(gw, "DM-21", "2.1") as cp:
        await boot(cp, "2.1")
        status, answer = await gw.admin(
            "POST",
            "/chargers/DM-21/device-model/report",
            {"kind": "base", "report_base": "ConfigurationInventory"},
        )
        assert (status, answer["status"]) == (200, "Accepted"), answer
        state = await _complete(gw, "DM-21", answer["request_id"])
        writable = [
            e
            for e in cp.model
            if any(a.get("mutability") == "ReadWrite" for a in e["variableAttribute"])
        ]
        assert state["variables"] == _attributes(writable)
        status, answer = await gw.admin(
            "POST",
            "/chargers/DM-21/monitors",
            {
                "monitors": [
                    {
                        "component": "EVSE",
                        "evse_id": 1,
                        "variable": "Power",
                        "type": "Delta",
                        "value": 500,
                        "severity": 6,
                    }
                ]
            },
        )
        assert (status, answer["data"]["setMonitoringResult"][0]["status"]) == (200, "Accepted")
        await cp.event(7, trigger="Delta", severity=6)
        await cp.event(8, severity=1)
        _, alerts = await gw.admin("GET", "/chargers/DM-21/alerts")
        assert [(a["event_id"], a["trigger"], a["severity"], a["active"]) for a in alerts] == [
            (8, "Alerting", 1, True),
            (7, "Delta", 6, False),
        ]
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/metrics") as resp:
        text = await resp.text()
    assert 'ocpigw_device_events_received_total{severity="6",trigger="Delta"} 1.0' in text


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bad_admin_input_names_the_field(gateways: Any) -> None:
    gw = await gateways.start()
    await _register(gw, "DM-4")
    cases: list[tuple[str, str, Any, int, str | None]] = [
        ("GET", "/chargers/DM-4/device-model?limit=0", None, 400, "limit"),
        ("GET", "/chargers/DM-4/device-model?evse_id=-1", None, 400, "evse_id"),
        ("GET", "/chargers/DM-4/device-model?color=red", None, 400, "color"),
        ("GET", "/chargers/DM-4/alerts?active=maybe", None, 400, "active"),
        ("POST", "/chargers/DM-4/device-model/report", {"kind": "weird"}, 422, "kind"),
        ("POST", "/chargers/DM-4/device-model/report", {"kind": "custom"}, 422, None),
        (
            "POST",
            "/chargers/DM-4/device-model/report",
            {"kind": "custom", "component_variables": [{"component": ""}]},
            422,
            "component_variables[0].component",
        ),
        (
            "POST",
            "/chargers/DM-4/monitors",
            {
                "monitors": [
                    {
                        "component": "EVSE",
                        "variable": "Power",
                        "type": "Delta",
                        "value": 1,
                        "severity": 10,
                    }
                ]
            },
            422,
            "monitors[0].severity",
        ),
        (
            "POST",
            "/chargers/DM-4/monitors",
            {
                "monitors": [
                    {
                        "component": "EVSE",
                        "variable": "Power",
                        "type": "Delta",
                        "value": "NaN",
                        "severity": 1,
                    }
                ]
            },
            422,
            "monitors[0].value",
        ),
        ("POST", "/chargers/DM-4/monitors/clear", {"ids": []}, 422, "ids"),
        ("POST", "/chargers/DM-4/monitoring-level", {"severity": -1}, 422, "severity"),
        ("POST", "/chargers/DM-4/monitoring-base", {"base": "Some"}, 422, "base"),
        ("GET", "/chargers/NOPE/device-model", None, 404, None),
        ("GET", "/chargers/NOPE/alerts", None, 404, None),
        # Registered, not connected.
        ("POST", "/chargers/DM-4/device-model/report", {"kind": "base"}, 409, None),
    ]
    for method, path, body, expected, field in cases:
        status, answer = await gw.admin(method, path, body)
        assert status == expected, (path, body, answer)
        assert "error" in answer
        if field is not None:
            assert answer.get("field") == field, (path, body, answer)
