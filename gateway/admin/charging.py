"""Admin API for charging profiles (README "Smart charging"):

- ``PUT /chargers/{id}/charging-profiles/{profile_id}``: body ``evse_id`` and the profile
  in its JSON form; stored and sent (201 new, 200 replaced; 202 when the charger is
  offline: sent when it comes);
- ``GET`` / ``DELETE`` on that path, and on ``/chargers/{id}/charging-profiles`` (the
  collection; ``?from_charger=true`` adds what a 2.0.1 charger reports it holds; DELETE
  takes ``evse_id``, ``purpose``, ``stack_level`` as criteria);
- ``GET /chargers/{id}/composite-schedule?evse_id=&duration=&unit=``.

Charger errors map as for the other commands: 409 not connected, 504 no answer in time,
502 a CALLERROR, 422 what its OCPP version cannot carry.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_body, read_query, respond
from gateway.admin.schemas import _Body
from gateway.charging.profiles import PROFILES, OperatorProfiles, profile_to_json
from gateway.domain.charging import (
    ChargingProfile,
    ChargingSchedule,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
)
from gateway.domain.commands import (
    CommandResult,
    CommandStatus,
    GetChargingProfiles,
    GetCompositeSchedule,
)
from gateway.domain.errors import (
    ChargerNotConnected,
    ChargerRejected,
    ChargerTimeout,
    CommandNotSupported,
    DomainError,
)
from gateway.keys import ROUTER, STORE

INT32_MAX = 2**31 - 1
# A limit beyond 10 MW (or 10 MA) is a typing error, not a charger's.
MAX_LIMIT = Decimal(10_000_000)
# OCPP 2.0.1 ChargingScheduleType: at most 1024 periods.
MAX_PERIODS = 1024
_PURPOSES = {
    "ChargingStationMaxProfile": ProfilePurpose.STATION_MAX,
    "ChargePointMaxProfile": ProfilePurpose.STATION_MAX,  # the 1.6 name, accepted too
    "TxDefaultProfile": ProfilePurpose.TX_DEFAULT,
    "TxProfile": ProfilePurpose.TX,
}

Limit = Annotated[Decimal, Field(ge=0, le=MAX_LIMIT)]


class PeriodBody(_Body):
    start_period: int = Field(ge=0, le=INT32_MAX, description="seconds from the schedule's start")
    limit: Limit
    number_phases: int | None = Field(default=None, ge=1, le=3)


class ScheduleBody(_Body):
    unit: RateUnit
    periods: list[PeriodBody] = Field(min_length=1, max_length=MAX_PERIODS)
    duration: int | None = Field(default=None, ge=1, le=INT32_MAX)
    start_schedule: AwareDatetime | None = None
    min_charging_rate: Limit | None = None


class ProfileBody(_Body):
    evse_id: int = Field(ge=0, le=INT32_MAX, description="0: the whole charger")
    stack_level: int = Field(default=0, ge=0, le=INT32_MAX)
    purpose: Literal[
        "ChargingStationMaxProfile", "ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"
    ]
    kind: ProfileKind = ProfileKind.ABSOLUTE
    recurrency: RecurrencyKind | None = None
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    transaction_id: str | None = Field(default=None, min_length=1, max_length=36)
    schedule: ScheduleBody

    def to_domain(self, profile_id: int) -> ChargingProfile:
        """The profile, once the rules between fields hold (each error names its field)."""
        purpose = _PURPOSES[self.purpose]
        schedule = self.schedule
        if purpose is ProfilePurpose.STATION_MAX and self.evse_id != 0:
            raise ApiError(422, "evse_id: a station maximum profile goes on EVSE 0", "evse_id")
        if purpose is ProfilePurpose.TX:
            if self.evse_id == 0:
                raise ApiError(
                    422, "evse_id: a TxProfile goes on the EVSE of its transaction", "evse_id"
                )
            if self.transaction_id is None:
                raise ApiError(
                    422, "transaction_id: a TxProfile names its transaction", "transaction_id"
                )
        elif self.transaction_id is not None:
            raise ApiError(422, "transaction_id: only for a TxProfile", "transaction_id")
        if self.kind is ProfileKind.RECURRING:
            if self.recurrency is None:
                raise ApiError(
                    422, "recurrency: a Recurring profile needs Daily or Weekly", "recurrency"
                )
            if schedule.start_schedule is None:
                raise ApiError(
                    422,
                    "schedule.start_schedule: a Recurring profile starts its recurrence there",
                    "schedule.start_schedule",
                )
        elif self.recurrency is not None:
            raise ApiError(422, "recurrency: only for a Recurring profile", "recurrency")
        if self.kind is ProfileKind.RELATIVE and schedule.start_schedule is not None:
            raise ApiError(
                422,
                "schedule.start_schedule: a Relative profile starts with its transaction",
                "schedule.start_schedule",
            )
        starts = [p.start_period for p in schedule.periods]
        if starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
            raise ApiError(
                422,
                "schedule.periods: start_period begins at 0 and increases",
                "schedule.periods",
            )
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ApiError(422, "valid_to: must be after valid_from", "valid_to")
        return ChargingProfile(
            id=profile_id,
            stack_level=self.stack_level,
            purpose=purpose,
            kind=self.kind,
            schedule=ChargingSchedule(
                unit=schedule.unit,
                periods=tuple(
                    SchedulePeriod(p.start_period, p.limit, p.number_phases)
                    for p in schedule.periods
                ),
                duration=schedule.duration,
                start_schedule=schedule.start_schedule,
                min_charging_rate=schedule.min_charging_rate,
            ),
            recurrency=self.recurrency,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            transaction_id=self.transaction_id,
        )


class CollectionQuery(_Body):
    from_charger: bool = False


class ClearQuery(_Body):
    evse_id: int | None = Field(default=None, ge=0, le=INT32_MAX)
    purpose: (
        Literal[
            "ChargingStationMaxProfile", "ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"
        ]
        | None
    ) = None
    stack_level: int | None = Field(default=None, ge=0, le=INT32_MAX)


class CompositeQuery(_Body):
    evse_id: int = Field(ge=0, le=INT32_MAX)
    duration: int = Field(ge=1, le=INT32_MAX, description="seconds")
    unit: RateUnit | None = None


def _charger_error(exc: DomainError) -> ApiError:
    if isinstance(exc, ChargerNotConnected):
        return ApiError(409, str(exc))
    if isinstance(exc, ChargerTimeout):
        return ApiError(504, str(exc))
    if isinstance(exc, ChargerRejected):
        return ApiError(502, f"charger answered with a CALLERROR: {exc}")
    if isinstance(exc, CommandNotSupported):
        return ApiError(422, str(exc))
    return ApiError(500, str(exc))


def _profiles(request: web.Request) -> OperatorProfiles:
    return request.config_dict[PROFILES]


async def _charger_id(request: web.Request) -> str:
    cp_id = request.match_info["charger_id"]
    if not 1 <= len(cp_id) <= 48:
        raise ApiError(400, "charger id must be 1 to 48 characters", "charger_id")
    if await request.config_dict[STORE].chargers.get(cp_id) is None:
        raise ApiError(404, f"charger {cp_id!r} not found")
    return cp_id


def _profile_id(request: web.Request) -> int:
    raw = request.match_info["profile_id"]
    if not (raw.isascii() and raw.isdigit()) or int(raw) > INT32_MAX:
        raise ApiError(400, f"profile id is an integer from 0 to {INT32_MAX}", "profile_id")
    return int(raw)


async def _send(request: web.Request, charger_id: str, command: Any) -> CommandResult:
    try:
        # The one command path: a local call, or routed to the process holding it.
        result: CommandResult = await request.config_dict[ROUTER].send(charger_id, command)
    except DomainError as exc:
        raise _charger_error(exc) from None
    return result


async def put_profile(request: web.Request) -> web.Response:
    cp_id = await _charger_id(request)
    profile_id = _profile_id(request)
    body: ProfileBody = await read_body(request, ProfileBody)
    profile = body.to_domain(profile_id)
    service = _profiles(request)
    existed = await service.get(cp_id, profile_id) is not None
    outcome = await service.set(cp_id, body.evse_id, profile)
    error = outcome.error
    if isinstance(error, ChargerNotConnected):
        return respond(outcome.stored.view(), 202)  # kept; sent when the charger connects
    if isinstance(error, ChargerTimeout | ChargerRejected):
        api = _charger_error(error)
        raise ApiError(api.status, f"{api.reason} (kept: sent again when the charger reconnects)")
    if error is not None:
        raise _charger_error(error)
    return respond(outcome.stored.view(), 200 if existed else 201)


async def get_profile(request: web.Request) -> web.Response:
    cp_id = await _charger_id(request)
    profile_id = _profile_id(request)
    stored = await _profiles(request).get(cp_id, profile_id)
    if stored is None:
        raise ApiError(404, f"no charging profile {profile_id} stored for charger {cp_id!r}")
    return respond(stored.view())


async def delete_profile(request: web.Request) -> web.Response:
    cp_id = await _charger_id(request)
    profile_id = _profile_id(request)
    try:
        known, result = await _profiles(request).remove(cp_id, profile_id)
    except DomainError as exc:
        raise _charger_error(exc) from None
    if result is None:
        return respond(
            {"profile_id": profile_id, "charger": None, "cleared": "when it connects"}, 202
        )
    if not known and result.status is CommandStatus.UNKNOWN:
        raise ApiError(404, f"no charging profile {profile_id} stored for or held by {cp_id!r}")
    return respond({"profile_id": profile_id, "charger": {"status": result.status}})


def _reported(result: CommandResult) -> list[dict[str, Any]]:
    return [
        {
            "evse_id": r.evse_id,
            "source": r.source,
            "profile_id": r.profile.id,
            "profile": profile_to_json(r.profile),
        }
        for r in result.profiles
    ]


async def list_profiles(request: web.Request) -> web.Response:
    cp_id = await _charger_id(request)
    query: CollectionQuery = read_query(request, CollectionQuery)
    stored = await _profiles(request).list(cp_id, removed=True)
    view: dict[str, Any] = {
        "charger_id": cp_id,
        "profiles": [s.view() for s in stored if not s.removed],
        # Removed while the charger was offline: cleared on it when it connects.
        "clearing": [s.profile.id for s in stored if s.removed],
    }
    if query.from_charger:
        result = await _send(request, cp_id, GetChargingProfiles())
        view["reported"] = _reported(result)
        view["reports_complete"] = bool(result.data.get("reports_complete", True))
    return respond(view)


async def delete_profiles(request: web.Request) -> web.Response:
    cp_id = await _charger_id(request)
    query: ClearQuery = read_query(request, ClearQuery)
    try:
        removed, result = await _profiles(request).remove_matching(
            cp_id,
            evse_id=query.evse_id,
            purpose=None if query.purpose is None else _PURPOSES[query.purpose],
            stack_level=query.stack_level,
        )
    except DomainError as exc:
        raise _charger_error(exc) from None
    if result is None:
        return respond({"removed": removed, "charger": None, "cleared": "when it connects"}, 202)
    return respond({"removed": removed, "charger": {"status": result.status}})


async def composite_schedule(request: web.Request) -> web.Response:
    cp_id = await _charger_id(request)
    query: CompositeQuery = read_query(request, CompositeQuery)
    result = await _send(
        request, cp_id, GetCompositeSchedule(query.evse_id, query.duration, query.unit)
    )
    composite = result.schedule
    if composite is None:
        return respond({"status": result.status, "schedule": None})
    schedule = composite.schedule
    return respond(
        {
            "status": result.status,
            "schedule": {
                "evse_id": composite.evse_id,
                "start": composite.start,
                "unit": schedule.unit,
                "duration": schedule.duration,
                "periods": [
                    {
                        "start_period": p.start_period,
                        "limit": p.limit,
                        "number_phases": p.number_phases,
                    }
                    for p in schedule.periods
                ],
            },
        }
    )


def charging_routes() -> list[api.Operation]:
    one = "/chargers/{charger_id}/charging-profiles/{profile_id}"
    params = {
        "charger_id": "the charge point id",
        "profile_id": f"an integer from 0 to {INT32_MAX}",
    }
    offline = {
        202: "the charger is offline: done when it connects",
    }
    return [
        api.put(
            one,
            put_profile,
            "Store a charging profile and send it to the charger",
            path_params=params,
            body=ProfileBody,
            statuses={200: "replaced", 201: "stored and accepted", **offline},
            errors={
                404: "no such charger",
                422: "the charger's OCPP version cannot carry the profile (not stored)",
                502: "the charger answered with a CALLERROR (kept: sent again)",
                504: "the charger did not answer in time (kept: sent again)",
            },
            tag="charging profiles",
        ),
        api.get(
            one,
            get_profile,
            "A stored profile: what was asked beside the charger's last answer",
            path_params=params,
            errors={404: "no such charger or profile"},
            tag="charging profiles",
        ),
        api.delete(
            one,
            delete_profile,
            "Forget a profile and clear it on the charger",
            path_params=params,
            statuses={200: "cleared (the charger's status)", **offline},
            errors={**api.CHARGER_ERRORS, 404: "neither the gateway nor the charger has it"},
            tag="charging profiles",
        ),
        api.get(
            "/chargers/{charger_id}/charging-profiles",
            list_profiles,
            "The stored profiles (from_charger=true: also what a 2.0.1 charger holds)",
            path_params=params,
            query=CollectionQuery,
            errors=api.CHARGER_ERRORS,
            tag="charging profiles",
        ),
        api.delete(
            "/chargers/{charger_id}/charging-profiles",
            delete_profiles,
            "Clear every stored profile matching the criteria, and on the charger",
            path_params=params,
            query=ClearQuery,
            statuses={200: "cleared", **offline},
            errors=api.CHARGER_ERRORS,
            tag="charging profiles",
        ),
        api.get(
            "/chargers/{charger_id}/composite-schedule",
            composite_schedule,
            "The charger's composite schedule on an EVSE",
            path_params=params,
            query=CompositeQuery,
            errors=api.CHARGER_ERRORS,
            tag="charging profiles",
        ),
    ]
