"""The gateway's OpenADR 2.0b VEN, on ``openleadr``'s client.

One VEN per cluster: it runs as the job of the ``openadr`` lease (``gateway.leases``),
so that several gateway processes register once and answer each event once; when its
process dies, a survivor starts the VEN again within the lease TTL, registers (the VTN
answers with the same VEN id for the same name) and receives the active events again.
Limits outlive the VEN: the site load manager stores them, so a restart in the middle of
an event keeps the site limited.

Each event (new, modified or cancelled) is turned into site limits by
:func:`gateway.demand.mapping.decide` and handed to the site load manager, then answered
``optIn``, or ``optOut`` with the reason logged when the gateway cannot follow it. The VEN
offers one TELEMETRY_USAGE report per site (resource id = site id): the real power its
sessions draw now, so the grid operator sees the effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from gateway.demand.mapping import DEFAULT_SIMPLE_LEVELS, Decision, LimitSink, decide
from gateway.domain.clock import Clock

log = logging.getLogger(__name__)


class PowerSource(Protocol):
    """The real power a site draws now (W), for the VEN's telemetry reports."""

    def site_power_watts(self, site_id: str) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class VenConfig:
    vtn_url: str
    ven_name: str
    cert: Path | None = None
    key: Path | None = None
    ca_file: Path | None = None
    vtn_fingerprint: str | None = None
    simple_levels: tuple[Decimal, ...] = DEFAULT_SIMPLE_LEVELS
    report_every: timedelta = timedelta(seconds=10)
    # How often the VEN looks for sites added or removed (it then registers again, with a
    # report per site: OpenADR reports are offered at registration).
    sites_every: timedelta = timedelta(seconds=10)


class Ven:
    def __init__(
        self, config: VenConfig, sink: LimitSink, clock: Clock, power: PowerSource | None = None
    ) -> None:
        self.config = config
        self._sink = sink
        self._clock = clock
        self._power = power
        self.decisions: list[tuple[str, Decision]] = []  # event id -> what was done (recent)

    async def handle(self, event: dict[str, Any]) -> str:
        """An event, new or modified: its limits to the site manager; the opt answer."""
        decision = decide(
            event,
            await self._sink.site_ids(),
            simple_levels=self.config.simple_levels,
            now=self._clock.now(),
        )
        event_id = str((event.get("event_descriptor") or {}).get("event_id") or "")
        if decision.cancelled:
            await self._sink.remove_event_limits(event_id)
        elif decision.opt == "optIn":
            await self._sink.replace_event_limits(event_id, decision.limits)
        log.info("OpenADR event %s: %s (%s)", event_id, decision.opt, decision.reason)
        self.decisions.append((event_id, decision))
        del self.decisions[:-50]
        return decision.opt

    async def run(self) -> None:
        """Register with the VTN and follow its events until cancelled (the lease job);
        register again when the sites change (their reports are offered at registration)."""
        while True:
            sites = sorted(await self._sink.site_ids())
            changed = asyncio.Event()
            watch = asyncio.create_task(self._watch_sites(sites, changed))
            try:
                await self._follow(sites, changed)
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
            log.info("OpenADR VEN: the sites changed; registering again")

    async def _watch_sites(self, sites: list[str], changed: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.config.sites_every.total_seconds())
            try:
                now = sorted(await self._sink.site_ids())
            except Exception as exc:  # the store is out: look again later
                log.info("OpenADR VEN: sites not read: %s", exc)
                continue
            if now != sites:
                changed.set()
                return

    async def _follow(self, sites: list[str], changed: asyncio.Event) -> None:
        OpenADRClient = _openadr_client()

        config = self.config
        client = OpenADRClient(
            ven_name=config.ven_name,
            vtn_url=config.vtn_url,
            cert=str(config.cert) if config.cert else None,
            key=str(config.key) if config.key else None,
            ca_file=str(config.ca_file) if config.ca_file else None,
            vtn_fingerprint=config.vtn_fingerprint,
            # Without certificates (a test VTN, a VTN behind TLS of its own) the messages
            # are not signed; with them they are, as OpenADR 2.0b security requires.
            disable_signature=config.cert is None,
            show_fingerprint=False,
        )
        client.add_handler("on_event", self.handle)
        client.add_handler("on_update_event", self.handle)
        if self._power is not None:
            for site_id in sites:
                client.add_report(
                    callback=self._reporter(site_id),
                    resource_id=site_id,
                    measurement="RealPower",
                    unit="W",
                    sampling_rate=config.report_every,
                )
        await client.run()
        log.info("OpenADR VEN %s following %s", config.ven_name, config.vtn_url)
        try:
            await changed.wait()  # or until the lease is lost or the gateway stops
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(client.stop())

    def _reporter(self, site_id: str) -> Any:
        power = self._power
        assert power is not None

        def read() -> float:
            value = power.site_power_watts(site_id)
            return float(value) if value is not None else 0.0

        return read


def _openadr_client() -> Any:
    """openleadr's client class, imported on first use: only a gateway with a VTN needs
    it. Its XML signing library (signxml) names ``cryptography``'s DSA key types at
    import, which cryptography 51 answers with a deprecation warning about DSA, an
    algorithm nothing here uses: silenced for that import alone, not for the process."""
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning
        )
        from openleadr import OpenADRClient
    return OpenADRClient
