"""Benchmark of the OCPI tariff engine: CDRs priced per second on one core.

Run: ``python tests/bench/bench_tariffs.py [--seconds N]``. Not collected by pytest.

Three tariffs from ``shared/vectors/tariffs`` (beside the repository), each with a set of
generated, realistic CDRs, priced with the tariff compiled once (as the CDR builder does):

- simple: one element, 0.25/kWh (OCPI spec example tariff_8); 1-4 charging periods;
- complex: the spec's "Complex Tariff example" (tariff_4_complex): FLAT, TIME by current
  and weekday, PARKING_TIME by day and time of day; charging periods with current
  readings, then parking; Europe/Amsterdam;
- hourly-48: a real CPO tariff with 48 hourly ENERGY elements (start/end date + time);
  sessions of 1-6 h in 15-minute periods, so many cross an hour (and get cut there).

Figures: pricing only (CDR already parsed), and parse + price from the OCPI JSON dict.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ocpi.tariffs import (  # noqa: E402  (the path above makes the checkout importable)
    Cdr,
    CompiledTariff,
    cdr_from_ocpi_dict,
    compile_tariff,
    price_cdr,
    tariff_from_ocpi_dict,
)

CASES = ROOT / ".." / "shared" / "vectors" / "tariffs" / "cases.jsonl"
TARGETS = {"simple": 20_000, "hourly-48": 2_000}


def _case_tariff(name_part: str) -> dict[str, Any]:
    with CASES.open(encoding="utf-8") as fh:
        for line in fh:
            case = json.loads(line, parse_float=Decimal)
            if name_part in case["name"]:
                return dict(case["tariff"])
    raise SystemExit(f"no vector case matching {name_part!r} in {CASES}")


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cdr(
    start: datetime, periods: list[tuple[int, list[dict[str, Any]]]], zone: str
) -> dict[str, Any]:
    charging, at = [], start
    for minutes, dims in periods:
        charging.append({"start_date_time": _iso(at), "dimensions": dims})
        at += timedelta(minutes=minutes)
    return {
        "country_code": "NL",
        "party_id": "EXA",
        "id": f"bench-{start.timestamp():.0f}",
        "start_date_time": _iso(start),
        "end_date_time": _iso(at),
        "currency": "EUR",
        "cdr_location": {"country": "NLD", "time_zone": zone},
        "charging_periods": charging,
        "last_updated": _iso(at),
    }


def _hours(minutes: int) -> Decimal:
    return (Decimal(minutes) / 60).quantize(Decimal("0.000001"))


def simple_cdrs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(365 * 24 * 60))
        periods = []
        for _ in range(rng.randint(1, 4)):
            minutes = rng.randint(15, 60)
            kwh = Decimal(rng.randint(500, 30000)) / 1000
            periods.append(
                (
                    minutes,
                    [
                        {"type": "ENERGY", "volume": kwh},
                        {"type": "TIME", "volume": _hours(minutes)},
                    ],
                )
            )
        out.append(_cdr(start, periods, "UTC"))
    return out


def complex_cdrs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(365 * 24 * 60))
        periods = []
        for _ in range(rng.randint(1, 3)):
            minutes = rng.randint(20, 90)
            amps = rng.choice([10, 16, 24, 40, 63])
            periods.append(
                (
                    minutes,
                    [
                        {"type": "ENERGY", "volume": Decimal(rng.randint(1000, 30000)) / 1000},
                        {"type": "TIME", "volume": _hours(minutes)},
                        {"type": "MIN_CURRENT", "volume": amps - 2},
                        {"type": "MAX_CURRENT", "volume": amps},
                    ],
                )
            )
        if rng.random() < 0.7:
            minutes = rng.randint(5, 120)
            periods.append((minutes, [{"type": "PARKING_TIME", "volume": _hours(minutes)}]))
        out.append(_cdr(start, periods, "Europe/Amsterdam"))
    return out


def hourly_cdrs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    # The tariff's elements cover 2025-08-20 and 2025-08-21 (local time).
    first = datetime(2025, 8, 19, 22, 0, tzinfo=UTC)
    for _ in range(n):
        start = first + timedelta(minutes=rng.randrange(36 * 60))
        quarters = rng.randint(4, 24)
        periods = [
            (15, [{"type": "ENERGY", "volume": Decimal(rng.randint(200, 5500)) / 1000}])
            for _ in range(quarters)
        ]
        out.append(_cdr(start, periods, "Europe/Amsterdam"))
    return out


def _rate(fn: Callable[[], None], count: int, seconds: float) -> float:
    """Items per CPU second of this process: repeat ``fn`` (which handles ``count`` items)
    for ``seconds``. CPU time, not wall time, so that other work on a shared machine does
    not count against the pricer; the best of three rounds is kept for the same reason."""
    fn()  # warm up caches (zone info, memoised element choices)
    best = 0.0
    for _ in range(3):
        gc.collect()
        done = 0
        began = time.process_time()
        while True:
            fn()
            done += count
            elapsed = time.process_time() - began
            if elapsed >= seconds / 3:
                break
        best = max(best, done / elapsed)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="time per measurement (default 2)"
    )
    parser.add_argument(
        "--cdrs", type=int, default=500, help="CDRs generated per tariff (default 500)"
    )
    args = parser.parse_args()
    rng = random.Random(20250820)
    sets = [
        ("simple", _case_tariff("tariff_8_simple_025kwh"), simple_cdrs(rng, args.cdrs)),
        ("complex", _case_tariff("tariff_4_complex/monday"), complex_cdrs(rng, args.cdrs)),
        ("hourly-48", _case_tariff("codeberg_issue_228"), hourly_cdrs(rng, args.cdrs)),
    ]
    print(
        f"Python {platform.python_version()} on {platform.machine()}; one process, one core; "
        "rates per CPU second (best of 3)"
    )
    print(
        f"{'tariff':<10} {'elements':>8} {'periods/CDR':>11} {'priced CDRs/s':>14} {'parse+price/s':>14}  target"
    )
    overall: list[float] = []
    for label, tariff_doc, cdr_docs in sets:
        compiled: CompiledTariff = compile_tariff(tariff_from_ocpi_dict(tariff_doc))
        cdrs: list[Cdr] = [cdr_from_ocpi_dict(doc) for doc in cdr_docs]
        checksum = sum(price_cdr(compiled, cdr).totals.total_cost.excl_vat for cdr in cdrs)
        assert checksum > 0

        def price_all(compiled: CompiledTariff = compiled, cdrs: list[Cdr] = cdrs) -> None:
            for cdr in cdrs:
                price_cdr(compiled, cdr)

        def parse_and_price_all(
            compiled: CompiledTariff = compiled, docs: list[dict[str, Any]] = cdr_docs
        ) -> None:
            for doc in docs:
                price_cdr(compiled, cdr_from_ocpi_dict(doc))

        priced = _rate(price_all, len(cdrs), args.seconds)
        parsed = _rate(parse_and_price_all, len(cdrs), args.seconds)
        overall.append(priced)
        periods = sum(len(c.charging_periods) for c in cdrs) / len(cdrs)
        target = TARGETS.get(label)
        verdict = (
            "" if target is None else f"{target:>6,} {'met' if priced >= target else 'MISSED'}"
        )
        print(
            f"{label:<10} {len(compiled.tariff.elements):>8} {periods:>11.1f} "
            f"{priced:>14,.0f} {parsed:>14,.0f}  {verdict}"
        )
    mix = len(overall) / sum(1 / r for r in overall)
    print(f"{'mix':<10} {'':>8} {'':>11} {mix:>14,.0f}  (equal thirds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
