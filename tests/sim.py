"""Simulated chargers: the ``ocpp`` library's ChargePoint over a real aiohttp WebSocket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import aiohttp
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201


async def until_connected(gateway: Any, cp_id: str) -> None:
    """Until the gateway has recorded the charger's connection (just after the handshake:
    a test that goes on at once may be ahead of it)."""
    for _ in range(200):
        _, charger = await gateway.admin("GET", f"/chargers/{cp_id}")
        if charger["connected"]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"charger {cp_id} not recorded as connected: {charger}")


async def nothing_before_boot(ws: aiohttp.ClientWebSocketResponse, wait: float = 1.0) -> None:
    """Fails, naming it, if the gateway sends anything within ``wait`` seconds to a charger
    that has connected and not booted (it may refuse requests until its boot is answered)."""
    try:
        early = await ws.receive(timeout=wait)
    except TimeoutError:
        return
    raise AssertionError(f"before its BootNotification the charger got {early.type.name} {early.data!r}")


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


# -- smart charging: profiles held, the limit in force, a small EV model ----------------
#
# What a charger does with the profiles it receives, written from the OCPP texts and not
# from the gateway's converters (a converter bug must not be mirrored here):
#
# - a profile replaces one with the same id, or with the same EVSE, purpose and stack
#   level (1.6 section 3.13.4; 2.0.1 K01.FR.05);
# - per purpose, the profile with the highest stack level that is in force wins
#   (valid_from/valid_to, its schedule started and not past its duration);
# - a TxProfile (for the EVSE's transaction) overrides the TxDefaultProfile, and a
#   TxDefaultProfile on the EVSE itself one on EVSE 0 (1.6 section 3.13.2);
# - the station maximum (ChargePointMaxProfile / ChargingStationMaxProfile on EVSE 0)
#   caps each EVSE and the sum of what all EVSEs draw: when the cars want more, the
#   charger shares the maximum out equally (what one does not take goes to the others);
# - limits in W count as A at VOLTAGE per phase and the period's number of phases (3).
#
# The EV model: an :class:`EV` plugged into an EVSE draws ``min(its max_current, the
# EVSE's limit)`` per phase, nothing while ``suspended``. Tests read the draw with
# ``charger.draw(evse_id)`` / ``charger.draws()`` and report it with
# ``await charger.send_meter_values(evse_id)`` (Current.Import per phase, Power, Energy).

VOLTAGE = Decimal(230)
_TENTH = Decimal("0.1")
_RECURRENCE = {"Daily": 86_400, "Weekly": 7 * 86_400}
STATION_MAX = ("ChargePointMaxProfile", "ChargingStationMaxProfile")


@dataclass
class EV:
    """A car on an EVSE: draws ``min(max_current, limit)`` amperes per phase on
    ``phases`` phases, or nothing while ``suspended`` (full, or paused by the car)."""

    max_current: Decimal = Decimal(32)
    phases: int = 3
    suspended: bool = False

    def wants(self, limit: Decimal) -> Decimal:
        if self.suspended:
            return Decimal(0)
        return max(Decimal(0), min(self.max_current, limit))


@dataclass
class HeldProfile:
    """A profile as the charger holds it (parsed from the received payload)."""

    evse_id: int
    id: int
    stack_level: int
    purpose: str
    kind: str
    unit: str
    periods: list[tuple[int, Decimal, int | None]]  # (start_period, limit, number_phases)
    received_at: datetime
    duration: int | None = None
    start_schedule: datetime | None = None
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    min_charging_rate: Decimal | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # as received (snake_case keys)

    def valid_at(self, at: datetime) -> bool:
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_to is None or at < self.valid_to

    def limit_at(self, at: datetime, tx_started: datetime | None) -> Decimal | None:
        """Amperes per phase this profile allows at ``at`` (None: not in force then)."""
        if not self.valid_at(at):
            return None
        if self.kind == "Relative":
            # Before any transaction: what it would allow at the start of one.
            start = tx_started or at
        else:
            start = self.start_schedule or self.received_at
        elapsed = (at - start).total_seconds()
        if elapsed < 0:
            return None
        if self.kind == "Recurring" and self.recurrency in _RECURRENCE:
            elapsed %= _RECURRENCE[self.recurrency]
        if self.duration is not None and elapsed >= self.duration:
            return None
        current: tuple[int, Decimal, int | None] | None = None
        for period in self.periods:
            if period[0] <= elapsed:
                current = period
        if current is None:
            return None
        _, limit, phases = current
        if self.unit == "W":
            return limit / (VOLTAGE * (phases or 3))
        return limit

    def breakpoints(
        self, start: datetime, end: datetime, tx_started: datetime | None
    ) -> set[datetime]:
        """Instants in [start, end) where this profile's limit may change."""
        origin = (
            (tx_started or start)
            if self.kind == "Relative"
            else (self.start_schedule or self.received_at)
        )
        offsets = [p[0] for p in self.periods] + ([self.duration] if self.duration else [])
        points = {t for t in (self.valid_from, self.valid_to) if t is not None}
        repeat = _RECURRENCE.get(self.recurrency or "") if self.kind == "Recurring" else None
        cycles = range(0, 1)
        if repeat:
            first = max(0, int((start - origin).total_seconds() // repeat))
            last = int((end - origin).total_seconds() // repeat) + 1
            cycles = range(first, min(last, first + 400) + 1)
        for cycle in cycles:
            base = origin + timedelta(seconds=cycle * (repeat or 0))
            points.update(base + timedelta(seconds=o) for o in offsets)
        return {p for p in points if start <= p < end}


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _held(
    evse_id: int, profile: dict[str, Any], profile_id: int, schedule: dict[str, Any], now: datetime
) -> HeldProfile:
    return HeldProfile(
        evse_id=evse_id,
        id=profile_id,
        stack_level=profile["stack_level"],
        purpose=profile["charging_profile_purpose"],
        kind=profile["charging_profile_kind"],
        unit=schedule["charging_rate_unit"],
        periods=[
            (p["start_period"], _dec(p["limit"]), p.get("number_phases"))
            for p in schedule["charging_schedule_period"]
        ],
        received_at=now.replace(microsecond=0),  # whole seconds, as a composite starts
        duration=schedule.get("duration"),
        start_schedule=_dt(schedule.get("start_schedule")),
        recurrency=profile.get("recurrency_kind"),
        valid_from=_dt(profile.get("valid_from")),
        valid_to=_dt(profile.get("valid_to")),
        transaction_id=(
            str(profile["transaction_id"]) if profile.get("transaction_id") is not None else None
        ),
        min_charging_rate=(
            _dec(schedule["min_charging_rate"])
            if schedule.get("min_charging_rate") is not None
            else None
        ),
        raw=profile,
    )


def _tenth_down(value: Decimal) -> float:
    # Both versions take at most one decimal (1.6 schema multipleOf 0.1; 2.0.1 text).
    return float(value.quantize(_TENTH, rounding=ROUND_FLOOR))


def _share(wants: dict[int, Decimal], capacity: Decimal) -> dict[int, Decimal]:
    """Water-filling: each EVSE gets what it wants up to an equal share of ``capacity``;
    what one leaves goes to the others."""
    out: dict[int, Decimal] = {}
    left = max(Decimal(0), capacity)
    pending = sorted(wants.items(), key=lambda kv: kv[1])
    while pending:
        fair = left / len(pending)
        evse, want = pending.pop(0)
        got = min(want, fair)
        out[evse] = got
        left -= got
    return out


class SmartCharging:
    """Profiles, transactions and EVs of a simulated charger (both versions).

    ``rated_current``: what each EVSE allows without any profile (A per phase);
    ``evse_count``: EVSEs 1..n; ``profile_status``: when set, every SetChargingProfile
    is answered with it (``"Rejected"``; 1.6 also ``"NotSupported"``); ``clock``: the
    charger's time (tests may replace it).
    """

    def _init_smart(self) -> None:
        self.rated_current = Decimal(32)
        self.evse_count = 2
        self.profile_status: str | None = None
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.profiles: dict[int, HeldProfile] = {}
        self.evs: dict[int, EV] = {}
        self.transactions: dict[int, str] = {}
        self.tx_started: dict[int, datetime] = {}
        self.energy_wh: dict[int, Decimal] = {}
        self._metered_at: dict[int, datetime] = {}
        self._smart_tasks: set[asyncio.Task[Any]] = set()

    # -- the EV model ----------------------------------------------------------

    def plug(self, evse_id: int, ev: EV | None = None) -> EV:
        """Plug ``ev`` (a 32 A three-phase car by default) into EVSE ``evse_id``."""
        self.evs[evse_id] = ev or EV()
        return self.evs[evse_id]

    def unplug(self, evse_id: int) -> None:
        self.evs.pop(evse_id, None)

    def draws(self, at: datetime | None = None) -> dict[int, Decimal]:
        """Amperes per phase each EVSE with a car draws now: the car's want under the
        EVSE's limit, the station maximum shared out when the cars want more."""
        at = at or self.clock()
        wants = {e: ev.wants(self.limit(e, at)) for e, ev in self.evs.items()}
        station = self.station_limit(at)
        if station is not None and sum(wants.values(), Decimal(0)) > station:
            return _share(wants, station)
        return wants

    def draw(self, evse_id: int, at: datetime | None = None) -> Decimal:
        return self.draws(at).get(evse_id, Decimal(0))

    # -- the limit in force ----------------------------------------------------

    def _winner(
        self, candidates: list[HeldProfile], at: datetime, tx_started: datetime | None
    ) -> Decimal | None:
        for profile in sorted(candidates, key=lambda p: p.stack_level, reverse=True):
            limit = profile.limit_at(at, tx_started)
            if limit is not None:
                return limit
        return None

    def station_limit(self, at: datetime | None = None) -> Decimal | None:
        """The station maximum in force (A per phase), None without one."""
        at = at or self.clock()
        held = [p for p in self.profiles.values() if p.evse_id == 0 and p.purpose in STATION_MAX]
        return self._winner(held, at, None)

    def limit(self, evse_id: int, at: datetime | None = None) -> Decimal:
        """Amperes per phase EVSE ``evse_id`` allows at ``at`` (now): its TxProfile or
        else its TxDefaultProfile, under the station maximum and its rating."""
        at = at or self.clock()
        started = self.tx_started.get(evse_id)
        tx = self.transactions.get(evse_id)
        own: Decimal | None = None
        if tx is not None:
            own = self._winner(
                [
                    p
                    for p in self.profiles.values()
                    if p.purpose == "TxProfile"
                    and p.evse_id == evse_id
                    and p.transaction_id in (None, tx)
                ],
                at,
                started,
            )
        if own is None:
            defaults = [p for p in self.profiles.values() if p.purpose == "TxDefaultProfile"]
            own = self._winner([p for p in defaults if p.evse_id == evse_id], at, started)
            if own is None:
                own = self._winner([p for p in defaults if p.evse_id == 0], at, started)
        limits = [self.rated_current]
        station = self.station_limit(at)
        for extra in (own, station):
            if extra is not None:
                limits.append(extra)
        return max(Decimal(0), min(limits))

    def composite(
        self, evse_id: int, duration: int, unit: str | None
    ) -> tuple[datetime, str, list[dict[str, Any]]]:
        """(start, unit, chargingSchedulePeriod) for the next ``duration`` seconds."""
        start = self.clock().replace(microsecond=0)
        end = start + timedelta(seconds=duration)
        points = {start}
        for p in self.profiles.values():
            points |= p.breakpoints(start, end, self.tx_started.get(evse_id))
        unit = unit or "A"
        periods: list[dict[str, Any]] = []
        for at in sorted(points):
            if evse_id == 0:
                station = self.station_limit(at)
                amps = station if station is not None else self.rated_current * self.evse_count
            else:
                amps = self.limit(evse_id, at)
            value = amps * VOLTAGE * 3 if unit == "W" else amps
            limit = _tenth_down(value)
            if periods and periods[-1]["limit"] == limit:
                continue
            periods.append({"startPeriod": int((at - start).total_seconds()), "limit": limit})
        return start, unit, periods

    # -- applying what the central system sends -----------------------------

    def _install(self, held: HeldProfile) -> str:
        if self.profile_status is not None:
            return self.profile_status
        if held.evse_id < 0 or held.evse_id > self.evse_count:
            return "Rejected"
        if held.purpose in STATION_MAX and held.evse_id != 0:
            return "Rejected"
        if held.purpose == "ChargingStationExternalConstraints":
            return "Rejected"  # 2.0.1 K01.FR.22: not for the CSMS to set
        if held.purpose == "TxProfile":
            tx = self.transactions.get(held.evse_id)
            if held.evse_id == 0 or tx is None:
                return "Rejected"
            if held.transaction_id is not None and held.transaction_id != tx:
                return "Rejected"
        for key, other in list(self.profiles.items()):
            if other.id == held.id or (
                other.evse_id == held.evse_id
                and other.purpose == held.purpose
                and other.stack_level == held.stack_level
            ):
                del self.profiles[key]
        self.profiles[held.id] = held
        return "Accepted"

    def _clear(
        self,
        profile_id: int | None,
        evse_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> str:
        if profile_id is not None:
            gone = [profile_id] if profile_id in self.profiles else []
        else:
            gone = [
                k
                for k, p in self.profiles.items()
                if (evse_id is None or p.evse_id == evse_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            ]
        for key in gone:
            del self.profiles[key]
        return "Accepted" if gone else "Unknown"

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._smart_tasks.add(task)
        task.add_done_callback(self._smart_tasks.discard)

    def _sampled(self, evse_id: int, at: datetime) -> tuple[Decimal, Decimal, Decimal, int]:
        """(amperes per phase, watts, energy register Wh, phases) for a meter value."""
        amps = self.draw(evse_id, at)
        ev = self.evs.get(evse_id)
        phases = ev.phases if ev else 3
        watts = amps * VOLTAGE * phases
        last = self._metered_at.get(evse_id)
        energy = self.energy_wh.get(evse_id, Decimal(0))
        if last is not None and at > last:
            energy += watts * Decimal((at - last).total_seconds()) / 3600
        self.energy_wh[evse_id] = energy
        self._metered_at[evse_id] = at
        return amps, watts, energy.quantize(Decimal(1), rounding=ROUND_FLOOR), phases


class Charger16(SmartCharging, CP16):
    """Answers the central system's commands the way a cooperative charger would."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.unlock_status = "Unlocked"
        self._init_smart()

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

    # -- smart charging (1.6 section 3.13, 5.5, 5.7, 5.16) ----------------------

    @on("SetChargingProfile")
    def on_set_charging_profile(self, **kwargs: Any) -> Any:
        self.received.append(("SetChargingProfile", kwargs))
        profile = kwargs["cs_charging_profiles"]
        held = _held(
            kwargs["connector_id"],
            profile,
            profile["charging_profile_id"],
            profile["charging_schedule"],
            self.clock(),
        )
        if held.purpose == "TxProfile" and held.evse_id == 0:
            return result16.SetChargingProfile(status="Rejected")
        return result16.SetChargingProfile(status=self._install(held))

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        self.received.append(("ClearChargingProfile", kwargs))
        status = self._clear(
            kwargs.get("id"),
            kwargs.get("connector_id"),
            kwargs.get("charging_profile_purpose"),
            kwargs.get("stack_level"),
        )
        return result16.ClearChargingProfile(status=status)

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, **kwargs: Any) -> Any:
        self.received.append(("GetCompositeSchedule", kwargs))
        evse = kwargs["connector_id"]
        if not 0 <= evse <= self.evse_count:
            return result16.GetCompositeSchedule(status="Rejected")
        start, unit, periods = self.composite(
            evse, kwargs["duration"], kwargs.get("charging_rate_unit")
        )
        return result16.GetCompositeSchedule(
            status="Accepted",
            connector_id=evse,
            schedule_start=start.isoformat().replace("+00:00", "Z"),
            charging_schedule={
                "duration": kwargs["duration"],
                "startSchedule": start.isoformat().replace("+00:00", "Z"),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        )

    # -- transactions and meter values, for the EV model ---------------------------

    async def start_transaction(self, evse_id: int, id_tag: str = "TAG-EV") -> str:
        """StartTransaction on ``evse_id``; returns (and keeps) its transaction id."""
        now = self.clock()
        self._sampled(evse_id, now)
        answer = await self.call(
            call16.StartTransaction(
                connector_id=evse_id,
                id_tag=id_tag,
                meter_start=int(self.energy_wh.get(evse_id, Decimal(0))),
                timestamp=now.isoformat().replace("+00:00", "Z"),
            )
        )
        tx = str(answer.transaction_id)
        self.transactions[evse_id] = tx
        self.tx_started[evse_id] = now
        return tx

    async def stop_transaction(self, evse_id: int, reason: str = "Local") -> None:
        now = self.clock()
        _, _, energy, _ = self._sampled(evse_id, now)
        tx = self.transactions.pop(evse_id)
        self.tx_started.pop(evse_id, None)
        await self.call(
            call16.StopTransaction(
                meter_stop=int(energy),
                timestamp=now.isoformat().replace("+00:00", "Z"),
                transaction_id=int(tx),
                reason=reason,
            )
        )

    async def send_meter_values(self, evse_id: int) -> Decimal:
        """MeterValues of what the EV on ``evse_id`` draws now; returns the amperes."""
        now = self.clock()
        amps, watts, energy, phases = self._sampled(evse_id, now)
        samples: list[dict[str, Any]] = [
            {"value": str(energy), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": str(watts.quantize(_TENTH)), "measurand": "Power.Active.Import", "unit": "W"},
        ]
        samples += [
            {
                "value": str(amps.quantize(_TENTH)),
                "measurand": "Current.Import",
                "unit": "A",
                "phase": f"L{n}",
            }
            for n in range(1, phases + 1)
        ]
        tx = self.transactions.get(evse_id)
        await self.call(
            call16.MeterValues(
                connector_id=evse_id,
                transaction_id=int(tx) if tx is not None else None,
                meter_value=[
                    {"timestamp": now.isoformat().replace("+00:00", "Z"), "sampledValue": samples}
                ],
            )
        )
        return amps


class Charger201(SmartCharging, CP201):
    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn, response_timeout=10)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._init_smart()
        # ReportChargingProfiles: at most this many profiles per message (tbc between).
        self.report_chunk = 10

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

    # -- smart charging (2.0.1 K01, K08, K09, K10) -------------------------------

    @on("SetChargingProfile")
    def on_set_charging_profile(self, **kwargs: Any) -> Any:
        self.received.append(("SetChargingProfile", kwargs))
        profile = kwargs["charging_profile"]
        # One schedule per profile here (2.0.1 allows three, for ISO 15118 choices).
        held = _held(
            kwargs["evse_id"], profile, profile["id"], profile["charging_schedule"][0], self.clock()
        )
        if held.purpose == "TxProfile" and held.transaction_id is None:
            return result201.SetChargingProfile(status="Rejected")  # K01.FR.03
        return result201.SetChargingProfile(status=self._install(held))

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        self.received.append(("ClearChargingProfile", kwargs))
        criteria = kwargs.get("charging_profile_criteria") or {}
        status = self._clear(
            kwargs.get("charging_profile_id"),
            criteria.get("evse_id"),
            criteria.get("charging_profile_purpose"),
            criteria.get("stack_level"),
        )
        return result201.ClearChargingProfile(status=status)

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, **kwargs: Any) -> Any:
        self.received.append(("GetCompositeSchedule", kwargs))
        evse = kwargs["evse_id"]
        if not 0 <= evse <= self.evse_count:
            return result201.GetCompositeSchedule(status="Rejected")
        start, unit, periods = self.composite(
            evse, kwargs["duration"], kwargs.get("charging_rate_unit")
        )
        return result201.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evseId": evse,
                "duration": kwargs["duration"],
                "scheduleStart": start.isoformat().replace("+00:00", "Z"),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        )

    def _matching(self, kwargs: dict[str, Any]) -> list[HeldProfile]:
        criterion = kwargs.get("charging_profile") or {}
        evse = kwargs.get("evse_id")
        ids = criterion.get("charging_profile_id")
        return [
            p
            for p in self.profiles.values()
            if (evse is None or p.evse_id == evse)
            and (criterion.get("charging_profile_purpose") in (None, p.purpose))
            and (criterion.get("stack_level") in (None, p.stack_level))
            and (not ids or p.id in ids)
        ]

    @on("GetChargingProfiles")
    def on_get_charging_profiles(self, **kwargs: Any) -> Any:
        self.received.append(("GetChargingProfiles", kwargs))
        status = "Accepted" if self._matching(kwargs) else "NoProfiles"
        return result201.GetChargingProfiles(status=status)

    @after("GetChargingProfiles")
    def after_get_charging_profiles(self, **kwargs: Any) -> None:
        # K09.FR.03: the reports follow the answer, under its requestId, tbc on all but the last.
        matching = sorted(self._matching(kwargs), key=lambda p: (p.evse_id, p.id))
        if matching:
            self._spawn(self._report(kwargs["request_id"], matching))

    async def _report(self, request_id: int, profiles: list[HeldProfile]) -> None:
        chunks: list[tuple[int, list[HeldProfile]]] = []
        for p in profiles:
            if chunks and chunks[-1][0] == p.evse_id and len(chunks[-1][1]) < self.report_chunk:
                chunks[-1][1].append(p)
            else:
                chunks.append((p.evse_id, [p]))
        for i, (evse, chunk) in enumerate(chunks):
            await self.call(
                call201.ReportChargingProfiles(
                    request_id=request_id,
                    charging_limit_source="CSO",
                    charging_profile=[_floats(p.raw) for p in chunk],
                    evse_id=evse,
                    tbc=i < len(chunks) - 1,
                )
            )

    # -- transactions and meter values, for the EV model ---------------------------

    async def start_transaction(self, evse_id: int, id_tag: str = "TAG-EV") -> str:
        """TransactionEvent Started on ``evse_id``; returns (and keeps) its transaction id."""
        now = self.clock()
        _, _, energy, _ = self._sampled(evse_id, now)
        tx = uuid.uuid4().hex
        self._seq = getattr(self, "_seq", 0) + 1
        await self.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=now.isoformat().replace("+00:00", "Z"),
                trigger_reason="Authorized",
                seq_no=self._seq,
                transaction_info={"transactionId": tx, "chargingState": "Charging"},
                evse={"id": evse_id, "connectorId": 1},
                id_token={"idToken": id_tag, "type": "ISO14443"},
                meter_value=[
                    _meter201(now, [("Energy.Active.Import.Register", "Wh", energy, None)])
                ],
            )
        )
        self.transactions[evse_id] = tx
        self.tx_started[evse_id] = now
        return tx

    async def stop_transaction(self, evse_id: int, reason: str = "Local") -> None:
        now = self.clock()
        _, _, energy, _ = self._sampled(evse_id, now)
        tx = self.transactions.pop(evse_id)
        self.tx_started.pop(evse_id, None)
        self._seq = getattr(self, "_seq", 0) + 1
        await self.call(
            call201.TransactionEvent(
                event_type="Ended",
                timestamp=now.isoformat().replace("+00:00", "Z"),
                trigger_reason="StopAuthorized",
                seq_no=self._seq,
                transaction_info={"transactionId": tx, "stoppedReason": reason},
                evse={"id": evse_id, "connectorId": 1},
                meter_value=[
                    _meter201(now, [("Energy.Active.Import.Register", "Wh", energy, None)])
                ],
            )
        )

    async def send_meter_values(self, evse_id: int) -> Decimal:
        """MeterValues of what the EV on ``evse_id`` draws now; returns the amperes."""
        now = self.clock()
        amps, watts, energy, phases = self._sampled(evse_id, now)
        samples: list[tuple[str, str, Decimal, str | None]] = [
            ("Energy.Active.Import.Register", "Wh", energy, None),
            ("Power.Active.Import", "W", watts, None),
        ]
        samples += [("Current.Import", "A", amps, f"L{n}") for n in range(1, phases + 1)]
        await self.call(call201.MeterValues(evse_id=evse_id, meter_value=[_meter201(now, samples)]))
        return amps


class Charger21(Charger201):
    """An OCPP 2.1 charger: the 2.0.1 one, whose messages 2.1 keeps (the library builds
    and validates them against the 2.1 schemas and reads answers as 2.1 results)."""

    _call = call21
    _call_result = result21
    _ocpp_version = "2.1"

    # The commands the 2.0.1 simulator leaves unanswered (NotImplemented), so that a test
    # can send a 2.1 charger every remote command.

    @on("ChangeAvailability")
    def on_change_availability(self, **kwargs: Any) -> Any:
        self.received.append(("ChangeAvailability", kwargs))
        return result21.ChangeAvailability(status="Accepted")

    @on("SetVariables")
    def on_set_variables(self, **kwargs: Any) -> Any:
        self.received.append(("SetVariables", kwargs))
        return result21.SetVariables(
            set_variable_result=[
                {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]}
                for d in kwargs["set_variable_data"]
            ]
        )

    @on("TriggerMessage")
    def on_trigger_message(self, **kwargs: Any) -> Any:
        self.received.append(("TriggerMessage", kwargs))
        return result21.TriggerMessage(status="Accepted")

    @on("CancelReservation")
    def on_cancel_reservation(self, **kwargs: Any) -> Any:
        self.received.append(("CancelReservation", kwargs))
        return result21.CancelReservation(status="Accepted")

    @on("CostUpdated")
    def on_cost_updated(self, **kwargs: Any) -> Any:
        self.received.append(("CostUpdated", kwargs))
        return result21.CostUpdated()


_SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}
_CHARGER: dict[str, type[Any]] = {"1.6": Charger16, "2.0.1": Charger201, "2.1": Charger21}


def _floats(value: Any) -> Any:
    """A received payload (snake_case) with its Decimals as floats, to send back."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def _meter201(at: datetime, samples: list[tuple[str, str, Decimal, str | None]]) -> dict[str, Any]:
    return {
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "sampledValue": [
            {
                "value": float(value.quantize(_TENTH)),
                "measurand": measurand,
                "unitOfMeasure": {"unit": unit},
                **({"phase": phase} if phase else {}),
            }
            for measurand, unit, value, phase in samples
        ],
    }


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
            protocols=(_SUBPROTOCOL[version],),
            headers=headers,
            ssl=ssl,
            autoping=True,
        )
        adapter = WsAdapter(ws)
        cp: Any = _CHARGER[version](cp_id, adapter)
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


async def boot(cp: Any, version: str) -> None:
    """BootNotification from a simulated charger of ``version``, answered Accepted."""
    if version == "1.6":
        answer = await cp.call(
            call16.BootNotification(charge_point_vendor="Acme", charge_point_model="S1")
        )
    else:
        answer = await cp.call(
            call201.BootNotification(
                charging_station={"vendorName": "Acme", "model": "S1"}, reason="PowerUp"
            )
        )
    assert answer.status == "Accepted"
