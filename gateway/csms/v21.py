"""OCPP 2.1: the 2.0.1 handlers and commands, with what 2.1 changes.

2.1 keeps every message the gateway handles for 2.0.1 and only widens them (checked
against the 2.1 schemas the ``ocpp`` package ships): id token types are free strings
(up to 20 characters) and id tokens up to 255 characters, enumerations gain values
(trigger reasons, stopped reasons, measurands, reset and log types), and
TransactionEvent may carry ``costDetails`` (the charger's own cost calculation, from a
tariff the central system sent it; the gateway sends none and prices sessions itself,
so it never reads them), ``transactionInfo.tariffId``, ``transactionLimit`` and
``operationMode``. So :class:`V21Connection` reuses the 2.0.1 handlers as they are, and
converts only where the two differ:

- commands: each is the 2.0.1 call re-typed as the 2.1 call of the same name (whose
  fields are a superset), SetChargingProfile through ``profiles.profile_to_v21``;
- charging profiles reported or composed by the charger (``profiles.reported_from_v21``,
  ``composite_from_v21``): 2.1 periods may have no charging limit, new purposes and a
  new kind, which the domain does not hold;
- the OCPP-J 2.1 framing (``rpc_21``): CALLRESULTERROR and SEND frames
  (``gateway.csms.connection``). The one SEND action, NotifyPeriodicEventStream, is
  validated and counted; the gateway opens no event streams (OpenPeriodicEventStream is
  answered NotSupported), so its data is not kept.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action

from gateway.csms.connection import on
from gateway.csms.profiles import (
    composite_from_v21,
    profile_to_v21,
    reported_from_v21,
    station_evse,
)
from gateway.csms.v201 import V201Connection, command_to_v201
from gateway.domain import commands as cmd
from gateway.domain.errors import CommandNotSupported
from gateway.domain.models import OcppVersion

log = logging.getLogger(__name__)

# OCPP-J 2.1 4.2.5: the actions sent as SEND messages (their schemas have no Request or
# Response suffix). The library's Action enumeration leaves it out.
SEND_ACTIONS = frozenset({"NotifyPeriodicEventStream"})


def command_to_v21(command: cmd.Command) -> Any:
    """The library's 2.1 call dataclass for a domain command (pure)."""
    if isinstance(command, cmd.SetChargingProfile):
        # A ChargingStationMaxProfile only on evseId 0 (2.1 K01.FR.38, as in 2.0.1).
        return call21.SetChargingProfile(
            evse_id=station_evse(command.profile.purpose, command.evse_id),
            charging_profile=profile_to_v21(command.profile),
        )
    if isinstance(command, cmd.GetConfiguration | cmd.SetConfiguration):
        raise CommandNotSupported("OCPP 2.1 uses get/set variables, not configuration")
    try:
        payload = command_to_v201(command)
    except CommandNotSupported as exc:
        # The same rules hold for 2.1; the reason names the charger's version.
        raise CommandNotSupported(str(exc).replace("2.0.1", "2.1")) from None
    cls = getattr(call21, type(payload).__name__)
    # The 2.1 call of the same name has every field of the 2.0.1 one (its nested 2.0.1
    # datatypes serialize to the same camelCase objects).
    return cls(**{f.name: getattr(payload, f.name) for f in fields(payload)})


class V21Connection(V201Connection):
    version = OcppVersion.V21
    known_actions = frozenset(a.value for a in Action) | SEND_ACTIONS
    rpc_21 = True
    send_actions = SEND_ACTIONS
    # The library's call() builds and validates 2.1 messages with these.
    _call = call21
    _call_result = result21
    _ocpp_version = "2.1"

    @on(Action.report_charging_profiles)
    async def on_report_charging_profiles(self, payload: dict[str, Any]) -> dict[str, Any]:
        # K09: the reports that follow a GetChargingProfiles answer, under its requestId.
        # A valid 2.1 profile the domain cannot hold is left out, never refused.
        profiles, left_out = reported_from_v21(payload)
        for reason in left_out:
            log.info("charger %s: reported profile not held: %s", self.charger_id, reason)
        await self.csms.charging_profiles_report(
            self.charger_id, payload["requestId"], profiles, tbc=bool(payload.get("tbc", False))
        )
        return {}

    async def on_send(self, action: str, payload: dict[str, Any]) -> None:
        # NotifyPeriodicEventStream: data of a stream the gateway never opened.
        log.debug(
            "charger %s: %s of stream %s (%s values) not kept",
            self.charger_id,
            action,
            payload.get("id"),
            len(payload.get("data") or ()),
        )

    convert = staticmethod(command_to_v21)
    read_composite = staticmethod(composite_from_v21)
