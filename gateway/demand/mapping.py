"""OpenADR 2.0b events to site limits: pure functions.

An event (``oadrEvent``, as ``openleadr`` hands it to a VEN: a dict with
``event_descriptor``, ``active_period``, ``event_signals`` and ``targets_by_type``)
becomes one :class:`DemandLimit` per targeted site and interval of a signal the gateway
understands. OpenADR 2.0b Profile Specification, section 8 (signal names and types):

===================  ===============================  =====================================
signal name          signal type                      the site limit during the interval
===================  ===============================  =====================================
``SIMPLE``           ``level`` 0, 1, 2, 3             0: none; 1, 2, 3: a share of the
                                                      site's capacity (a setting: 75 %,
                                                      50 %, 25 % by default)
``LOAD_CONTROL``     ``x-loadControlCapacity``        the payload, a fraction of capacity
``LOAD_CONTROL``     ``x-loadControlPercentOffset``   capacity x (1 + payload / 100); a
                                                      negative offset lowers
``LOAD_CONTROL``     ``x-loadControlSetpoint``        the payload, in the signal's unit of
``LOAD_DISPATCH``    ``setpoint``                     real power (W, kW or MW by its scale)
===================  ===============================  =====================================

Targets: the ``resource_id`` and ``group_id`` targets name site ids; an event that
names none (only the VEN, or nothing) is for every site the VEN serves. An event with
no signal from the table, or whose targets name no site the gateway has, is opted out;
one that is cancelled removes its limits. Where events overlap, the site load manager
applies the lowest limit in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

# SIMPLE levels 1, 2, 3 as a share of capacity (GATEWAY_OPENADR_SIMPLE_LEVELS).
DEFAULT_SIMPLE_LEVELS = (Decimal("0.75"), Decimal("0.5"), Decimal("0.25"))
_SCALES = {"none": Decimal(1), "": Decimal(1), "k": Decimal(1000), "M": Decimal(1_000_000)}
# An interval without a duration (OpenADR: "PT0S" or absent) lasts until the event's
# end; an event without one either is bounded here, so that no limit stays forever.
OPEN_ENDED = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DemandLimit:
    """A site limit asked by the grid operator: either a share of the site's capacity
    (``fraction``, 0 to 1) or an absolute real power (``watts``)."""

    site_id: str
    start: datetime
    end: datetime
    event_id: str
    fraction: Decimal | None = None
    watts: Decimal | None = None


class LimitSink(Protocol):
    """What the site load manager offers demand response (``gateway.smart``)."""

    async def site_ids(self) -> list[str]:
        """The sites the gateway manages."""
        ...

    async def replace_event_limits(self, event_id: str, limits: Sequence[DemandLimit]) -> None:
        """Store ``limits`` as the whole of event ``event_id`` (replacing what an earlier
        version of the event set), durably, and apply them from their start."""
        ...

    async def remove_event_limits(self, event_id: str) -> None:
        """Lift every limit of event ``event_id``."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with an event: the limits (none when cancelled or opted out), the
    answer to the VTN, and why (logged, and the opt-out reason)."""

    limits: tuple[DemandLimit, ...]
    opt: str  # "optIn" / "optOut"
    reason: str
    cancelled: bool = False


def decide(
    event: dict[str, Any],
    sites: Iterable[str],
    *,
    simple_levels: Sequence[Decimal] = DEFAULT_SIMPLE_LEVELS,
    now: datetime | None = None,
) -> Decision:
    """The site limits of ``event`` for the gateway's ``sites`` (see the module docstring)."""
    descriptor = event.get("event_descriptor") or {}
    event_id = str(descriptor.get("event_id") or "")
    if not event_id:
        return Decision((), "optOut", "the event has no event_id")
    status = str(descriptor.get("event_status") or "").lower()
    if status == "cancelled":
        return Decision((), "optIn", "cancelled", cancelled=True)
    known = set(sites)
    targeted = _targeted_sites(event, known)
    if not targeted:
        return Decision((), "optOut", "the event targets no site of this gateway")
    period_start, period_end = _period(event.get("active_period") or {}, now)
    limits: list[DemandLimit] = []
    unsupported: list[str] = []
    for signal in event.get("event_signals") or []:
        shares = _signal_limits(signal, simple_levels)
        if shares is None:
            unsupported.append(f"{signal.get('signal_name')}/{signal.get('signal_type')}")
            continue
        for start, end, fraction, watts in _intervals(signal, shares, period_start, period_end):
            for site_id in sorted(targeted):
                limits.append(DemandLimit(site_id, start, end, event_id, fraction, watts))
    if not limits and unsupported:
        return Decision((), "optOut", f"no signal this gateway follows ({', '.join(unsupported)})")
    return Decision(tuple(limits), "optIn", f"{len(limits)} site limits")


def _targeted_sites(event: dict[str, Any], known: set[str]) -> set[str]:
    by_type = event.get("targets_by_type") or {}
    named = {str(v) for key in ("resource_id", "group_id") for v in by_type.get(key) or []}
    if not named:
        return known
    return named & known


def _period(period: dict[str, Any], now: datetime | None) -> tuple[datetime, datetime]:
    start = _aware(period.get("dtstart")) or now or datetime.now(UTC)
    duration = period.get("duration")
    if not isinstance(duration, timedelta) or duration <= timedelta(0):
        duration = OPEN_ENDED
    return start, start + duration


def _signal_limits(
    signal: dict[str, Any], simple_levels: Sequence[Decimal]
) -> dict[str, Any] | None:
    """How a signal's payloads become limits, or None when the gateway does not follow it."""
    name = str(signal.get("signal_name") or "").upper()
    kind = str(signal.get("signal_type") or "")
    if name == "SIMPLE" and kind == "level":
        return {"simple": tuple(simple_levels)}
    if name == "LOAD_CONTROL" and kind == "x-loadControlCapacity":
        return {"fraction": True}
    if name == "LOAD_CONTROL" and kind == "x-loadControlPercentOffset":
        return {"offset": True}
    if (name, kind) in (("LOAD_CONTROL", "x-loadControlSetpoint"), ("LOAD_DISPATCH", "setpoint")):
        measurement = signal.get("measurement") or {}
        scale = _SCALES.get(str(measurement.get("scale", "none")), Decimal(1))
        return {"watts": scale}
    return None


def _intervals(
    signal: dict[str, Any], how: dict[str, Any], period_start: datetime, period_end: datetime
) -> list[tuple[datetime, datetime, Decimal | None, Decimal | None]]:
    out: list[tuple[datetime, datetime, Decimal | None, Decimal | None]] = []
    cursor = period_start
    for interval in signal.get("intervals") or []:
        start = _aware(interval.get("dtstart")) or cursor
        duration = interval.get("duration")
        bounded = isinstance(duration, timedelta) and duration > timedelta(0)
        end = start + duration if bounded else period_end
        cursor = end
        payload = _decimal(interval.get("signal_payload"))
        if payload is None or end <= start:
            continue  # nothing to follow, or an interval of no time (past the event's end)
        fraction: Decimal | None = None
        watts: Decimal | None = None
        if "simple" in how:
            level = int(payload)
            if level <= 0:
                continue  # normal operation: no limit in this interval
            levels: tuple[Decimal, ...] = how["simple"]
            fraction = levels[min(level, len(levels)) - 1]
        elif "fraction" in how:
            fraction = min(max(payload, Decimal(0)), Decimal(1))
        elif "offset" in how:
            fraction = min(max(Decimal(1) + payload / 100, Decimal(0)), Decimal(1))
        else:
            watts = max(payload * how["watts"], Decimal(0))
        out.append((start, end, fraction, watts))
    return out


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
