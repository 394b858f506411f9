"""Simulated chargers: the ``ocpp`` library's ChargePoint over a real aiohttp WebSocket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call_result as result201


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header (aiohttp.BasicAuth is deprecated)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class WsAdapter:
    """What the library's ChargePoint needs of a connection: recv() and send()."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> str:
        msg = await self.ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        raise ConnectionError(f"websocket closed: {msg.type} {msg.data!r}")

    async def send(self, message: str) -> None:
        await self.ws.send_str(message)


class Charger16(CP16):
    """Answers the central system's commands the way a cooperative charger would."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.unlock_status = "Unlocked"

    @on("RemoteStartTransaction")
    def on_remote_start(self, **kwargs: Any) -> Any:
        self.received.append(("RemoteStartTransaction", kwargs))
        return result16.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    def on_remote_stop(self, **kwargs: Any) -> Any:
        self.received.append(("RemoteStopTransaction", kwargs))
        return result16.RemoteStopTransaction(status="Accepted")

    @on("UnlockConnector")
    def on_unlock(self, **kwargs: Any) -> Any:
        self.received.append(("UnlockConnector", kwargs))
        return result16.UnlockConnector(status=self.unlock_status)

    @on("Reset")
    def on_reset(self, **kwargs: Any) -> Any:
        self.received.append(("Reset", kwargs))
        return result16.Reset(status="Accepted")

    @on("GetConfiguration")
    def on_get_configuration(self, **kwargs: Any) -> Any:
        self.received.append(("GetConfiguration", kwargs))
        return result16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        )

    @on("ReserveNow")
    def on_reserve_now(self, **kwargs: Any) -> Any:
        self.received.append(("ReserveNow", kwargs))
        return result16.ReserveNow(status="Accepted")

    @on("CancelReservation")
    def on_cancel_reservation(self, **kwargs: Any) -> Any:
        self.received.append(("CancelReservation", kwargs))
        return result16.CancelReservation(status="Accepted")

    @on("ChangeConfiguration")
    def on_change_configuration(self, **kwargs: Any) -> Any:
        self.received.append(("ChangeConfiguration", kwargs))
        return result16.ChangeConfiguration(status="Accepted")

    @on("UpdateFirmware")
    def on_update_firmware(self, **kwargs: Any) -> Any:
        self.received.append(("UpdateFirmware", kwargs))
        return result16.UpdateFirmware()

    @on("GetDiagnostics")
    def on_get_diagnostics(self, **kwargs: Any) -> Any:
        self.received.append(("GetDiagnostics", kwargs))
        return result16.GetDiagnostics(file_name="diag.zip")


class Charger201(CP201):
    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []

    @on("ReserveNow")
    def on_reserve_now(self, **kwargs: Any) -> Any:
        self.received.append(("ReserveNow", kwargs))
        return result201.ReserveNow(status="Accepted")

    @on("UpdateFirmware")
    def on_update_firmware(self, **kwargs: Any) -> Any:
        self.received.append(("UpdateFirmware", kwargs))
        return result201.UpdateFirmware(status="Accepted")

    @on("GetLog")
    def on_get_log(self, **kwargs: Any) -> Any:
        self.received.append(("GetLog", kwargs))
        return result201.GetLog(status="Accepted", filename="charger.log")

    @on("RequestStartTransaction")
    def on_request_start(self, **kwargs: Any) -> Any:
        self.received.append(("RequestStartTransaction", kwargs))
        return result201.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    def on_request_stop(self, **kwargs: Any) -> Any:
        self.received.append(("RequestStopTransaction", kwargs))
        return result201.RequestStopTransaction(status="Accepted")

    @on("UnlockConnector")
    def on_unlock(self, **kwargs: Any) -> Any:
        self.received.append(("UnlockConnector", kwargs))
        return result201.UnlockConnector(status="Unlocked")

    @on("Reset")
    def on_reset(self, **kwargs: Any) -> Any:
        self.received.append(("Reset", kwargs))
        return result201.Reset(status="Accepted")

    @on("GetVariables")
    def on_get_variables(self, **kwargs: Any) -> Any:
        self.received.append(("GetVariables", kwargs))
        return result201.GetVariables(
            get_variable_result=[
                {
                    "attributeStatus": "Accepted",
                    "component": d["component"],
                    "variable": d["variable"],
                    "attributeValue": "300",
                }
                for d in kwargs["get_variable_data"]
            ]
        )


@contextlib.asynccontextmanager
async def connect(
    url: str,
    cp_id: str,
    version: str,
    *,
    headers: dict[str, str] | None = None,
    ssl: Any = True,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[Any]:
    """Connect a simulated charger and run its receive loop while the block runs."""
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(
            f"{url}/ocpp/{cp_id}",
            protocols=("ocpp2.0.1" if version == "2.0.1" else "ocpp1.6",),
            headers=headers,
            ssl=ssl,
            autoping=True,
        )
        adapter = WsAdapter(ws)
        cp: Any = (Charger201 if version == "2.0.1" else Charger16)(cp_id, adapter)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            await ws.close()
    finally:
        if own:
            await session.close()
