"""Charging profiles the operator sets through the admin API: stored, sent, sent again.

Chargers lose their profiles (a reboot, a replaced controller), so every profile the
operator sets is kept in ``Store.charging_profiles`` with what was asked, when, and the
charger's last answer, and is sent again whenever the charger boots or comes back
online (the domain events ``ChargerBooted`` / ``ChargerOnline``). A profile set while
the charger is offline is stored and sent when it comes; one removed while it is
offline is cleared on the charger when it comes (a tombstone until then). A TxProfile
dies with its transaction (OCPP 1.6 section 3.13.1; 2.0.1 K01.FR.04), so it is dropped
when the transaction ends and never sent again.

Nothing here knows OCPP: the commands go through the one command path
(``CommandSender``: the cluster router), which also reaches a charger connected to
another process.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from gateway.domain.charging import (
    ChargingProfile,
    ChargingSchedule,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
)
from gateway.domain.clock import Clock, IdFactory, format_timestamp, parse_timestamp
from gateway.domain.commands import (
    ClearChargingProfile,
    CommandResult,
    CommandSender,
    CommandStatus,
    SetChargingProfile,
)
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
    DomainError,
    Unavailable,
)
from gateway.domain.events import (
    ChargerBooted,
    ChargerOffline,
    ChargerOnline,
    Event,
    TransactionEnded,
)
from gateway.storage.base import Document, DocumentStore, TransactionStore

log = logging.getLogger(__name__)

# A charger that connects usually sends BootNotification at once, and a central system
# should not send it commands before answering that (1.6 section 4.2, 2.0.1 B01): after
# a connect the profiles wait this long for a boot (which sends them at once) and go
# without one after it (a charger that only reconnected boots no more).
ONLINE_SETTLE = 2.0
_PAGE = 100
_ORDER = {
    ProfilePurpose.STATION_MAX: 0,
    ProfilePurpose.TX_DEFAULT: 1,
    ProfilePurpose.TX: 2,
    ProfilePurpose.EXTERNAL_CONSTRAINTS: 3,
}


class ChargerAnswer(enum.StrEnum):
    """The charger's last answer to a stored profile, or why there is none."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    NOT_SUPPORTED = "NotSupported"  # the charger answered NotSupported (1.6)
    NOT_SENT = "NotSent"  # the charger was offline: sent when it comes
    TIMEOUT = "Timeout"  # no answer in time: sent again when it comes back
    CALL_ERROR = "CallError"  # it answered with a CALLERROR (detail says which)
    UNSUPPORTED = "Unsupported"  # its OCPP version cannot carry it (detail says why)


_ANSWERS = {
    CommandStatus.ACCEPTED: ChargerAnswer.ACCEPTED,
    CommandStatus.REJECTED: ChargerAnswer.REJECTED,
    CommandStatus.NOT_SUPPORTED: ChargerAnswer.NOT_SUPPORTED,
}


@dataclass(frozen=True, slots=True)
class StoredProfile:
    charger_id: str
    evse_id: int
    profile: ChargingProfile
    asked_at: datetime
    revision: str  # a new one for every PUT: a late answer never lands on a newer profile
    answer: ChargerAnswer = ChargerAnswer.NOT_SENT
    answered_at: datetime | None = None
    detail: str | None = None
    removed: bool = False  # a tombstone: to be cleared on the charger when it comes

    def view(self) -> dict[str, Any]:
        """What the admin API shows: what was asked beside what the charger answered."""
        return {
            "profile_id": self.profile.id,
            "evse_id": self.evse_id,
            "asked": profile_to_json(self.profile),
            "asked_at": self.asked_at,
            "charger": {
                "status": self.answer,
                "answered_at": self.answered_at,
                "detail": self.detail,
            },
        }


# -- the JSON form (admin API bodies and stored documents) ----------------------------


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def profile_to_json(profile: ChargingProfile) -> dict[str, Any]:
    """The profile in the admin API's JSON form (README "Smart charging"); limits as
    decimal strings, times RFC 3339."""
    schedule = profile.schedule
    return {
        "stack_level": profile.stack_level,
        "purpose": profile.purpose.value,
        "kind": profile.kind.value,
        "recurrency": None if profile.recurrency is None else profile.recurrency.value,
        "valid_from": _time(profile.valid_from),
        "valid_to": _time(profile.valid_to),
        "transaction_id": profile.transaction_id,
        "schedule": {
            "unit": schedule.unit.value,
            "start_schedule": _time(schedule.start_schedule),
            "duration": schedule.duration,
            "min_charging_rate": _dec(schedule.min_charging_rate),
            "periods": [
                {
                    "start_period": p.start_period,
                    "limit": str(p.limit),
                    "number_phases": p.number_phases,
                }
                for p in schedule.periods
            ],
        },
    }


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else parse_timestamp(str(value))


def profile_from_json(profile_id: int, data: dict[str, Any]) -> ChargingProfile:
    """The JSON form back into the domain (as :func:`profile_to_json` writes it)."""
    schedule = data["schedule"]
    rate = schedule.get("min_charging_rate")
    recurrency = data.get("recurrency")
    return ChargingProfile(
        id=profile_id,
        stack_level=int(data["stack_level"]),
        purpose=ProfilePurpose(data["purpose"]),
        kind=ProfileKind(data["kind"]),
        schedule=ChargingSchedule(
            unit=RateUnit(schedule["unit"]),
            periods=tuple(
                SchedulePeriod(
                    int(p["start_period"]), Decimal(str(p["limit"])), p.get("number_phases")
                )
                for p in schedule["periods"]
            ),
            duration=schedule.get("duration"),
            start_schedule=_opt_time(schedule.get("start_schedule")),
            min_charging_rate=None if rate is None else Decimal(str(rate)),
        ),
        recurrency=None if recurrency is None else RecurrencyKind(recurrency),
        valid_from=_opt_time(data.get("valid_from")),
        valid_to=_opt_time(data.get("valid_to")),
        transaction_id=data.get("transaction_id"),
    )


def _key(charger_id: str, profile_id: int) -> str:
    # The profile id first: digits, so the first "@" ends it whatever the charger id holds.
    return f"{profile_id}@{charger_id}"


def _to_doc(stored: StoredProfile) -> Document:
    return Document(
        key=_key(stored.charger_id, stored.profile.id),
        owner=stored.charger_id,
        last_updated=stored.answered_at or stored.asked_at,
        data={
            "charger_id": stored.charger_id,
            "evse_id": stored.evse_id,
            "profile_id": stored.profile.id,
            "profile": profile_to_json(stored.profile),
            "asked_at": format_timestamp(stored.asked_at),
            "revision": stored.revision,
            "answer": stored.answer.value,
            "answered_at": _time(stored.answered_at),
            "detail": stored.detail,
            "removed": stored.removed,
        },
    )


def _from_doc(doc: Document) -> StoredProfile:
    d = doc.data
    return StoredProfile(
        charger_id=d["charger_id"],
        evse_id=int(d["evse_id"]),
        profile=profile_from_json(int(d["profile_id"]), d["profile"]),
        asked_at=parse_timestamp(d["asked_at"]),
        revision=d["revision"],
        answer=ChargerAnswer(d["answer"]),
        answered_at=_opt_time(d.get("answered_at")),
        detail=d.get("detail"),
        removed=bool(d.get("removed")),
    )


# -- the service ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """A profile stored and (perhaps) sent: the record, and the domain error the send
    raised, if any (the admin API maps it to its status code)."""

    stored: StoredProfile
    error: DomainError | None = None


class OperatorProfiles:
    """The operator's profiles per charger; subscribe :meth:`on_event` to the bus."""

    def __init__(
        self,
        documents: DocumentStore,
        transactions: TransactionStore,
        sender: CommandSender,
        clock: Clock,
        ids: IdFactory,
        *,
        online_settle: float = ONLINE_SETTLE,
    ) -> None:
        self._docs = documents
        self._transactions = transactions
        self._sender = sender
        self._clock = clock
        self._ids = ids
        self._settle = online_settle
        # Per charger while someone holds or waits for it: the lock, and how many do
        # (dropped with the last, not kept for every charger ever seen).
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Per charger: the re-send waiting to begin (after the settle time, or the lock).
        self._waiting: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- reading ---------------------------------------------------------------

    async def list(self, charger_id: str, *, removed: bool = False) -> list[StoredProfile]:
        """The charger's stored profiles (tombstones too with ``removed``), in the order
        they are sent: station maximum, defaults, transactions; by stack level, id."""
        out: list[StoredProfile] = []
        offset = 0
        while True:
            docs, total = await self._docs.list(owner=charger_id, offset=offset, limit=_PAGE)
            out.extend(_from_doc(d) for d in docs)
            offset += len(docs)
            if not docs or offset >= total:
                break
        if not removed:
            out = [s for s in out if not s.removed]
        return sorted(
            out,
            key=lambda s: (
                _ORDER[s.profile.purpose],
                s.evse_id,
                s.profile.stack_level,
                s.profile.id,
            ),
        )

    async def get(self, charger_id: str, profile_id: int) -> StoredProfile | None:
        doc = await self._docs.get(_key(charger_id, profile_id))
        if doc is None:
            return None
        stored = _from_doc(doc)
        return None if stored.removed else stored

    # -- the operator's changes ------------------------------------------------

    async def set(self, charger_id: str, evse_id: int, profile: ChargingProfile) -> SendOutcome:
        """Store the profile (replacing one with its id) and send it. Offline, it stays
        NotSent and goes when the charger comes; a profile its OCPP version cannot
        carry is not kept (the previous one with that id, if any, is put back)."""
        previous = await self._docs.get(_key(charger_id, profile.id))
        stored = StoredProfile(charger_id, evse_id, profile, self._clock.now(), self._ids.new_id())
        await self._docs.put(_to_doc(stored))
        async with self._lock(charger_id):
            outcome = await self._send(stored)
        if isinstance(outcome.error, CommandNotSupported):
            if previous is not None:
                await self._docs.put(previous)
            else:
                await self._docs.delete(_key(charger_id, profile.id))
        return outcome

    async def remove(self, charger_id: str, profile_id: int) -> tuple[bool, CommandResult | None]:
        """Forget a stored profile and clear it on the charger: (whether it was stored,
        the charger's answer; None when offline: it is cleared when the charger comes)."""
        key = _key(charger_id, profile_id)
        doc = await self._docs.get(key)
        stored = None if doc is None else _from_doc(doc)
        known = stored is not None and not stored.removed
        try:
            result = await self._sender.send(
                charger_id, ClearChargingProfile(profile_id=profile_id)
            )
        except ChargerNotConnected:
            if stored is not None:
                await self._docs.put(_to_doc(replace(stored, removed=True)))
            return known, None
        except BaseException:
            if stored is not None:
                await self._docs.put(_to_doc(replace(stored, removed=True)))
            raise
        await self._docs.delete(key)
        return known, result

    async def remove_matching(
        self,
        charger_id: str,
        *,
        evse_id: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> tuple[builtins.list[int], CommandResult | None]:
        """Forget the stored profiles matching every criterion given and clear the same
        on the charger (offline: each is cleared by its id when it comes)."""
        matching = [
            s
            for s in await self.list(charger_id)
            if (evse_id is None or s.evse_id == evse_id)
            and (purpose is None or s.profile.purpose is purpose)
            and (stack_level is None or s.profile.stack_level == stack_level)
        ]
        for stored in matching:
            await self._docs.put(_to_doc(replace(stored, removed=True)))
        command = ClearChargingProfile(evse_id=evse_id, purpose=purpose, stack_level=stack_level)
        try:
            result = await self._sender.send(charger_id, command)
        except ChargerNotConnected:
            return [s.profile.id for s in matching], None
        for stored in matching:
            await self._docs.delete(_key(charger_id, stored.profile.id))
        return [s.profile.id for s in matching], result

    # -- sending ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lock(self, charger_id: str) -> AsyncIterator[None]:
        """The charger's lock, held: one change or re-send at a time per charger."""
        lock, users = self._locks.get(charger_id) or (asyncio.Lock(), 0)
        self._locks[charger_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[charger_id]
            if users > 1:
                self._locks[charger_id] = (lock, users - 1)
            else:
                del self._locks[charger_id]

    async def _send(self, stored: StoredProfile) -> SendOutcome:
        command = SetChargingProfile(stored.evse_id, stored.profile)
        error: DomainError | None = None
        detail: str | None = None
        try:
            result = await self._sender.send(stored.charger_id, command)
        except ChargerNotConnected as exc:
            return SendOutcome(stored, exc)  # stays NotSent: sent when the charger comes
        except ChargerTimeout as exc:
            answer, error, detail = ChargerAnswer.TIMEOUT, exc, str(exc)
        except ChargerRejected as exc:
            answer, error, detail = ChargerAnswer.CALL_ERROR, exc, str(exc)
        except CommandNotSupported as exc:
            answer, error, detail = ChargerAnswer.UNSUPPORTED, exc, str(exc)
        else:
            answer = _ANSWERS.get(result.status, ChargerAnswer.REJECTED)
        done = replace(stored, answer=answer, answered_at=self._clock.now(), detail=detail)
        # Recorded unless the operator replaced or removed the profile meanwhile.
        current = await self._docs.get(_key(stored.charger_id, stored.profile.id))
        if (
            current is not None
            and current.data.get("revision") == stored.revision
            and not current.data.get("removed")
        ):
            await self._docs.put(_to_doc(done))
        return SendOutcome(done, error)

    async def resend(self, charger_id: str) -> None:
        """Send the charger everything stored for it: the clears it missed, then its
        profiles. Stops when it goes offline again (the next connect starts over)."""
        async with self._lock(charger_id):
            for stored in await self.list(charger_id, removed=True):
                if stored.removed:
                    try:
                        await self._sender.send(
                            charger_id, ClearChargingProfile(profile_id=stored.profile.id)
                        )
                    except ChargerNotConnected:
                        return
                    except DomainError as exc:
                        log.warning(
                            "charger %s: clearing profile %s failed: %s",
                            charger_id,
                            stored.profile.id,
                            exc,
                        )
                        continue
                    await self._docs.delete(_key(charger_id, stored.profile.id))
                    continue
                if stored.profile.purpose is ProfilePurpose.TX and not await self._running(stored):
                    await self._docs.delete(_key(charger_id, stored.profile.id))
                    continue
                outcome = await self._send(stored)
                if isinstance(outcome.error, ChargerNotConnected):
                    return
                if outcome.error is not None:
                    log.warning(
                        "charger %s: profile %s not installed: %s",
                        charger_id,
                        stored.profile.id,
                        outcome.error,
                    )

    async def _running(self, stored: StoredProfile) -> bool:
        tx_id = stored.profile.transaction_id
        if tx_id is None:
            return True  # 1.6: the transaction that runs on its connector
        active = await self._transactions.active(stored.charger_id)
        return any(tx.ocpp_id == tx_id for tx in active)

    # -- events ------------------------------------------------------------------

    EVENTS = (ChargerBooted, ChargerOnline, ChargerOffline, TransactionEnded)

    async def on_event(self, event: Event) -> None:
        match event:
            case ChargerBooted(state=state):
                self._schedule(state.id, 0.0)
            case ChargerOnline(charger_id=charger_id):
                self._schedule(charger_id, self._settle)
            case ChargerOffline(charger_id=charger_id):
                waiting = self._waiting.pop(charger_id, None)
                if waiting is not None:
                    waiting.cancel()
            case TransactionEnded(transaction=tx):
                await self._transaction_ended(tx.charger_id, tx.ocpp_id)

    async def _transaction_ended(self, charger_id: str, ocpp_id: str) -> None:
        # A TxProfile is gone with its transaction; keep none to send again.
        for stored in await self.list(charger_id):
            if (
                stored.profile.purpose is ProfilePurpose.TX
                and stored.profile.transaction_id == ocpp_id
            ):
                await self._docs.delete(_key(charger_id, stored.profile.id))

    def _schedule(self, charger_id: str, delay: float) -> None:
        waiting = self._waiting.get(charger_id)
        if waiting is not None:
            if delay > 0:
                return  # one is already coming
            waiting.cancel()  # a boot: now rather than after the settle time
        task = asyncio.create_task(self._resend_after(charger_id, delay))
        self._waiting[charger_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resend_after(self, charger_id: str, delay: float) -> None:
        # The task is not held in a local: cancelled (a boot or the charger gone before
        # the settle time, most connections), its frame would stay in the CancelledError's
        # traceback and make a cycle with it, left for a rare full collection.
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            self._not_waiting(charger_id)
            await self.resend(charger_id)
        except Unavailable as exc:
            log.warning("charger %s: profiles not sent again: %s", charger_id, exc)
        except DomainError as exc:
            log.warning("charger %s: profiles not sent again: %s", charger_id, exc)
        finally:
            self._not_waiting(charger_id)

    def _not_waiting(self, charger_id: str) -> None:
        """The current task (a re-send) no longer waits to begin."""
        if self._waiting.get(charger_id) is asyncio.current_task():
            del self._waiting[charger_id]

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


PROFILES = web.AppKey("operator_profiles", OperatorProfiles)
