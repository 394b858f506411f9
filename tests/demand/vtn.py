"""A real OpenADR 2.0b VTN on loopback (openleadr's server), for the VEN's tests: it
registers any VEN, hands out events, and records every opt answer and report."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from openleadr import OpenADRServer

VEN_ID = "VEN-GATEWAY"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Vtn:
    port: int = field(default_factory=_free_port)
    opts: list[tuple[str, str]] = field(default_factory=list)  # (event id, opt type)
    reports: list[Any] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    async def start(self) -> None:
        self.server = OpenADRServer(
            vtn_id="VTN-TEST",
            http_port=self.port,
            requested_poll_freq=timedelta(seconds=1),
            verify_message_signatures=False,
            show_server_cert_domain=False,
        )
        self.server.add_handler("on_create_party_registration", self._register)
        self.server.add_handler("on_register_report", self._register_report)
        await self.server.run_async()

    async def _register(self, info: dict[str, Any]) -> tuple[str, str]:
        self.registered.append(info["ven_name"])
        return VEN_ID, "REG-1"

    def _register_report(
        self,
        ven_id: str,
        resource_id: str,
        measurement: str,
        unit: str,
        scale: str,
        min_sampling_interval: timedelta,
        max_sampling_interval: timedelta,
    ) -> tuple[Any, timedelta]:
        # openleadr's compact form: asked for each offered report description; every
        # report the VEN then sends is recorded with its resource (the site).
        def record(data: list[tuple[Any, float]]) -> None:
            self.reports.extend((resource_id, value) for _, value in data)

        # At the rate the VEN offers (openleadr's VEN refuses any other).
        return record, min_sampling_interval

    def add_event(self, event_id: str, signal_name: str, signal_type: str, intervals: list[dict[str, Any]], **kwargs: Any) -> str:
        return str(
            self.server.add_event(
                ven_id=VEN_ID,
                signal_name=signal_name,
                signal_type=signal_type,
                intervals=intervals,
                event_id=event_id,
                callback=lambda ven_id, event_id, opt_type: self.opts.append((event_id, opt_type)),
                **kwargs,
            )
        )

    def cancel(self, event_id: str) -> None:
        self.server.cancel_event(VEN_ID, event_id)

    async def stop(self) -> None:
        await self.server.stop()
