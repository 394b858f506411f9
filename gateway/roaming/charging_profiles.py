"""The ChargingProfiles Receiver: an eMSP's (or SCSP's) smart charging of its driver's
session, carried out on the session's charger (OCPI 2.2.1 mod_charging_profiles).

Each request is answered at once with a ChargingProfileResponse, as mod_commands does:

* ``UNKNOWN_SESSION``: no such session of this partner (on a hub platform: of the
  requesting party), or the session has ended;
* ``REJECTED``: the session has no transaction yet (PENDING), its charger is offline,
  or the profile cannot be carried out (no period, periods out of order, a negative
  limit);
* ``ACCEPTED``: the request goes to the charger.

Then the charger's answer is POSTed to the request's ``response_url`` through the
durable outbox (delivered after an outage of the partner): a ChargingProfileResult
(PUT), an ActiveChargingProfileResult (GET) or a ClearProfileResult (DELETE). A charger
that refuses, cannot take the command or goes away gives ``REJECTED``; a charger that
does not answer within the call timeout gives no result at all, since it may still
have applied the request: the ``timeout`` of the response tells the eMSP how long to
wait (mod_charging_profiles, ChargingProfileResponse: "When the Result is not received
within this timeout, the eMSP can assume that the message might never be sent").

In OCPP terms (the conversions are the pure functions below; OCPI objects never reach
the domain):

* PUT: a TxProfile for the session's transaction on its EVSE, with one profile id per
  session (:func:`profile_number`), so that a second PUT replaces the first; at stack
  level :data:`EMSP_STACK_LEVEL`. OCPI's ``start_date_time`` makes it Absolute, its
  absence Relative ("relative to start of charging").
* GET: GetCompositeSchedule of the EVSE for ``duration`` seconds, in the charger's
  unit; the schedule becomes the ActiveChargingProfile (limits rounded down to the one
  decimal OCPI accepts). A charger that accepts but reports no schedule: ``UNKNOWN``.
* DELETE: ClearChargingProfile of the session's profile id (a charger that holds none
  answers Unknown: ``UNKNOWN``).

A PUT answered ACCEPTED is remembered by transaction: from then on, when the session's
active profile changes for another reason (site load management), the eMSP is sent the
new ActiveChargingProfile by PUT on its Sender interface
(:meth:`ChargingProfilesReceiver.active_profile_changed`), as the spec requires of the
Receiver for "any session where the Sender has ... successfully called the charging
profile Receiver PUT interface".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from pydantic import BaseModel

from gateway.domain import commands as cmd
from gateway.domain.charging import (
    ChargingProfile,
    ChargingSchedule,
    CompositeSchedule,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    SchedulePeriod,
)
from gateway.domain.clock import Clock
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
)
from gateway.domain.models import Transaction
from gateway.roaming.outbox import routing_meta
from gateway.roaming.partners import PartnerKind, PartnerRegistry, partner_of
from gateway.roaming.pushes import PushPlanner
from gateway.storage.base import Document, Store
from ocpi.server import OcpiRequestContext
from ocpi.transport import PartyId, join_url, json_loads
from ocpi.v221 import (
    ActiveChargingProfile,
    ActiveChargingProfileResult,
    ChargingProfileResponse,
    ChargingProfileResult,
    ClearProfileResult,
    SetChargingProfile,
)
from ocpi.v221 import ChargingProfile as OcpiChargingProfile
from ocpi.v221.chargingprofiles import ChargingProfilePeriod
from ocpi.v221.enums import (
    ChargingProfileResponseType,
    ChargingProfileResultType,
    ChargingRateUnit,
)

log = logging.getLogger(__name__)

MODULE = "chargingprofiles"

EMSP_STACK_LEVEL = 1
"""The stack level of the TxProfiles set for eMSPs. OCPP replaces a profile of the same
purpose and stack level (1.6 SetChargingProfile), and of one purpose the highest stack
level in force is the one that counts: whoever else sends TxProfiles (site load
management) picks another level, knowing which of the two should prevail."""

ACTIVE_PROFILE_DURATION = 900
"""Seconds of ActiveChargingProfile sent on a change the eMSP did not ask for
(mod_charging_profiles, Sender PUT: "a useful relevant duration ... between 5 and 60
minutes")."""

# What records that a Sender has set a profile on a session (by transaction), beside
# the sessions and under an owner of its own, so that session listings never show it.
_SENDER_OWNER = "chargingprofile-sender"

_TENTH = Decimal("0.1")


class UnusableProfile(ValueError):
    """An OCPI ChargingProfile no charger could take (answered REJECTED)."""


# -- conversions (pure) ---------------------------------------------------------------


def profile_number(session_id: str) -> int:
    """The OCPP chargingProfileId of the eMSP's profile on a session: stable, so that a
    new PUT replaces the previous profile and DELETE finds it; positive 31 bits."""
    return (zlib.crc32(f"ocpi-session:{session_id.upper()}".encode()) & 0x7FFFFFFF) or 1


def tx_profile(
    profile: OcpiChargingProfile,
    *,
    profile_id: int,
    transaction_id: str,
    stack_level: int = EMSP_STACK_LEVEL,
) -> ChargingProfile:
    """The OCPI profile of a session as the TxProfile of its transaction. Raises
    :class:`UnusableProfile` for what OCPP cannot express: no period, a first period
    not at 0, periods not in increasing order, a negative limit or duration."""
    periods = profile.charging_profile_period or []
    if not periods:
        raise UnusableProfile("charging_profile_period: at least one period is needed")
    if periods[0].start_period != 0:
        # OCPP: the first period of a schedule starts at 0 (2.0.1 SetChargingProfile).
        raise UnusableProfile("charging_profile_period[0].start_period: should be 0")
    for before, after in itertools.pairwise(periods):
        if after.start_period <= before.start_period:
            raise UnusableProfile("charging_profile_period: start_period should increase")
    if any(p.limit < 0 for p in periods):
        raise UnusableProfile("charging_profile_period: limit should not be negative")
    if profile.duration is not None and profile.duration < 0:
        raise UnusableProfile("duration: should not be negative")
    if profile.min_charging_rate is not None and profile.min_charging_rate < 0:
        raise UnusableProfile("min_charging_rate: should not be negative")
    schedule = ChargingSchedule(
        unit=RateUnit(str(profile.charging_rate_unit)),
        periods=tuple(SchedulePeriod(p.start_period, p.limit) for p in periods),
        duration=profile.duration,
        start_schedule=profile.start_date_time,
        min_charging_rate=profile.min_charging_rate,
    )
    return ChargingProfile(
        id=profile_id,
        stack_level=stack_level,
        purpose=ProfilePurpose.TX,
        # "If absent the profile will be relative to start of charging."
        kind=ProfileKind.ABSOLUTE if profile.start_date_time is not None else ProfileKind.RELATIVE,
        schedule=schedule,
        transaction_id=transaction_id,
    )


def ocpi_limit(value: Decimal) -> Decimal:
    """A limit as OCPI takes it: "at most one digit fraction", rounded down (never more
    than the charger allows)."""
    tenths = value.quantize(_TENTH, rounding=ROUND_FLOOR)
    whole = tenths.to_integral_value()
    return whole if tenths == whole else tenths


def distinct_periods(periods: Sequence[SchedulePeriod]) -> list[SchedulePeriod]:
    """Periods in order of ``start_period``, one per start: of several a charger reports
    at the same second (a limit that changed within it), the last is the one in force
    from then on; "The value of StartPeriod also defines the stop time of the previous
    period", so OCPI's periods have distinct starts."""
    by_start: dict[int, SchedulePeriod] = {}
    for period in periods:
        by_start[period.start_period] = period
    return [by_start[start] for start in sorted(by_start)]


def ocpi_profile(schedule: ChargingSchedule) -> OcpiChargingProfile:
    """A domain schedule as an OCPI ChargingProfile (its periods from
    ``start_schedule`` when given, else from the start of charging)."""
    return OcpiChargingProfile(
        start_date_time=schedule.start_schedule,
        duration=schedule.duration,
        charging_rate_unit=ChargingRateUnit(str(schedule.unit)),
        min_charging_rate=(
            ocpi_limit(schedule.min_charging_rate)
            if schedule.min_charging_rate is not None
            else None
        ),
        charging_profile_period=[
            ChargingProfilePeriod(start_period=p.start_period, limit=ocpi_limit(p.limit))
            for p in distinct_periods(schedule.periods)
        ],
    )


def active_profile(
    schedule: ChargingSchedule, start: datetime | None, now: datetime
) -> ActiveChargingProfile:
    """The ActiveChargingProfile of a schedule the charger computed from ``start`` (or
    one the gateway set, from ``now``): "All time measurements within the profile are
    relative to this timestamp", so the inner profile has no start of its own."""
    begin = start or schedule.start_schedule or now
    inner = ocpi_profile(schedule).model_copy(update={"start_date_time": None})
    return ActiveChargingProfile(start_date_time=begin, charging_profile=inner)


def active_from_composite(composite: CompositeSchedule, now: datetime) -> ActiveChargingProfile:
    """What a charger answered to GetCompositeSchedule, as an ActiveChargingProfile."""
    return active_profile(composite.schedule, composite.start, now)


def set_result(answer: cmd.CommandResult) -> ChargingProfileResult:
    accepted = answer.status in (cmd.CommandStatus.ACCEPTED, cmd.CommandStatus.SCHEDULED)
    result = ChargingProfileResultType.ACCEPTED if accepted else ChargingProfileResultType.REJECTED
    return ChargingProfileResult(result=result)


def clear_result(answer: cmd.CommandResult) -> ClearProfileResult:
    if answer.status is cmd.CommandStatus.ACCEPTED:
        return ClearProfileResult(result=ChargingProfileResultType.ACCEPTED)
    if answer.status is cmd.CommandStatus.UNKNOWN:
        # OCPP ClearChargingProfile Unknown: "No Charging Profile(s) were found matching".
        return ClearProfileResult(result=ChargingProfileResultType.UNKNOWN)
    return ClearProfileResult(result=ChargingProfileResultType.REJECTED)


def get_result(answer: cmd.CommandResult, now: datetime) -> ActiveChargingProfileResult:
    if answer.status is not cmd.CommandStatus.ACCEPTED:
        return ActiveChargingProfileResult(result=ChargingProfileResultType.REJECTED)
    if answer.schedule is None:
        return ActiveChargingProfileResult(result=ChargingProfileResultType.UNKNOWN)
    return ActiveChargingProfileResult(
        result=ChargingProfileResultType.ACCEPTED,
        profile=active_from_composite(answer.schedule, now),
    )


# -- the Receiver --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    """A session the request may act on: its transaction (and charger), its parties."""

    session_id: str
    partner_id: str
    tx: Transaction
    cpo: PartyId
    emsp: PartyId


class ChargingProfilesReceiver:
    """The CPO's ChargingProfiles Receiver (:class:`ocpi.server.ChargingProfilesReceiverProvider`).

    ``sender`` is the one command path to chargers (``app[ROUTER]``); ``timeout`` the
    seconds a charger has to answer (the responses' ``timeout``)."""

    def __init__(
        self,
        store: Store,
        sender: cmd.CommandSender,
        planner: PushPlanner,
        registry: PartnerRegistry,
        clock: Clock,
        notify: Callable[[], None],
        *,
        timeout: int,
        next_request_id: Callable[[], int],
        stack_level: int = EMSP_STACK_LEVEL,
        min_interval: float = 0.0,
    ) -> None:
        self._store = store
        self._sender = sender
        self._planner = planner
        self._registry = registry
        self._clock = clock
        self._notify = notify
        self._timeout = timeout
        self._next_request_id = next_request_id
        self._stack_level = stack_level
        self._min_interval = timedelta(seconds=min_interval)
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _response(self, result: ChargingProfileResponseType) -> ChargingProfileResponse:
        return ChargingProfileResponse(result=result, timeout=self._timeout)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the three requests ------------------------------------------------------------

    async def set_charging_profile(
        self, context: OcpiRequestContext, session_id: str, request: SetChargingProfile
    ) -> ChargingProfileResponse:
        target = await self._target(context, session_id)
        if isinstance(target, ChargingProfileResponse):
            return target
        try:
            profile = tx_profile(
                request.charging_profile,
                profile_id=profile_number(target.session_id),
                transaction_id=target.tx.ocpp_id,
                stack_level=self._stack_level,
            )
        except UnusableProfile as exc:
            log.info("charging profile for session %s refused: %s", session_id, exc)
            return self._response(ChargingProfileResponseType.REJECTED)
        # TOO_OFTEN (ChargingProfileResponseType): a charger on a cellular link cannot
        # take a new profile every second. The last accepted PUT's time is the record
        # below, in storage, so the bound holds whichever process the eMSP reaches.
        now = self._clock.now()
        if self._min_interval:
            last = await self._store.sessions.get(_sender_key(target.tx.id))
            if last is not None and now - last.last_updated < self._min_interval:
                log.info("charging profile for session %s refused: too often", session_id)
                return self._response(ChargingProfileResponseType.TOO_OFTEN)
        # mod_charging_profiles, Sender PUT: once a Sender has successfully called PUT
        # for a session, it is kept informed of changes of the session's active profile.
        await self._store.sessions.put(
            Document(
                _sender_key(target.tx.id),
                {
                    "session_id": target.session_id,
                    "partner_id": target.partner_id,
                    "cpo": str(target.cpo),
                    "emsp": str(target.emsp),
                },
                now,
                owner=f"{_SENDER_OWNER}:{target.partner_id}",
            )
        )
        command = cmd.SetChargingProfile(evse_id=target.tx.evse_id, profile=profile)
        return self._forward(
            context, request.response_url, target, command, lambda a: set_result(a)
        )

    async def get_active_charging_profile(
        self, context: OcpiRequestContext, session_id: str, duration: int, response_url: str
    ) -> ChargingProfileResponse:
        target = await self._target(context, session_id)
        if isinstance(target, ChargingProfileResponse):
            return target
        command = cmd.GetCompositeSchedule(evse_id=target.tx.evse_id, duration=duration)
        return self._forward(
            context, response_url, target, command, lambda a: get_result(a, self._clock.now())
        )

    async def clear_charging_profile(
        self, context: OcpiRequestContext, session_id: str, response_url: str
    ) -> ChargingProfileResponse:
        target = await self._target(context, session_id)
        if isinstance(target, ChargingProfileResponse):
            return target
        command = cmd.ClearChargingProfile(profile_id=profile_number(target.session_id))
        return self._forward(context, response_url, target, command, clear_result)

    # -- site load management's hook -------------------------------------------------

    async def active_profile_changed(
        self, transaction_id: str, schedule: ChargingSchedule | None = None
    ) -> bool:
        """Tell the eMSP of a session its new ActiveChargingProfile, after something
        other than the eMSP changed what the session may draw (site load management,
        once the charger has accepted the new limit).

        ``transaction_id`` is the gateway's :attr:`Transaction.id`. The charger is asked
        for its composite schedule of the next :data:`ACTIVE_PROFILE_DURATION` seconds
        (the profile "as calculated by the EVSE": the eMSP's own profile and the new
        limit combined); when it cannot tell, ``schedule`` (what was sent, relative to
        now, e.g. ``constant_limit(...).schedule``) is sent instead, and without one
        nothing is. The ActiveChargingProfile goes by PUT to
        ``{chargingprofiles SENDER endpoint}/{session_id}`` of the eMSP through the
        durable outbox, in order per session.

        Only for sessions on which the eMSP has successfully set a profile (the spec
        forbids it otherwise), that are still ACTIVE, and whose eMSP lists a
        chargingprofiles SENDER endpoint. Returns at once (the charger is asked in the
        background): True when an update is on its way, False when nobody is to be told.
        """
        doc = await self._store.sessions.get(_sender_key(transaction_id))
        if doc is None:
            return False
        session = await self._store.sessions.get(str(doc.data["session_id"]))
        if session is None or session.data.get("status") != "ACTIVE":
            return False
        tx = await self._store.transactions.get(transaction_id)
        if tx is None or tx.stopped_at is not None:
            return False
        partner = self._registry.get(str(doc.data["partner_id"]))
        url = partner.endpoint(MODULE, "SENDER") if partner is not None else None
        if not url:
            log.info(
                "active profile of session %s changed; its eMSP has no chargingprofiles "
                "Sender interface to tell",
                doc.data["session_id"],
            )
            return False
        self._spawn(
            self._push_active(doc.data, tx, join_url(url, str(doc.data["session_id"])), schedule),
            name=f"ocpi-active-profile-{transaction_id}",
        )
        return True

    async def charger_limits_changed(self, charger_id: str) -> int:
        """:meth:`active_profile_changed` for every transaction in progress on a charger
        (after a station-wide limit changed, a ChargingStationMaxProfile on EVSE 0), each
        told the charger's composite schedule of its EVSE. Returns how many eMSPs are to
        be told."""
        told = 0
        for tx in await self._store.transactions.active(charger_id):
            if await self.active_profile_changed(tx.id):
                told += 1
        return told

    async def _push_active(
        self,
        record: dict[str, Any],
        tx: Transaction,
        url: str,
        schedule: ChargingSchedule | None,
    ) -> None:
        now = self._clock.now()
        active: ActiveChargingProfile | None = None
        try:
            answer = await self._sender.send(
                tx.charger_id,
                cmd.GetCompositeSchedule(evse_id=tx.evse_id, duration=ACTIVE_PROFILE_DURATION),
            )
            if answer.status is cmd.CommandStatus.ACCEPTED and answer.schedule is not None:
                active = active_from_composite(answer.schedule, now)
        except (ChargerNotConnected, ChargerRejected, ChargerTimeout, CommandNotSupported) as exc:
            log.info("composite schedule of %s: %s", tx.charger_id, exc)
        except Exception:
            log.exception("composite schedule of %s failed", tx.charger_id)
        if active is None and schedule is not None:
            active = active_profile(schedule, None, now)
        if active is None:
            log.warning(
                "active profile of session %s changed but is not known: the eMSP is not told",
                record["session_id"],
            )
            return
        item = self._planner.item(
            str(record["partner_id"]),
            MODULE,
            "PUT",
            url,
            active,
            f"active:{record['session_id']}",
            {"kind": "active_charging_profile"},
            from_party=PartyId.parse(str(record["cpo"])),
            to_party=PartyId.parse(str(record["emsp"])),
        )
        await self._store.outbox.enqueue([item])
        self._notify()

    # -- shared --------------------------------------------------------------------------

    async def _target(
        self, context: OcpiRequestContext, session_id: str
    ) -> _Target | ChargingProfileResponse:
        partner = partner_of(context.party)
        doc = await self._store.sessions.get(session_id)
        if (
            doc is None
            or "session" not in doc.data  # an index record beside the sessions
            or doc.data.get("partner_id") != partner.id
        ):
            return self._response(ChargingProfileResponseType.UNKNOWN_SESSION)
        session = json_loads(doc.data["session"])
        token = session["cdr_token"]
        emsp = PartyId(str(token["country_code"]), str(token["party_id"]))
        if (
            partner.kind is PartnerKind.HUB
            and context.from_party is not None
            and context.from_party != emsp
        ):
            # A platform hosts several eMSPs: each reaches the sessions of its own drivers.
            return self._response(ChargingProfileResponseType.UNKNOWN_SESSION)
        if doc.data.get("status") in ("COMPLETED", "INVALID"):
            return self._response(ChargingProfileResponseType.UNKNOWN_SESSION)
        tx_id = doc.data.get("tx_id")
        tx = await self._store.transactions.get(str(tx_id)) if tx_id else None
        if tx is None:
            # PENDING: no transaction to give a profile to yet.
            return self._response(ChargingProfileResponseType.REJECTED)
        if tx.stopped_at is not None:
            return self._response(ChargingProfileResponseType.UNKNOWN_SESSION)
        state = await self._store.charger_states.get(tx.charger_id)
        if state is None or not state.connected:
            return self._response(ChargingProfileResponseType.REJECTED)
        cpo = PartyId(str(session["country_code"]), str(session["party_id"]))
        return _Target(doc.key, partner.id, tx, cpo, emsp)

    def _forward(
        self,
        context: OcpiRequestContext,
        response_url: str,
        target: _Target,
        command: cmd.Command,
        result_of: Callable[[cmd.CommandResult], BaseModel],
    ) -> ChargingProfileResponse:
        # The result goes back to whoever sent the request (a hub platform may host
        # several eMSPs): its OCPI-from is the result's OCPI-to; without routing headers,
        # from the session's CPO to its driver's eMSP.
        routing = routing_meta(
            from_party=context.to_party or target.cpo, to_party=context.from_party or target.emsp
        )
        self._spawn(
            self._run(target, response_url, command, result_of, routing),
            name=f"ocpi-chargingprofile-{type(command).__name__}-{target.tx.charger_id}",
        )
        return self._response(ChargingProfileResponseType.ACCEPTED)

    async def _run(
        self,
        target: _Target,
        response_url: str,
        command: cmd.Command,
        result_of: Callable[[cmd.CommandResult], BaseModel],
        routing: dict[str, Any],
    ) -> None:
        charger_id = target.tx.charger_id
        name = type(command).__name__
        try:
            answer = await self._sender.send(charger_id, command)
        except ChargerTimeout:
            log.warning("%s to %s: no answer in time; no result is sent", name, charger_id)
            return
        except (ChargerNotConnected, ChargerRejected, CommandNotSupported) as exc:
            log.info("%s to %s: %s", name, charger_id, exc)
            answer = cmd.CommandResult(cmd.CommandStatus.REJECTED)
        except Exception:
            log.exception("%s to %s failed", name, charger_id)
            answer = cmd.CommandResult(cmd.CommandStatus.REJECTED)
        body = result_of(answer)
        item = self._planner.item(
            target.partner_id,
            MODULE,
            "POST",
            response_url,
            body,
            f"{name}:{target.session_id}:{self._next_request_id()}",
            meta={"kind": "chargingprofile_result"} | routing,
        )
        await self._store.outbox.enqueue([item])
        self._notify()


def _sender_key(transaction_id: str) -> str:
    return f"{_SENDER_OWNER}:{transaction_id}"
