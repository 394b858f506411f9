"""Version-neutral heart of the central system.

The per-version connections (``v16``, ``v201``) convert frames into calls on
:class:`CentralSystem`, which writes the store first and publishes domain
events after, so that anything a consumer hears about is already durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from gateway.csms.certificates import CertificateService
from gateway.csms.device_model import DeviceModelRecorder
from gateway.domain.authorization import Authorizer
from gateway.domain.charging import ReportedProfile
from gateway.domain.clock import Clock, IdFactory
from gateway.domain.commands import (
    REMOTE_START_WINDOW,
    Command,
    CommandResult,
    CommandStatus,
    GetChargingProfiles,
    GetDiagnostics,
    GetVariables,
    ReserveNow,
    StartCharging,
    UpdateCost,
    UpdateFirmware,
    VariableRef,
)
from gateway.domain.cost import Cost, CostQuote
from gateway.domain.device_model import GetBaseReport, GetReport
from gateway.domain.errors import ChargerNotConnected, CommandNotSupported
from gateway.domain.events import (
    ChargerBooted,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusChanged,
    EventBus,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from gateway.domain.models import (
    AuthorizationResult,
    AuthorizationStatus,
    ChargerState,
    ConnectorState,
    ConnectorStatus,
    IdToken,
    Measurand,
    MeterReading,
    OcppVersion,
    Transaction,
    TransactionStatus,
)
from gateway.storage.base import Store

log = logging.getLogger(__name__)

# Heartbeats are kept in memory and written through at most this often: at
# 10,000 chargers a write per heartbeat would be pure overhead, and liveness is
# judged from memory anyway.
HEARTBEAT_WRITE_EVERY = timedelta(minutes=5)
# How long after a remote start a 1.6 StartTransaction for that token is taken as its
# result: REMOTE_START_WINDOW (gateway.domain.commands, shared with the roaming sessions).
# I02: a charger that displays costs gets the running cost at most this often.
COST_UPDATE_EVERY = timedelta(minutes=1)
# Firmware, diagnostics and log requests remembered per charger for the admin view.
REQUESTS_KEPT = 20
# WebSocket close code of a connection closed for its revoked certificate.
CLOSE_POLICY_VIOLATION = 1008
# Notification kind -> the command whose progress it reports. 2.0.1 notifications
# carry the requestId; 1.6 ones do not and belong to the latest request of their command.
_REQUEST_KINDS = {
    "FirmwareStatus": "UpdateFirmware",
    "DiagnosticsStatus": "GetDiagnostics",
    "LogStatus": "GetLog",
}


# 2.0.1 GetChargingProfiles: how long to wait for each ReportChargingProfiles (the first
# after the answer, each next one while the last said tbc) before answering with what came.
PROFILE_REPORT_TIMEOUT = 10.0


@dataclass(slots=True)
class _ProfileReports:
    """The reports collected for one GetChargingProfiles request."""

    profiles: list[ReportedProfile]
    arrived: asyncio.Event
    finished: bool = False


class Connection(Protocol):
    """What the central system needs of one live charger connection."""

    charger_id: str
    version: OcppVersion
    last_seen: datetime
    # The SHA-256 fingerprint of the TLS client certificate the charger connected with
    # (security profile 3), None without one: what a revocation closes.
    client_certificate: str | None

    async def send_command(self, command: Command) -> CommandResult: ...
    async def close(self, code: int, reason: str) -> None: ...


class OcppMetrics(Protocol):
    """What the OCPP side counts (``gateway.metrics.OcppCounters``; injected by the app).

    Labels are bounded by the caller: ``action`` is an action of the version's schemas or
    ``unknown``, never anything a charger chose freely."""

    def call_received(self, version: str, action: str, outcome: str) -> None: ...
    def call_sent(self, version: str, action: str, outcome: str, seconds: float) -> None: ...
    def callerror(self, direction: str, code: str) -> None: ...
    def callresulterror(self, direction: str, code: str) -> None: ...
    def send_received(self, version: str, action: str, outcome: str) -> None: ...


class NoMetrics:
    """Counts nothing (a central system built without the app's metrics, in tests)."""

    def call_received(self, version: str, action: str, outcome: str) -> None:
        return None

    def call_sent(self, version: str, action: str, outcome: str, seconds: float) -> None:
        return None

    def callerror(self, direction: str, code: str) -> None:
        return None

    def callresulterror(self, direction: str, code: str) -> None:
        return None

    def send_received(self, version: str, action: str, outcome: str) -> None:
        return None


class FrameTrail(Protocol):
    """Where every OCPP frame in and out goes (``gateway.trail.TrailRecorder``; injected
    by the app, None when the trail is off). Called on the hot path, for each frame: it
    queues and returns at once, never awaits."""

    def ocpp(
        self,
        charger_id: str,
        direction: str,
        raw: str,
        message_type: str,
        message_id: str | None,
        action: str | None,
        status: str | None,
        transaction_id: str | None,
        at: datetime | None = None,
    ) -> None: ...


class Ownership(Protocol):
    """Which process of a cluster holds each charger's connection (``gateway.cluster``).

    The central system claims a charger when it connects (taking it over from another
    process, which closes its stale connection) and releases it when its connection
    ends; only a process that still held the charger records it offline."""

    async def claim(self, charger_id: str) -> None: ...

    async def release(self, charger_id: str) -> bool:
        """True when this process held the charger (and now does not)."""
        ...


class SoleOwnership:
    """One process: every charger connected here is this process's."""

    async def claim(self, charger_id: str) -> None:
        return None

    async def release(self, charger_id: str) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class BootInfo:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionStart:
    charger_id: str
    evse_id: int
    connector_id: int
    timestamp: datetime
    id_token: IdToken | None
    meter_start_wh: Decimal | None
    ocpp_id: str | None = None  # None for 1.6: the gateway assigns one
    remote_start_id: int | None = None
    reservation_id: int | None = None
    charging_state: str | None = None
    readings: Sequence[MeterReading] = ()


@dataclass(frozen=True, slots=True)
class TransactionStop:
    charger_id: str
    ocpp_id: str
    timestamp: datetime
    meter_stop_wh: Decimal | None
    reason: str | None = None
    id_token: IdToken | None = None
    readings: Sequence[MeterReading] = ()
    # 2.0.1 may end a transaction it never announced; these let us record it.
    evse_id: int | None = None
    connector_id: int | None = None


class CentralSystem:
    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        authorizer: Authorizer,
        clock: Clock,
        ids: IdFactory,
        heartbeat_interval: int,
        heartbeat_grace: float,
        ownership: Ownership | None = None,
        profile_report_timeout: float = PROFILE_REPORT_TIMEOUT,
        cost: CostQuote | None = None,
    ) -> None:
        self.store = store
        self.ownership: Ownership = ownership or SoleOwnership()
        self.metrics: OcppMetrics = NoMetrics()  # the app's metrics, set by the app
        self.trail: FrameTrail | None = None  # the message trail, set by the app
        # Charger certificates (SignCertificate), set by the app; None: requests refused.
        self.certificates: CertificateService | None = None
        self.cost = cost
        # 2.0.1 chargers that display costs (TariffCostCtrlr.Enabled[Cost], asked at boot),
        # and when each transaction's running cost was last sent (I02: once a minute).
        self._cost_display: set[str] = set()
        self._cost_sent: dict[str, datetime] = {}
        self._probing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.bus = bus
        self.authorizer = authorizer
        self.clock = clock
        self.ids = ids
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_grace = heartbeat_grace
        self._connections: dict[str, Connection] = {}
        self._states: dict[str, ChargerState] = {}
        self._heartbeat_written: dict[str, datetime] = {}
        # Heartbeats of connected chargers, apart from _states: a heartbeat is the
        # most frequent message and should not rebuild a state object each time.
        self._heartbeats: dict[str, datetime] = {}
        self._reports: dict[str, dict[str, dict[str, Any]]] = {}
        self._remote_starts: dict[tuple[str, str], tuple[int, datetime]] = {}
        # charger id -> request id -> what was asked and the latest notification on it
        self._requests: dict[str, dict[int, dict[str, Any]]] = {}
        # (charger id, request id) -> the ReportChargingProfiles collected so far
        self._profile_reports: dict[tuple[str, int], _ProfileReports] = {}
        self.profile_report_timeout = profile_report_timeout
        self._request_ids = itertools.count(int(clock.now().timestamp()) % 1_000_000 * 1000 + 1)
        # 2.0.1/2.1 device models and alerts (the app sets its alerts_kept).
        self.device_model = DeviceModelRecorder(store, clock, self.next_request_id)

    # -- connections -------------------------------------------------------

    def connection(self, charger_id: str) -> Connection | None:
        return self._connections.get(charger_id)

    def connections(self) -> list[Connection]:
        return list(self._connections.values())

    def heartbeat_of(self, charger_id: str) -> datetime | None:
        """The last heartbeat of a charger connected here (None: none since it connected)."""
        return self._heartbeats.get(charger_id)

    def live_state(self, charger_id: str) -> ChargerState | None:
        """The freshest known state of a connected charger (heartbeat included)."""
        state = self._states.get(charger_id)
        beat = self._heartbeats.get(charger_id)
        if state is not None and beat is not None and beat != state.last_heartbeat:
            state = replace(state, last_heartbeat=beat)
        return state

    async def connected(self, conn: Connection) -> None:
        old = self._connections.get(conn.charger_id)
        self._connections[conn.charger_id] = conn
        if old is not None and old is not conn:
            # OCPP-J: a new connection with the same id replaces the old one.
            log.info("charger %s reconnected; closing its previous connection", conn.charger_id)
            await old.close(1000, "replaced by a new connection")
        now = self.clock.now()
        try:
            state = await self.store.charger_states.get(conn.charger_id)
            state = replace(
                state or ChargerState(id=conn.charger_id),
                connected=True,
                ocpp_version=conn.version,
                connected_at=now,
            )
            self._states[conn.charger_id] = state
            # Claimed before anything is recorded: a process that held the charger before
            # is told to close its stale connection, and will not record it offline.
            await self.ownership.claim(conn.charger_id)
            await self.store.charger_states.put(state)
        except BaseException:
            # Not connected after all (the storage is out, the connection is refused):
            # nothing may keep renewing or routing to it.
            if self._connections.get(conn.charger_id) is conn:
                del self._connections[conn.charger_id]
                self._forget(conn.charger_id)
                with contextlib.suppress(Exception):
                    await self.ownership.release(conn.charger_id)
            raise
        await self.bus.publish(ChargerOnline(conn.charger_id, now))

    async def disconnected(self, conn: Connection, reason: str) -> None:
        if self._connections.get(conn.charger_id) is not conn:
            return  # replaced: the new connection owns the state now
        del self._connections[conn.charger_id]
        state = self.live_state(conn.charger_id)
        self._forget(conn.charger_id)
        if not await self.ownership.release(conn.charger_id):
            # Another process holds the charger now (it reconnected there): its state is
            # that process's to record.
            log.info("charger %s: connection here ended; it is held elsewhere", conn.charger_id)
            return
        await self.mark_offline(conn.charger_id, reason, state)

    async def mark_offline(
        self, charger_id: str, reason: str, state: ChargerState | None = None
    ) -> None:
        """Record a charger offline (its connectors UNKNOWN) and tell the bus: when its
        connection here ends, or when the process that held it is gone (the offline
        sweep, ``gateway.cluster.ownership``)."""
        now = self.clock.now()
        state = state or await self.store.charger_states.get(charger_id)
        if state is not None:
            await self.store.charger_states.put(
                replace(state, connected=False, disconnected_at=now)
            )
        await self.store.connectors.set_all(charger_id, ConnectorStatus.UNKNOWN, now)
        log.info("charger %s offline: %s", charger_id, reason)
        await self.bus.publish(ChargerOffline(charger_id, now, reason))
        for connector in await self.store.connectors.list(charger_id):
            await self.bus.publish(ConnectorStatusChanged(connector))

    async def certificate_revoked(self, charger_id: str, fingerprint: str) -> bool:
        """The operator revoked the certificate with SHA-256 ``fingerprint``: the charger's
        connection here, when it was made with that certificate, is recorded offline and
        closed (1008, policy violation: RFC 6455 section 7.4.1); its next handshake is
        refused (:meth:`gateway.csms.endpoint.OcppEndpoint`). True when one was. A
        connection made with another certificate (its successor) stays."""
        conn = self._connections.get(charger_id)
        if conn is None or conn.client_certificate != fingerprint:
            return False
        log.warning("charger %s: its certificate was revoked; closing its connection", charger_id)
        # Offline first, then close, as for missed heartbeats: the connection's own end
        # then finds it already gone.
        await self.disconnected(conn, "certificate revoked")
        await conn.close(CLOSE_POLICY_VIOLATION, "certificate revoked")
        return True

    async def handed_over(self, charger_id: str) -> bool:
        """Another process holds the charger now: close the stale connection here without
        recording anything (the new holder does). False when none was open here."""
        conn = self._connections.pop(charger_id, None)
        self._forget(charger_id)
        if conn is None:
            return False
        log.info(
            "charger %s reconnected to another process; closing its connection here", charger_id
        )
        await conn.close(1000, "connected to another server")
        return True

    def _forget(self, charger_id: str) -> None:
        self._states.pop(charger_id, None)
        self._heartbeats.pop(charger_id, None)
        self._heartbeat_written.pop(charger_id, None)

    async def unregister(self, charger_id: str) -> None:
        """The operator removed the charger: drop its connection without recording it
        offline (its records are being deleted)."""
        conn = self._connections.pop(charger_id, None)
        self._forget(charger_id)
        if conn is not None:
            await self.ownership.release(charger_id)
            await conn.close(1000, "charger removed by the operator")

    async def check_liveness(self) -> list[str]:
        """Close connections silent for longer than the grace period; return their ids."""
        limit = timedelta(seconds=self.heartbeat_interval * self.heartbeat_grace)
        # One comparison per connection (at 10,000 chargers a few ms on the loop).
        cutoff = self.clock.now() - limit
        dead = [c for c in self._connections.values() if c.last_seen < cutoff]
        for conn in dead:
            # Offline first, then close: the connection's own end (its receive loop
            # finishing) then finds it already gone and changes nothing.
            await self.disconnected(conn, "missed heartbeats")
            await conn.close(1001, "no heartbeat within the grace period")
        return [c.charger_id for c in dead]

    async def send(self, charger_id: str, command: Command) -> CommandResult:
        conn = self._connections.get(charger_id)
        if conn is None:
            raise ChargerNotConnected(charger_id)
        if isinstance(command, StartCharging | ReserveNow) and command.token_type is None:
            command = await self._with_stored_token(command)
        if isinstance(command, StartCharging) and command.remote_start_id is not None:
            # 1.6 StartTransaction has no remote start id (2.0.1 echoes it): remember it
            # so the transaction the charger starts for this token carries it.
            self._remote_starts[(charger_id, command.id_token)] = (
                command.remote_start_id,
                self.clock.now(),
            )
        if isinstance(command, UpdateFirmware | GetDiagnostics):
            return await self._send_request(conn, command)
        if isinstance(command, GetChargingProfiles):
            return await self._get_charging_profiles(conn, command)
        if isinstance(command, GetBaseReport | GetReport):
            return await self.device_model.request_report(conn, command)
        result = await conn.send_command(command)
        # B05/B06: what the charger accepted becomes its stored device model.
        await self.device_model.answered(charger_id, command, result)
        return result

    async def _get_charging_profiles(
        self, conn: Connection, command: GetChargingProfiles
    ) -> CommandResult:
        """2.0.1 K09: the charger answers, then reports what it holds in
        ReportChargingProfiles under the requestId, ``tbc`` on all but the last. The
        result lists every profile reported until one says tbc false, or until none came
        for ``profile_report_timeout`` (``data["reports_complete"]`` False then)."""
        if command.request_id is None:
            command = replace(command, request_id=self.next_request_id())
        request_id = command.request_id
        assert request_id is not None
        key = (conn.charger_id, request_id)
        # Listening before the call goes out: a report may come right behind the answer.
        reports = self._profile_reports[key] = _ProfileReports([], asyncio.Event())
        try:
            result = await conn.send_command(command)
            complete = True
            if result.status is CommandStatus.ACCEPTED and result.data.get("status") == "Accepted":
                while not reports.finished:
                    reports.arrived.clear()
                    try:
                        await asyncio.wait_for(reports.arrived.wait(), self.profile_report_timeout)
                    except TimeoutError:
                        complete = False
                        log.warning(
                            "charger %s: reports of GetChargingProfiles %s stopped coming",
                            conn.charger_id,
                            request_id,
                        )
                        break
            return replace(
                result,
                request_id=request_id,
                profiles=tuple(reports.profiles),
                data={**result.data, "reports_complete": complete},
            )
        finally:
            if self._profile_reports.get(key) is reports:
                del self._profile_reports[key]

    async def charging_profiles_report(
        self,
        charger_id: str,
        request_id: int,
        profiles: Sequence[ReportedProfile],
        *,
        tbc: bool,
    ) -> None:
        """One ReportChargingProfiles: added to the GetChargingProfiles that asked for it
        (one nobody waits for any more, or made by another central system, is dropped)."""
        reports = self._profile_reports.get((charger_id, request_id))
        if reports is None:
            log.info(
                "charger %s: ReportChargingProfiles for request %s that nobody waits for",
                charger_id,
                request_id,
            )
            return
        reports.profiles.extend(profiles)
        reports.finished = reports.finished or not tbc
        reports.arrived.set()

    async def _with_stored_token(
        self, command: StartCharging | ReserveNow
    ) -> StartCharging | ReserveNow:
        """The command with the token's type as the local list stores it (if it is there)."""
        local = await self.store.tokens.get(command.id_token)
        if local is None:
            return command  # a token the central system makes up
        return replace(command, token_type=local.type, contract_id=local.contract_id)

    async def _send_request(
        self, conn: Connection, command: UpdateFirmware | GetDiagnostics
    ) -> CommandResult:
        """Send a firmware/diagnostics/log request under a request id of its own.

        Without one from the caller it gets a fresh id (never the same for two
        requests), so that its status notifications can be told apart.
        """
        if command.request_id is None:
            command = replace(command, request_id=self.next_request_id())
        request_id = command.request_id
        assert request_id is not None
        extra: dict[str, Any] = {}
        if isinstance(command, UpdateFirmware):
            name = "UpdateFirmware"
        elif conn.version is OcppVersion.V16:
            name = "GetDiagnostics"
        else:
            name, extra = "GetLog", {"log_type": command.log_type}
        requests = self._requests.setdefault(conn.charger_id, {})
        requests.pop(request_id, None)
        requests[request_id] = {
            "request_id": request_id,
            "command": name,
            **extra,
            "sent_at": self.clock.now(),
            "answer": None,
            "status": None,
            "notification": None,
            "notified_at": None,
        }
        while len(requests) > REQUESTS_KEPT:
            del requests[next(iter(requests))]
        try:
            result = await conn.send_command(command)
        except (CommandNotSupported, ChargerNotConnected):
            requests.pop(request_id, None)  # it never went out
            raise
        entry = requests.get(request_id)
        if entry is not None:
            entry["answer"] = result.status
        return replace(result, request_id=request_id)

    def requests(self, charger_id: str) -> list[dict[str, Any]]:
        """Firmware, diagnostics and log requests, newest first, each with its latest news."""
        return [dict(r) for r in reversed(self._requests.get(charger_id, {}).values())]

    def _claim_remote_start(self, charger_id: str, token: IdToken | None) -> int | None:
        if token is None:
            return None
        entry = self._remote_starts.pop((charger_id, token.uid), None)
        if entry is None or self.clock.now() - entry[1] > REMOTE_START_WINDOW:
            return None
        return entry[0]

    def next_request_id(self) -> int:
        """A fresh requestId / remoteStartId for calls that need one (2.0.1)."""
        return next(self._request_ids) % 2_147_483_647

    def reports(self, charger_id: str) -> dict[str, dict[str, Any]]:
        """The latest firmware, diagnostics, log, event and report notifications."""
        return dict(self._reports.get(charger_id, {}))

    async def management_report(self, charger_id: str, kind: str, payload: dict[str, Any]) -> None:
        # Kept for the operator's view (admin API); they change no domain state.
        self._reports.setdefault(charger_id, {})[kind] = payload
        command = _REQUEST_KINDS.get(kind)
        if command is not None:
            self._note_request(charger_id, command, payload)
        log.info("charger %s: %s %s", charger_id, kind, payload.get("status", ""))

    def _note_request(self, charger_id: str, command: str, payload: dict[str, Any]) -> None:
        requests = self._requests.setdefault(charger_id, {})
        request_id = payload.get("requestId")
        if request_id is None:
            # 1.6 (and a 2.0.1 Idle): the latest request of that command, if any.
            latest = [r for r in requests.values() if r["command"] == command]
            if not latest:
                return
            request_id = latest[-1]["request_id"]
        entry = requests.get(request_id)
        if entry is None:
            # A request made before a restart, or by another central system.
            entry = requests[request_id] = {
                "request_id": request_id,
                "command": command,
                "sent_at": None,
                "answer": None,
            }
            while len(requests) > REQUESTS_KEPT:
                del requests[next(iter(requests))]
        entry["status"] = payload.get("status")
        entry["notification"] = payload
        entry["notified_at"] = self.clock.now()

    async def close_all(self, code: int, reason: str) -> None:
        for task in list(self._tasks):  # cost probes and updates: the chargers are going
            task.cancel()
        conns = list(self._connections.values())
        await asyncio.gather(*(c.close(code, reason) for c in conns), return_exceptions=True)

    # -- charger reports ---------------------------------------------------

    async def booted(self, charger_id: str, info: BootInfo) -> None:
        now = self.clock.now()
        base = self._states.get(charger_id) or ChargerState(id=charger_id, connected=True)
        state = replace(
            base,
            vendor=info.vendor,
            model=info.model,
            serial_number=info.serial_number,
            firmware_version=info.firmware_version,
            booted_at=now,
            last_heartbeat=now,
        )
        self._states[charger_id] = state
        self._heartbeats[charger_id] = now
        self._heartbeat_written[charger_id] = now
        await self.store.charger_states.put(state)
        await self.bus.publish(ChargerBooted(state))
        conn = self._connections.get(charger_id)
        if self.cost is not None and conn is not None and conn.version is not OcppVersion.V16:
            self._background(self._probe_cost_display(charger_id))

    async def heartbeat(self, charger_id: str) -> None:
        now = self.clock.now()
        if charger_id not in self._states:
            return
        self._heartbeats[charger_id] = now
        written = self._heartbeat_written.get(charger_id)
        if written is None or now - written >= HEARTBEAT_WRITE_EVERY:
            self._heartbeat_written[charger_id] = now
            state = replace(self._states[charger_id], last_heartbeat=now)
            self._states[charger_id] = state
            await self.store.charger_states.put(state)

    async def connector_status(self, state: ConnectorState) -> None:
        await self.store.connectors.put(state)
        await self.bus.publish(ConnectorStatusChanged(state))

    async def authorize(
        self, charger_id: str, token: IdToken, evse_id: int | None = None
    ) -> AuthorizationResult:
        return await self.authorizer.authorize(token, charger_id=charger_id, evse_id=evse_id)

    # -- transactions ------------------------------------------------------

    async def start_transaction(
        self, start: TransactionStart
    ) -> tuple[Transaction, AuthorizationResult | None]:
        """Record a started transaction (durably) and authorize its token."""
        auth = None
        if start.id_token is not None:
            auth = await self.authorize(start.charger_id, start.id_token, start.evse_id)
        ocpp_id = start.ocpp_id
        if ocpp_id is None:
            # 1.6: a charger that repeats StartTransaction after a lost answer
            # must get the same transactionId back.
            for active in await self.store.transactions.active(start.charger_id):
                if (
                    active.connector_id == start.connector_id
                    and active.started_at == start.timestamp
                    and active.id_token == start.id_token
                ):
                    return active, auth
            ocpp_id = str(await self.store.transactions.next_ocpp16_id())
        claimed = self._claim_remote_start(start.charger_id, start.id_token)
        remote_start_id = start.remote_start_id if start.remote_start_id is not None else claimed
        tx = Transaction(
            id=self.ids.new_id(),
            charger_id=start.charger_id,
            ocpp_id=ocpp_id,
            evse_id=start.evse_id,
            connector_id=start.connector_id,
            started_at=start.timestamp,
            id_token=start.id_token,
            meter_start_wh=start.meter_start_wh,
            remote_start_id=remote_start_id,
            reservation_id=start.reservation_id,
            charging_state=start.charging_state,
            authorization_reference=_reference(auth),
            updated_at=self.clock.now(),
        )
        stored, created = await self.store.transactions.create(tx, start.readings)
        if created:
            await self.bus.publish(TransactionStarted(stored))
        return stored, auth

    async def update_transaction(
        self,
        charger_id: str,
        ocpp_id: str,
        readings: Sequence[MeterReading],
        *,
        charging_state: str | None = None,
        id_token: IdToken | None = None,
        authorization: AuthorizationResult | None = None,
    ) -> Transaction | None:
        tx = await self.store.transactions.find(charger_id, ocpp_id)
        if tx is None:
            log.warning("charger %s: readings for unknown transaction %s", charger_id, ocpp_id)
            return None
        changes: dict[str, object] = {"updated_at": self.clock.now()}
        if charging_state is not None:
            changes["charging_state"] = charging_state
        if id_token is not None and tx.id_token is None:
            # The token of a transaction that started without one (2.0.1), and the
            # reference of the authorization it got (``authorization``, of that token).
            changes["id_token"] = id_token
            if tx.authorization_reference is None and _reference(authorization) is not None:
                changes["authorization_reference"] = _reference(authorization)
        if tx.meter_start_wh is None:
            first = _first_energy(readings)
            if first is not None:
                changes["meter_start_wh"] = first
        tx = replace(tx, **changes)  # type: ignore[arg-type]
        await self.store.transactions.save(tx, readings)
        await self.bus.publish(TransactionUpdated(tx, tuple(readings)))
        if charger_id in self._cost_display and readings:
            last = self._cost_sent.get(tx.id)
            now = self.clock.now()
            if last is None or now - last >= COST_UPDATE_EVERY:
                self._cost_sent[tx.id] = now
                self._background(self._send_running_cost(tx))
        return tx

    async def end_transaction(
        self, stop: TransactionStop
    ) -> tuple[Transaction, AuthorizationResult | None]:
        auth = None
        if stop.id_token is not None:
            auth = await self.authorize(stop.charger_id, stop.id_token, stop.evse_id)
        tx = await self.store.transactions.find(stop.charger_id, stop.ocpp_id)
        if tx is not None and tx.status is TransactionStatus.COMPLETED:
            return tx, auth  # a repeated stop after a lost answer
        if tx is None:
            # OCPP 1.6 section 5.18 / 2.0.1 E: a stop for a transaction we never
            # saw (sent after an outage) is still accepted and recorded.
            log.warning(
                "charger %s: stop of unknown transaction %s, recording it",
                stop.charger_id,
                stop.ocpp_id,
            )
            started = min((r.timestamp for r in stop.readings), default=stop.timestamp)
            tx = Transaction(
                id=self.ids.new_id(),
                charger_id=stop.charger_id,
                ocpp_id=stop.ocpp_id,
                evse_id=stop.evse_id or 0,
                connector_id=stop.connector_id or 0,
                started_at=started,
                id_token=stop.id_token,
                meter_start_wh=_first_energy(stop.readings),
                recovered=True,
            )
            tx, _ = await self.store.transactions.create(tx)
        meter_stop = stop.meter_stop_wh
        if meter_stop is None:
            meter_stop = _last_energy(stop.readings) or tx.meter_stop_wh
        ended = replace(
            tx,
            status=TransactionStatus.COMPLETED,
            stopped_at=stop.timestamp,
            meter_stop_wh=meter_stop,
            stop_reason=stop.reason,
            stop_id_token=stop.id_token,
            meter_start_wh=tx.meter_start_wh
            if tx.meter_start_wh is not None
            else _first_energy(stop.readings),
            updated_at=self.clock.now(),
        )
        await self.store.transactions.save(ended, stop.readings)
        await self.bus.publish(TransactionEnded(ended))
        self._cost_sent.pop(ended.id, None)
        return ended, auth

    # -- costs shown on the charger (2.0.1 TariffCostCtrlr) ------------------------

    async def final_cost(self, tx: Transaction) -> Cost | None:
        """The cost of an ended transaction, for a charger that displays costs (I03);
        None otherwise, or when no tariff prices it."""
        if self.cost is None or tx.charger_id not in self._cost_display:
            return None
        try:
            return await self.cost.cost(tx)
        except Exception as exc:  # the answer goes out without a cost, never fails
            log.warning("charger %s: no final cost of %s: %s", tx.charger_id, tx.id, exc)
            return None

    async def _probe_cost_display(self, charger_id: str) -> None:
        """Ask a 2.0.1 charger whether it displays costs (TariffCostCtrlr.Enabled[Cost]);
        once at a time per charger (one that boots again and again asks once)."""
        if charger_id in self._probing:
            return
        self._probing.add(charger_id)
        # The instance is the variable's: Enabled[Cost] beside Enabled[Tariff] (2.0.1
        # part 2, TariffCostCtrlr), on the component without an instance.
        probe = GetVariables(
            (VariableRef("TariffCostCtrlr", "Enabled", variable_instance="Cost"),)
        )
        try:
            result = await self.send(charger_id, probe)
        except Exception as exc:  # a charger without the component, gone, or slow
            log.debug("charger %s: cost display not known: %s", charger_id, exc)
            return
        finally:
            self._probing.discard(charger_id)
        answers = result.data.get("getVariableResult") or []
        enabled = any(
            a.get("attributeStatus") == "Accepted"
            and str(a.get("attributeValue")).lower() == "true"
            for a in answers
            if isinstance(a, dict)
        )
        if enabled:
            self._cost_display.add(charger_id)
        else:
            self._cost_display.discard(charger_id)

    async def _send_running_cost(self, tx: Transaction) -> None:
        assert self.cost is not None
        try:
            cost = await self.cost.cost(tx)
            if cost is not None:
                await self.send(tx.charger_id, UpdateCost(tx.ocpp_id, cost.amount))
        except Exception as exc:  # the display waits for the next update
            log.info("charger %s: running cost not sent: %s", tx.charger_id, exc)

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _reference(auth: AuthorizationResult | None) -> str | None:
    """The reference of the authorization that let the transaction start (an eMSP's
    real-time authorization), kept for its session and CDR."""
    if auth is None or auth.status is not AuthorizationStatus.ACCEPTED:
        return None
    return auth.authorization_reference


def _energy(readings: Sequence[MeterReading]) -> list[MeterReading]:
    return [r for r in readings if r.measurand is Measurand.ENERGY_WH and r.phase is None]


def _first_energy(readings: Sequence[MeterReading]) -> Decimal | None:
    energy = _energy(readings)
    return min(energy, key=lambda r: r.timestamp).value if energy else None


def _last_energy(readings: Sequence[MeterReading]) -> Decimal | None:
    energy = _energy(readings)
    return max(energy, key=lambda r: r.timestamp).value if energy else None
