"""Charging periods from meter readings, and their price (pure functions).

mod_cdrs: a charging period starts whenever the tariff-relevant situation changes.
Here the situation is "drawing energy" (ENERGY and TIME dimensions) versus "parked"
(PARKING_TIME), told apart by the energy register: an interval between two
readings in which the register did not advance is parking. The tariff engine then
splits periods further at every restriction boundary it needs.
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.domain.models import Measurand, MeterReading, Transaction
from ocpi.tariffs import (
    CompiledTariff,
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


class TariffPricer:
    """Prices periods with OCPI tariffs (decoded JSON), keeping the compiled tariffs.

    Parsing and compiling a tariff costs as much as pricing a session with it, and the
    same few tariffs price every cost update, session PATCH and CDR. Compiled tariffs are
    kept by (country_code, party_id, id, last_updated), at most ``size`` of them, the least
    recently used dropped first. A hit is used only when the tariff is still equal to the
    one that was compiled (a deep ``==``, done in C: a small part of parsing it), so a
    tariff changed without a new ``last_updated`` (OCPI 2.2.1 mod_tariffs requires one;
    not every party sends it) is compiled again, never priced from the stale compiled one.
    (``==`` takes 0.10 for 0.1: the same price, the same rounded totals.)

    One per application, built by its composition root (held by the session service);
    not shared between applications, no module-level state.
    """

    def __init__(self, size: int = 256) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        # key -> (a copy of the tariff as compiled, the compiled tariff)
        self._compiled: OrderedDict[tuple[object, ...], tuple[dict[str, Any], CompiledTariff]]
        self._compiled = OrderedDict()
        self.compiles = 0  # how many tariffs were parsed and compiled (for tests and stats)

    def __len__(self) -> int:
        return len(self._compiled)

    def compiled(self, tariff: dict[str, Any]) -> CompiledTariff:
        """``compile_tariff(tariff_from_ocpi_dict(tariff))``, from the cache when the same
        tariff was compiled before; raises the engine's ``TariffError`` like them."""
        key = (
            tariff.get("country_code"),
            tariff.get("party_id"),
            tariff.get("id"),
            tariff.get("last_updated"),
        )
        try:
            hash(key)
        except TypeError:  # not a valid tariff (an id that is an object): no caching
            self.compiles += 1
            return _compile(tariff)
        entry = self._compiled.get(key)
        if entry is not None and entry[0] == tariff:
            self._compiled.move_to_end(key)
            return entry[1]
        self.compiles += 1
        compiled = _compile(tariff)  # a refused tariff is not kept: it raises each time
        # A copy: the caller may change its dict afterwards.
        self._compiled[key] = (copy.deepcopy(tariff), compiled)
        self._compiled.move_to_end(key)
        if len(self._compiled) > self._size:
            self._compiled.popitem(last=False)
        return compiled

    def price(
        self,
        tariff: dict[str, Any],
        periods: list[dict[str, Any]],
        *,
        start: datetime,
        end: datetime,
        time_zone: str,
        currency: str,
    ) -> PricingResult:
        """:func:`price`, with the tariff compiled once for all the calls that use it."""
        return price(
            tariff,
            periods,
            start=start,
            end=end,
            time_zone=time_zone,
            currency=currency,
            compile_=self.compiled,
        )


def _compile(tariff: dict[str, Any]) -> CompiledTariff:
    return compile_tariff(tariff_from_ocpi_dict(tariff))


def price(
    tariff: dict[str, Any],
    periods: list[dict[str, Any]],
    *,
    start: datetime,
    end: datetime,
    time_zone: str,
    currency: str,
    compile_: Callable[[dict[str, Any]], CompiledTariff] = _compile,
) -> PricingResult:
    """Price periods with the OCPI tariff (decoded JSON) via the tariff engine
    (``compile_`` gives the compiled tariff: :meth:`TariffPricer.compiled` keeps them)."""
    cdr = cdr_from_ocpi_dict(
        {
            "start_date_time": format_datetime(start),
            "end_date_time": format_datetime(end),
            "currency": currency,
            "charging_periods": periods,
        }
    )
    return price_session(
        compile_(tariff),
        cdr.charging_periods,
        start_date_time=start,
        end_date_time=end,
        time_zone=time_zone,
        currency=currency,
    )
