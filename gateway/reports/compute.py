"""Folding transactions, CDRs and status history into report rows (pure: the standard
library and ``gateway.domain`` only; see the package docstring).

Definitions (README "Reports"):

- a session, its energy and its CDR's revenue count in the period its transaction
  *started* in; energy is the transaction's meter stop minus start (Wh, exact), for a
  session still running its last energy reading minus the start;
- charging time: the time between two energy register values (start, readings, stop) in
  which the register advanced; parking time: the rest of the time the session was
  plugged (started to stopped, or to the report's ``now`` while it runs). Both are split
  at period boundaries, to the microsecond;
- utilization: charging time / (EVSEs of the group x the period's elapsed time);
- uptime: per EVSE, the time its charger was connected and neither the EVSE nor the
  whole charger (EVSE 0) had a connector Faulted, over the time its state is known from
  the status history (summed over the EVSEs of a charger or location);
- a fault: a connector reporting an error code (1.6 errorCode other than NoError; a
  Faulted status without one counts as ``Faulted``) that it did not report just before.
"""

from __future__ import annotations

import csv
import enum
import io
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from gateway.domain.models import ConnectorStatus, Measurand, MeterReading, Transaction
from gateway.reports.periods import Bucket, BucketIndex, micros

GroupKey = tuple[str, ...]
Row = dict[str, Any]


class Kind(enum.StrEnum):
    USAGE = "usage"
    REVENUE = "revenue"
    UPTIME = "uptime"
    FAULTS = "faults"


class By(enum.StrEnum):
    CHARGER = "charger"
    EVSE = "evse"
    LOCATION = "location"
    PARTNER = "partner"


# Uptime and faults are the chargers' own: a roaming partner has neither.
ALLOWED_BY: Mapping[Kind, tuple[By, ...]] = {
    Kind.USAGE: tuple(By),
    Kind.REVENUE: tuple(By),
    Kind.UPTIME: (By.CHARGER, By.EVSE, By.LOCATION),
    Kind.FAULTS: (By.CHARGER, By.EVSE, By.LOCATION),
}

GROUP_COLUMNS: Mapping[By, tuple[str, ...]] = {
    By.CHARGER: ("charger_id",),
    By.EVSE: ("charger_id", "evse_id", "evse_uid"),
    By.LOCATION: ("location_id",),
    By.PARTNER: ("partner_id",),
}

METRIC_COLUMNS: Mapping[Kind, tuple[str, ...]] = {
    Kind.USAGE: (
        "sessions",
        "energy_kwh",
        "charging_seconds",
        "parking_seconds",
        "evses",
        "utilization",
    ),
    Kind.REVENUE: ("currency", "cdrs", "energy_kwh", "revenue_excl_vat", "revenue_incl_vat"),
    Kind.UPTIME: ("evses", "observed_seconds", "up_seconds", "unknown_seconds", "uptime"),
    Kind.FAULTS: ("error_code", "faults"),
}


def columns(kind: Kind, by: By) -> tuple[str, ...]:
    return ("period_start", "period_end", *GROUP_COLUMNS[by], *METRIC_COLUMNS[kind])


# -- cells ------------------------------------------------------------------------------


@dataclass(slots=True)
class UsageCell:
    sessions: int = 0
    energy_wh: Decimal = Decimal(0)
    charging_us: int = 0
    parking_us: int = 0


@dataclass(slots=True)
class RevenueCell:
    cdrs: int = 0
    energy_kwh: Decimal = Decimal(0)
    excl_vat: Decimal = Decimal(0)
    incl_vat: Decimal = Decimal(0)


@dataclass(slots=True)
class UptimeCell:
    known_us: int = 0  # EVSE-µs whose state is known
    up_us: int = 0


@dataclass(slots=True)
class Group:
    """One group's cells per bucket index, and how many EVSEs it has (utilization)."""

    evses: int = 0
    usage: dict[int, UsageCell] = field(default_factory=dict)
    revenue: dict[tuple[int, str], RevenueCell] = field(default_factory=dict)
    uptime: dict[int, UptimeCell] = field(default_factory=dict)
    faults: dict[int, Counter[str]] = field(default_factory=dict)


class Aggregate:
    """The cells of a report, per group and bucket; groups are emitted and dropped as
    soon as they are complete (see ``source``)."""

    def __init__(self, kind: Kind, by: By, index: BucketIndex, now: datetime) -> None:
        self.kind = kind
        self.by = by
        self.index = index
        self.now = now
        self.groups: dict[GroupKey, Group] = {}

    def group(self, key: GroupKey) -> Group:
        found = self.groups.get(key)
        if found is None:
            found = self.groups[key] = Group()
        return found

    def elapsed_us(self, bucket: Bucket) -> int:
        """The bucket's time up to ``now`` (a report on a period in progress)."""
        end = min(bucket.end, self.now)
        return micros(end - bucket.start) if end > bucket.start else 0

    # -- usage and revenue ----------------------------------------------------------

    def add_transaction(
        self, key: GroupKey, tx: Transaction, readings: Sequence[MeterReading]
    ) -> None:
        """Count a session (when it started in the range) and split its charging and
        parking time over the buckets."""
        group = self.group(key)
        points = energy_points(tx, readings)
        i = self.index.find(tx.started_at)
        if i is not None:
            cell = group.usage.setdefault(i, UsageCell())
            cell.sessions += 1
            cell.energy_wh += session_energy_wh(tx, points)
        plugged_end = tx.stopped_at or self.now
        for start, end, charging in session_intervals(tx, points, plugged_end):
            for j, us in self.index.split(start, min(end, self.now)):
                cell = group.usage.setdefault(j, UsageCell())
                if charging:
                    cell.charging_us += us
                else:
                    cell.parking_us += us

    def add_cdr(self, key: GroupKey, cdr: Mapping[str, Any]) -> None:
        """Count a CDR (its OCPI JSON, numbers as Decimal) in the bucket of its start."""
        start = datetime.fromisoformat(str(cdr["start_date_time"])).astimezone(UTC)
        i = self.index.find(start)
        if i is None:
            return
        cost = cdr.get("total_cost") or {}
        excl = _decimal(cost.get("excl_vat", 0))
        # OCPI: incl_vat absent when the VAT is not known; counted as excl_vat then.
        incl = _decimal(cost["incl_vat"]) if cost.get("incl_vat") is not None else excl
        cell = self.group(key).revenue.setdefault((i, str(cdr.get("currency", ""))), RevenueCell())
        cell.cdrs += 1
        cell.energy_kwh += _decimal(cdr.get("total_energy", 0))
        cell.excl_vat += excl
        cell.incl_vat += incl

    # -- rows ---------------------------------------------------------------------

    def rows(self, key: GroupKey) -> Iterator[Row]:
        """The rows of one group, bucket by bucket (buckets not begun by ``now`` left out)."""
        group = self.groups.get(key) or Group()
        names = GROUP_COLUMNS[self.by]
        for i, bucket in enumerate(self.index.items):
            elapsed = self.elapsed_us(bucket)
            if elapsed == 0:
                continue
            head: Row = {
                "period_start": _time(bucket.label_start),
                "period_end": _time(bucket.label_end),
            }
            head.update(zip(names, key, strict=True))
            if self.kind is Kind.USAGE:
                yield head | _usage_row(group, i, elapsed, self.by)
            elif self.kind is Kind.REVENUE:
                for (j, currency), money_cell in sorted(group.revenue.items()):
                    if j == i:
                        yield head | {
                            "currency": currency,
                            "cdrs": money_cell.cdrs,
                            "energy_kwh": kwh(money_cell.energy_kwh * 1000),
                            "revenue_excl_vat": money(money_cell.excl_vat),
                            "revenue_incl_vat": money(money_cell.incl_vat),
                        }
            elif self.kind is Kind.UPTIME:
                cell = group.uptime.get(i) or UptimeCell()
                span = group.evses * elapsed
                yield head | {
                    "evses": group.evses,
                    "observed_seconds": seconds(cell.known_us),
                    "up_seconds": seconds(cell.up_us),
                    "unknown_seconds": seconds(max(span - cell.known_us, 0)),
                    "uptime": ratio(cell.up_us, cell.known_us),
                }
            else:
                for code, count in sorted((group.faults.get(i) or Counter()).items()):
                    yield head | {"error_code": code, "faults": count}


def _usage_row(group: Group, i: int, elapsed: int, by: By) -> Row:
    cell = group.usage.get(i) or UsageCell()
    capacity = group.evses * elapsed
    return {
        "sessions": cell.sessions,
        "energy_kwh": kwh(cell.energy_wh),
        "charging_seconds": seconds(cell.charging_us),
        "parking_seconds": seconds(cell.parking_us),
        "evses": None if by is By.PARTNER else group.evses,
        "utilization": None if by is By.PARTNER else ratio(cell.charging_us, capacity),
    }


# -- sessions -----------------------------------------------------------------------


def energy_points(
    tx: Transaction, readings: Sequence[MeterReading]
) -> list[tuple[datetime, Decimal]]:
    """The energy register over time: start, every whole-meter energy reading, stop; one
    value per instant, kept monotonic (a reading below an earlier one is a glitch)."""
    points: dict[datetime, Decimal] = {}
    if tx.meter_start_wh is not None:
        points[tx.started_at] = tx.meter_start_wh
    for r in readings:
        if r.measurand is Measurand.ENERGY_WH and r.phase is None:
            points[r.timestamp] = r.value
    if tx.meter_stop_wh is not None and tx.stopped_at is not None:
        points[tx.stopped_at] = tx.meter_stop_wh
    clean: list[tuple[datetime, Decimal]] = []
    for when in sorted(points):
        value = points[when]
        if clean and value < clean[-1][1]:
            continue
        clean.append((when, value))
    return clean


def session_energy_wh(tx: Transaction, points: Sequence[tuple[datetime, Decimal]]) -> Decimal:
    """What the transaction delivered: stop minus start as stored, else (running) the last
    register value minus the first."""
    if tx.energy_wh is not None:
        return max(tx.energy_wh, Decimal(0))
    if len(points) >= 2:
        return points[-1][1] - points[0][1]
    return Decimal(0)


def session_intervals(
    tx: Transaction, points: Sequence[tuple[datetime, Decimal]], plugged_end: datetime
) -> Iterator[tuple[datetime, datetime, bool]]:
    """``(start, end, charging)`` from the start to ``plugged_end``: charging between two
    register values that differ; parked otherwise, and after the last value."""
    at = tx.started_at
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        lo, hi = max(t0, at), min(t1, plugged_end)
        if hi > lo:
            yield lo, hi, v1 > v0
            at = hi
    if plugged_end > at:
        yield at, plugged_end, False


# -- status history -----------------------------------------------------------------


def fault_code(status: str | None, error_code: str | None) -> str | None:
    if error_code:
        return error_code
    return ConnectorStatus.FAULTED.value if status == ConnectorStatus.FAULTED.value else None


@dataclass(slots=True)
class HistoryState:
    """A charger's state as the history tells it: whether it is known, connected, and
    each connector's fault code (None: not faulted)."""

    known: bool = False
    connected: bool = False
    codes: dict[tuple[int, int], str | None] = field(default_factory=dict)
    faulted: dict[tuple[int, int], bool] = field(default_factory=dict)

    def evse_up(self, evse: int) -> bool:
        if not (self.known and self.connected):
            return False
        return not any(f for (e, _), f in self.faulted.items() if f and e in (evse, 0))


def initial_state(newest_first: Iterable[Any]) -> HistoryState:
    """The state at the start of the range, from the entries before it, newest first,
    read up to (and including) the newest connection entry."""
    state = HistoryState()
    for entry in newest_first:
        if entry.kind.value == "connector":
            slot = (entry.evse_id, entry.connector_id)
            if slot not in state.codes:
                state.codes[slot] = fault_code(entry.status, entry.error_code)
                state.faulted[slot] = entry.status == ConnectorStatus.FAULTED.value
            continue
        state.known = True
        state.connected = entry.kind.value != "offline"
        if not state.connected:
            state.faulted.clear()
        break
    return state


class HistoryFolder:
    """Walks one charger's history through the range, adding uptime and faults to the
    groups ``key_of(evse)`` names."""

    def __init__(
        self,
        agg: Aggregate,
        evses: Sequence[int],
        key_of: Callable[[int], GroupKey],
        state: HistoryState,
        start: datetime,
    ) -> None:
        self._agg = agg
        self._evses = evses
        self._key_of = key_of
        self.state = state
        self._at = start

    def _advance(self, until: datetime) -> None:
        until = min(until, self._agg.now)
        if until <= self._at:
            return
        if self.state.known:
            for evse in self._evses:
                up = self.state.evse_up(evse)
                group = self._agg.group(self._key_of(evse))
                for j, us in self._agg.index.split(self._at, until):
                    cell = group.uptime.setdefault(j, UptimeCell())
                    cell.known_us += us
                    if up:
                        cell.up_us += us
        self._at = until

    def feed(self, entry: Any) -> None:
        self._advance(entry.at)
        state = self.state
        kind = entry.kind.value
        if kind == "connector":
            slot = (entry.evse_id, entry.connector_id)
            code = fault_code(entry.status, entry.error_code)
            if code is not None and code != state.codes.get(slot):
                i = self._agg.index.find(entry.at)
                if i is not None:
                    faults = self._agg.group(self._key_of(entry.evse_id)).faults
                    faults.setdefault(i, Counter())[code] += 1
            state.codes[slot] = code
            state.faulted[slot] = entry.status == ConnectorStatus.FAULTED.value
            return
        state.known = True
        state.connected = kind != "offline"
        if not state.connected:
            state.faulted.clear()

    def finish(self, end: datetime) -> None:
        self._advance(end)


# -- formats ------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):  # never from json.loads(parse_float=Decimal); be exact
        return Decimal(repr(value))
    return Decimal(str(value))


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def seconds(us: int) -> int:
    """Whole seconds, half up."""
    return (us + 500_000) // 1_000_000


_RATIO = Decimal("0.0001")


def ratio(part: int, whole: int) -> str | None:
    if whole <= 0:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(_RATIO, ROUND_HALF_EVEN))


def kwh(wh: Decimal) -> str:
    """Wh as kWh, exactly (at least three decimals: to the Wh)."""
    value = wh / 1000
    whole = value.quantize(Decimal("0.001"))
    return str(whole if whole == value else value)


def money(amount: Decimal) -> str:
    """An exact sum of amounts, with at least two decimals (to the cent)."""
    cents = amount.quantize(Decimal("0.01"))
    return str(cents if cents == amount else amount)


def csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(["" if v is None else v for v in values])
    return out.getvalue()


def json_row(row: Row) -> str:
    return json.dumps(row, separators=(",", ":"))
