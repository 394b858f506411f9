"""Shared helpers for the tariff engine tests (imported as ``tariff_helpers``).

The test vectors live in the steering repository's ``shared/`` directory, which CI checks
out beside this repository: ``<repo>/../shared/vectors/tariffs/cases.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ocpi.tariffs import (
    CdrDimension,
    CdrDimensionType,
    ChargingPeriod,
    PriceComponent,
    Tariff,
    TariffDimension,
    TariffElement,
    TariffRestrictions,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS_DIR = REPO_ROOT / ".." / "shared" / "vectors" / "tariffs"
CASES_FILE = VECTORS_DIR / "cases.jsonl"


def load_cases() -> list[dict[str, Any]]:
    """The vector cases, numbers as Decimal (never via binary floats)."""
    if not CASES_FILE.is_file():
        pytest.fail(f"tariff vectors not found at {CASES_FILE} (shared/ must sit beside the repo)")
    with CASES_FILE.open(encoding="utf-8") as fh:
        return [json.loads(line, parse_float=Decimal) for line in fh if line.strip()]


def utc(text: str) -> datetime:
    """``"2019-06-03T10:00"`` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def d(value: str | int) -> Decimal:
    return Decimal(value)


def component(kind: str, price: str, *, vat: str | None = None, step: int = 1) -> PriceComponent:
    return PriceComponent(
        type=TariffDimension(kind),
        price=Decimal(price),
        step_size=step,
        vat=None if vat is None else Decimal(vat),
    )


def element(*components: PriceComponent, **restrictions: Any) -> TariffElement:
    return TariffElement(
        price_components=tuple(components),
        restrictions=TariffRestrictions(**restrictions) if restrictions else None,
    )


def tariff(*elements: TariffElement, **fields: Any) -> Tariff:
    fields.setdefault("id", "T1")
    fields.setdefault("currency", "EUR")
    return Tariff(elements=tuple(elements), **fields)


def period(start: datetime, **volumes: str | Decimal) -> ChargingPeriod:
    """A charging period; keyword names are CdrDimensionType values in lower case."""
    return ChargingPeriod(
        start_date_time=start,
        dimensions=tuple(
            CdrDimension(CdrDimensionType(name.upper()), Decimal(value))
            for name, value in volumes.items()
        ),
    )


def hours(minutes: float | int) -> str:
    """Minutes as an exact decimal number of hours (for readable test data)."""
    return str(Decimal(minutes) / Decimal(60))


def steps(start: datetime, *minutes: int) -> Iterable[datetime]:
    """Instants ``start + m`` for each cumulative offset in minutes."""
    for m in minutes:
        yield start + timedelta(minutes=m)


def close(a: Decimal, b: Decimal, tolerance: str = "1e-12") -> bool:
    """Equal up to ``tolerance``: for exact figures built from repeating fractions
    (minutes as hours), which the pricer carries to 18 decimal places."""
    return abs(a - b) <= Decimal(tolerance)
