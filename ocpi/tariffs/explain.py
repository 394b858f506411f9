"""Render a :class:`PricingResult` as a plain-text table an operator can read out to a driver."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ocpi.tariffs.model import Price, TariffDimension
from ocpi.tariffs.result import (
    QUANTITY_PLACES,
    TOTAL_FIELDS,
    BreakdownLine,
    LineKind,
    PricingResult,
    money_places,
    round_half_up,
)

_SHOWN_PLACES = 4  # exact line amounts are shown to 4 places; totals are the rounded ones


def format_explanation(result: PricingResult, time_zone: tzinfo | None = None) -> str:
    """The breakdown (one row per priced piece, fee, step and bound) and the totals."""
    zone = time_zone or _zone(result.time_zone)
    out = [
        f"Tariff {result.tariff_id!r}, currency {result.currency}, local time {result.time_zone}.",
        "Element eN.cM = elements[N].price_components[M]; amounts are exact, totals rounded once.",
        "",
    ]
    header = (
        "Part",
        "Period",
        "From",
        "To",
        "Dimension",
        "Quantity",
        "Element",
        "Unit price",
        "VAT",
        "Excl. VAT",
        "Incl. VAT",
        "Note",
    )
    rows = [_row(line, zone) for line in result.lines]
    out.extend(_table(header, rows, right={5, 7, 8, 9, 10}))
    out.append("")
    places = money_places(result.currency)
    totals = []
    for name in TOTAL_FIELDS:
        value = getattr(result.totals, name)
        exact = getattr(result.exact, name)
        if isinstance(value, Price):
            assert value.incl_vat is not None
            assert exact.incl_vat is not None
            totals.append(
                (
                    name,
                    _fixed(value.excl_vat, places),
                    _fixed(value.incl_vat, places),
                    f"exact {_plain(exact.excl_vat)} / {_plain(exact.incl_vat)}",
                )
            )
        else:
            unit = "kWh" if name == "total_energy" else "h"
            totals.append((name, f"{_fixed(value, QUANTITY_PLACES)} {unit}", "", ""))
    out.extend(_table(("Total", "Excl. VAT", "Incl. VAT", ""), totals, right={1, 2}))
    if result.reservation_expired is not None:
        state = "expired unused" if result.reservation_expired else "followed by a session"
        out.append(f"Reservation: {state}.")
    if result.warnings:
        out.append("")
        out.append("Warnings:")
        out.extend(f"  - {w}" for w in result.warnings)
    return "\n".join(out) + "\n"


def _row(line: BreakdownLine, zone: tzinfo) -> tuple[str, ...]:
    element = "" if line.element_index is None else f"e{line.element_index}.c{line.component_index}"
    vat = "none" if line.price is not None and line.vat is None else _percent(line.vat)
    assert line.cost.incl_vat is not None
    return (
        line.part.value,
        "" if line.period_index is None else str(line.period_index),
        _local(line.start, zone, with_date=True),
        _local(line.end, zone, with_date=False),
        _dimension(line),
        _quantity(line),
        element,
        _unit_price(line),
        vat,
        _fixed(line.cost.excl_vat, _SHOWN_PLACES),
        _fixed(line.cost.incl_vat, _SHOWN_PLACES),
        line.note,
    )


def _dimension(line: BreakdownLine) -> str:
    if line.kind in (LineKind.MIN_PRICE, LineKind.MAX_PRICE):
        return line.kind.value
    assert line.dimension is not None
    name = line.dimension.value
    if line.kind is LineKind.STEP_SIZE:
        return f"{name} step"
    return name


def _quantity(line: BreakdownLine) -> str:
    dim = line.dimension
    if dim is None or dim is TariffDimension.FLAT:
        return "1" if dim is TariffDimension.FLAT else ""
    if dim is TariffDimension.ENERGY:
        return f"{_fixed(line.volume, 4)} kWh"
    seconds = line.volume * 3600
    whole = int(round_half_up(seconds, 0))
    return f"{_fixed(line.volume, 4)} h ({whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d})"


def _unit_price(line: BreakdownLine) -> str:
    if line.price is None:
        return ""
    unit = (
        {
            TariffDimension.ENERGY: "/kWh",
            TariffDimension.TIME: "/h",
            TariffDimension.PARKING_TIME: "/h",
        }.get(line.dimension)
        if line.dimension
        else None
    )
    return f"{_money(line.price)}{unit or ''}"


def _money(value: Decimal) -> str:
    """At least two decimals, as prices are usually written (0.25, 2.40), never fewer."""
    text = _plain(value)
    decimals = len(text.partition(".")[2])
    return text if decimals >= 2 else _fixed(value, 2)


def _percent(vat: Decimal | None) -> str:
    return "" if vat is None else f"{_plain(vat)}%"


def _local(value: datetime | None, zone: tzinfo, *, with_date: bool) -> str:
    if value is None:
        return ""
    local = value.astimezone(zone)
    text = local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    return text + (f" {local.tzname()}" if with_date else "")


def _fixed(value: Decimal, places: int) -> str:
    return format(round_half_up(value, places), "f")


def _plain(value: Decimal) -> str:
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.normalize(), "f")


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        from datetime import UTC

        return UTC


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> list[str]:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def render(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    lines = [render(header), render(["-" * w for w in widths])]
    lines.extend(render(row) for row in rows)
    return lines
