"""Charging periods from meter readings, and their price (pure functions).

mod_cdrs: a charging period starts whenever the tariff-relevant situation changes.
Here the situation is "drawing energy" (ENERGY and TIME dimensions) versus "parked"
(PARKING_TIME), told apart by the energy register: an interval between two
readings in which the register did not advance is parking. The tariff engine then
splits periods further at every restriction boundary it needs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.domain.models import Measurand, MeterReading, Transaction
from ocpi.tariffs import (
    PricingResult,
    cdr_from_ocpi_dict,
    compile_tariff,
    price_session,
    tariff_from_ocpi_dict,
)
from ocpi.transport import format_datetime

KWH = Decimal(1000)
HOUR = Decimal(3600)
QUANTITY = Decimal("0.0001")  # OCPI quantities: 4 decimals


@dataclass(frozen=True, slots=True)
class Segment:
    start: datetime
    end: datetime
    energy_wh: Decimal

    @property
    def charging(self) -> bool:
        return self.energy_wh > 0


def energy_points(
    tx: Transaction, readings: Sequence[MeterReading], end: datetime
) -> list[tuple[datetime, Decimal]]:
    """The energy register over time: start, every whole-meter reading, stop."""
    points: list[tuple[datetime, Decimal]] = []
    if tx.meter_start_wh is not None:
        points.append((tx.started_at, tx.meter_start_wh))
    for r in readings:
        if r.measurand is Measurand.ENERGY_WH and r.phase is None:
            points.append((r.timestamp, r.value))
    if tx.meter_stop_wh is not None and tx.stopped_at is not None:
        points.append((tx.stopped_at, tx.meter_stop_wh))
    points = sorted({p[0]: p for p in points}.values())  # one value per instant
    # Keep the register monotonic: a reading below an earlier one is a meter glitch.
    clean: list[tuple[datetime, Decimal]] = []
    for when, value in points:
        if tx.started_at <= when <= end and (not clean or value >= clean[-1][1]):
            clean.append((when, value))
    return clean


def segments(tx: Transaction, readings: Sequence[MeterReading], end: datetime) -> list[Segment]:
    points = energy_points(tx, readings, end)
    if not points or points[0][0] > tx.started_at:
        base = points[0][1] if points else Decimal(0)
        points.insert(0, (tx.started_at, base))
    if points[-1][0] < end:
        points.append((end, points[-1][1]))
    out: list[Segment] = []
    for (t0, e0), (t1, e1) in itertools.pairwise(points):
        if t1 <= t0:
            continue
        seg = Segment(t0, t1, e1 - e0)
        if out and out[-1].charging == seg.charging:
            prev = out[-1]
            out[-1] = Segment(prev.start, seg.end, prev.energy_wh + seg.energy_wh)
        else:
            out.append(seg)
    if not out:
        out.append(Segment(tx.started_at, max(end, tx.started_at), Decimal(0)))
    return out


def charging_periods(segs: Sequence[Segment]) -> list[dict[str, Any]]:
    """OCPI ChargingPeriod objects (wire dicts, Decimal values)."""
    periods = []
    for seg in segs:
        hours = (Decimal((seg.end - seg.start).total_seconds()) / HOUR).quantize(QUANTITY)
        if seg.charging:
            dims = [
                {"type": "ENERGY", "volume": (seg.energy_wh / KWH).quantize(QUANTITY)},
                {"type": "TIME", "volume": hours},
            ]
        else:
            dims = [{"type": "PARKING_TIME", "volume": hours}]
        periods.append({"start_date_time": format_datetime(seg.start), "dimensions": dims})
    return periods


def total_energy_kwh(segs: Sequence[Segment]) -> Decimal:
    return (sum((s.energy_wh for s in segs), Decimal(0)) / KWH).quantize(QUANTITY)


def price(
    tariff: dict[str, Any],
    periods: list[dict[str, Any]],
    *,
    start: datetime,
    end: datetime,
    time_zone: str,
    currency: str,
) -> PricingResult:
    """Price periods with the OCPI tariff (decoded JSON) via the tariff engine."""
    cdr = cdr_from_ocpi_dict(
        {
            "start_date_time": format_datetime(start),
            "end_date_time": format_datetime(end),
            "currency": currency,
            "charging_periods": periods,
        }
    )
    compiled = compile_tariff(tariff_from_ocpi_dict(tariff))
    return price_session(
        compiled,
        cdr.charging_periods,
        start_date_time=start,
        end_date_time=end,
        time_zone=time_zone,
        currency=currency,
    )
