"""Sites, their demand-response limits and the allocator's state, as stored documents.

- ``Store.sites``: one document per site, keyed by the site id, in the admin API's form
  (decimals as strings): capacity (``capacity`` with ``capacity_unit`` ``A`` per phase or
  ``kW``), ``phases``, ``voltage``, ``min_current``, ``max_current``, ``policy`` and
  ``weights``, ``suspend_ratio``, ``suspend_after`` (seconds) and the ``evses``.
- ``Store.site_limits``: one document per time-bounded limit, keyed
  ``{site_id}/{limit_id}``, owner the site id.
- ``Store.site_states``: per site, what the chargers hold (last accepted limit, a limit
  sent and not answered, pinned after a failure), the suspended sessions, and the last
  allocation (the admin view, readable by every process). Written before each send and
  after each answer, so that a process taking the ``sites`` lease over counts every
  charger at least at what it may hold.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.smart.allocator import (
    ChargerLimit,
    Evse,
    Policy,
    Session,
    Site,
    SiteLimit,
    round_down,
)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def site_from_data(site_id: str, data: dict[str, Any]) -> Site:
    """The allocator's site from its stored document (a capacity in kW as amperes per
    phase at the site's voltage, rounded down)."""
    phases = int(data.get("phases", 3))
    voltage = Decimal(str(data.get("voltage", "230")))
    capacity = Decimal(str(data["capacity"]))
    if data.get("capacity_unit", "A") == "kW":
        capacity = round_down(capacity * 1000 / (voltage * phases))
    weights = data.get("weights") or {}
    evses = tuple(
        Evse(
            charger_id=str(e["charger_id"]),
            evse_id=int(e.get("evse_id", 1)),
            max_current=Decimal(str(e["max_current"])),
            phases=int(e.get("phases", phases)),
            phase=str(e.get("phase", "L1")),
            weight=_dec(e.get("weight")),
        )
        for e in data.get("evses", [])
    )
    return Site(
        id=site_id,
        capacity=capacity,
        phases=phases,
        evses=evses,
        min_current=Decimal(str(data.get("min_current", "6"))),
        max_current=_dec(data.get("max_current")),
        policy=Policy(data.get("policy", "equal")),
        token_group_weights={
            k: Decimal(str(v)) for k, v in (weights.get("token_group") or {}).items()
        },
        partner_weights={k: Decimal(str(v)) for k, v in (weights.get("partner") or {}).items()},
        suspend_ratio=Decimal(str(data.get("suspend_ratio", "0.5"))),
        suspend_after=timedelta(seconds=float(data.get("suspend_after", 120))),
        voltage=voltage,
    )


def limit_key(site_id: str, limit_id: str) -> str:
    return f"{site_id}/{limit_id}"


def limit_to_data(limit: SiteLimit) -> dict[str, Any]:
    return {
        "id": limit.id,
        "start": limit.start.isoformat(),
        "end": limit.end.isoformat(),
        "amperes": _str(limit.amperes),
        "watts": _str(limit.watts),
        "fraction": _str(limit.fraction),
        "source": limit.source,
    }


def limit_from_data(data: dict[str, Any]) -> SiteLimit:
    return SiteLimit(
        id=str(data["id"]),
        start=datetime.fromisoformat(data["start"]),
        end=datetime.fromisoformat(data["end"]),
        amperes=_dec(data.get("amperes")),
        watts=_dec(data.get("watts")),
        fraction=_dec(data.get("fraction")),
        source=str(data.get("source", "admin")),
    )


def limit_view(limit: SiteLimit, site: Site | None, now: datetime) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": limit.id,
        "start": limit.start,
        "end": limit.end,
        "source": limit.source,
        "in_force": limit.start <= now < limit.end,
    }
    if limit.amperes is not None:
        view |= {"limit": limit.amperes, "unit": "A"}
    elif limit.watts is not None:
        view |= {"limit": limit.watts / 1000, "unit": "kW"}
    else:
        view |= {"limit": limit.fraction, "unit": "fraction"}
    if site is not None:
        view["amperes_per_phase"] = round_down(limit.amperes_on(site))
    return view


def state_to_data(
    chargers: dict[str, ChargerLimit], sessions: dict[str, Session], view: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "chargers": {
            cid: {
                "in_force": _str(c.in_force),
                "pending": _str(c.pending),
                "failed": c.failed,
            }
            for cid, c in chargers.items()
        },
        "sessions": {
            sid: {
                "suspended_cap": _str(s.suspended_cap),
                "under_since": None if s.under_since is None else s.under_since.isoformat(),
                "draw": _str(s.draw),
            }
            for sid, s in sessions.items()
        },
        "view": view,
    }


def chargers_from_state(data: dict[str, Any]) -> dict[str, ChargerLimit]:
    """What was stored; ``online`` is not (the runtime reads it from the charger states)."""
    return {
        cid: ChargerLimit(
            in_force=_dec(c.get("in_force")),
            pending=_dec(c.get("pending")),
            failed=bool(c.get("failed")),
        )
        for cid, c in (data.get("chargers") or {}).items()
    }


def session_marks(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per session id: its suspension (``suspended_cap``, ``under_since``) and last draw."""
    out: dict[str, dict[str, Any]] = {}
    for sid, s in (data.get("sessions") or {}).items():
        out[sid] = {
            "suspended_cap": _dec(s.get("suspended_cap")),
            "under_since": _time(s.get("under_since")),
            "draw": _dec(s.get("draw")),
        }
    return out
