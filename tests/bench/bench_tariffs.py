"""Benchmark of the OCPI tariff engine: CDRs priced per second on one core, beside the
previous engine pricing the same cases in the same run.

Run: ``python tests/bench/bench_tariffs.py [--seconds N] [--baseline REV] [--stages R]``.
Not collected by pytest. ``--stages R`` also times each stage of the vectors alone (parse
the tariff, compile, parse the CDR, price), µs per case beside the previous engine.

The baseline is the engine as it was at git revision ``--baseline`` (by default the last
revision before the engine was optimised for issue 15): its files are read with
``git show REV:ocpi/tariffs/...`` into a temporary package (``ocpi.tariffs`` renamed), so no
old code is kept in the product. Both engines price every case first and must give the same
answers (totals, exact totals, every breakdown line, warnings; compared by ``repr``, so the
Decimal exponents must match too, and errors by kind, field and reason); the bench aborts
otherwise. Then each rate is measured for both, alternately, and printed with the ratio.

Case sets:

- vectors: the 48 public vectors of ``shared/vectors/tariffs`` (beside the repository), each
  with its own tariff, CDR, OCPI version and time zone. "full" is what a CDR builder does
  with a tariff it has just received: parse the tariff, compile it, parse the CDR, price it
  (the two non-conformant vectors are refused while parsing: the error is their answer);
  "parse+price" and "priced" reuse the compiled tariff (46 cases).
- simple: one element, 0.25/kWh (OCPI spec example tariff_8); 1-4 charging periods;
- complex: the spec's "Complex Tariff example" (tariff_4_complex): FLAT, TIME by current
  and weekday, PARKING_TIME by day and time of day; charging periods with current
  readings, then parking; Europe/Amsterdam;
- hourly-48: a real CPO tariff with 48 hourly ENERGY elements (start/end date + time);
  sessions of 1-6 h in 15-minute periods, so many cross an hour (and get cut there).

For the generated sets the tariff is compiled once (as the CDR builder does for a known
tariff): "priced" is pricing only (CDR already parsed), "parse+price" from the OCPI JSON dict.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import ocpi.tariffs as current_engine  # noqa: E402  (the path above makes the checkout importable)

CASES = ROOT / ".." / "shared" / "vectors" / "tariffs" / "cases.jsonl"
# The engine before issue 15's optimisation (the commit that last changed ocpi/tariffs then).
BASELINE_REV = "b46d3f6c66a884a5b225491436e022e6bd4df1be"
PREVIOUS_PACKAGE = "_tariffs_previous"
TARGETS = {"vectors": 15_000, "simple": 20_000, "hourly-48": 2_000}


# --------------------------------------------------------------------------- the baseline


def load_previous_engine(rev: str, into: Path) -> ModuleType:
    """Import ``ocpi/tariffs`` as it was at ``rev`` as the top-level package
    ``_tariffs_previous`` (files from ``git show``, written under ``into``)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    package = into / PREVIOUS_PACKAGE
    package.mkdir()
    for name in git("ls-tree", "--name-only", rev, "ocpi/tariffs/").split():
        if not name.endswith(".py"):
            continue
        source = git("show", f"{rev}:{name}").replace("ocpi.tariffs", PREVIOUS_PACKAGE)
        (package / Path(name).name).write_text(source, encoding="utf-8")
    sys.path.insert(0, str(into))
    try:
        return importlib.import_module(PREVIOUS_PACKAGE)
    finally:
        sys.path.remove(str(into))


# --------------------------------------------------------------------------- case sets


def load_vectors() -> list[dict[str, Any]]:
    with CASES.open(encoding="utf-8") as fh:
        return [json.loads(line, parse_float=Decimal) for line in fh if line.strip()]


def _case_tariff(vectors: list[dict[str, Any]], name_part: str) -> dict[str, Any]:
    for case in vectors:
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


class Case:
    """One CDR to price: its tariff (OCPI JSON), CDR (OCPI JSON) and how to price it."""

    __slots__ = ("cdr", "expired", "tariff", "time_zone", "version")

    def __init__(
        self,
        tariff: dict[str, Any],
        cdr: dict[str, Any],
        *,
        version: str = "2.2.1",
        time_zone: str | None = None,
        expired: bool | None = None,
    ) -> None:
        self.tariff = tariff
        self.cdr = cdr
        self.version = version
        self.time_zone = time_zone
        self.expired = expired


class Runner:
    """The three measured loops of one case set on one engine."""

    def __init__(self, engine: ModuleType, cases: list[Case]) -> None:
        self.engine = engine
        self.cases = cases
        # Tariffs compiled once (shared by the cases of a generated set), for the cases
        # whose tariff and CDR parse.
        compiled: dict[int, Any] = {}
        self.prepared: list[tuple[Any, Any, Case]] = []
        for case in cases:
            try:
                key = id(case.tariff)
                if key not in compiled:
                    tariff = engine.tariff_from_ocpi_dict(case.tariff, version=case.version)
                    compiled[key] = engine.compile_tariff(tariff)
                cdr = engine.cdr_from_ocpi_dict(case.cdr, version=case.version)
            except engine.TariffError:
                continue
            self.prepared.append((compiled[key], cdr, case))

    def answers(self) -> list[str]:
        """Every case's full answer, as text (the comparison of the two engines)."""
        e = self.engine
        out = []
        for case in self.cases:
            try:
                tariff = e.compile_tariff(
                    e.tariff_from_ocpi_dict(case.tariff, version=case.version)
                )
                cdr = e.cdr_from_ocpi_dict(case.cdr, version=case.version)
                result = e.price_cdr(
                    tariff, cdr, time_zone=case.time_zone, reservation_expired=case.expired
                )
            except e.TariffError as exc:
                out.append(f"{type(exc).__name__} {exc.field!r} {exc.reason!r}")
                continue
            out.append(
                repr(
                    (
                        result.totals,
                        result.exact,
                        result.lines,
                        result.warnings,
                        result.reservation_expired,
                        result.currency,
                        result.tariff_id,
                        result.time_zone,
                    )
                )
            )
        return out

    def full(self) -> None:
        e = self.engine
        parse_tariff, parse_cdr = e.tariff_from_ocpi_dict, e.cdr_from_ocpi_dict
        compile_tariff, price_cdr, error = e.compile_tariff, e.price_cdr, e.TariffError
        for case in self.cases:
            try:  # noqa: SIM105  (contextlib.suppress would add its own cost to the loop)
                price_cdr(
                    compile_tariff(parse_tariff(case.tariff, version=case.version)),
                    parse_cdr(case.cdr, version=case.version),
                    time_zone=case.time_zone,
                    reservation_expired=case.expired,
                )
            except error:
                pass

    def parse_and_price(self) -> None:
        parse_cdr, price_cdr = self.engine.cdr_from_ocpi_dict, self.engine.price_cdr
        for compiled, _, case in self.prepared:
            price_cdr(
                compiled,
                parse_cdr(case.cdr, version=case.version),
                time_zone=case.time_zone,
                reservation_expired=case.expired,
            )

    def priced(self) -> None:
        price_cdr = self.engine.price_cdr
        for compiled, cdr, case in self.prepared:
            price_cdr(compiled, cdr, time_zone=case.time_zone, reservation_expired=case.expired)


def _rates(fns: list[Callable[[], None]], count: int, seconds: float) -> list[float]:
    """Items per CPU second of this process for each of ``fns`` (each handles ``count``
    items): CPU time, not wall time, so that other work on a shared machine does not count
    against the pricer; the functions take turns for ``seconds`` each in all, in rounds, and
    the best round of each is kept for the same reason."""
    for fn in fns:
        fn()  # warm up caches (zone info, memoised element choices)
    best = [0.0] * len(fns)
    rounds = 5
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            gc.collect()
            done = 0
            began = time.process_time()
            while True:
                fn()
                done += count
                elapsed = time.process_time() - began
                if elapsed >= seconds / rounds:
                    break
            best[i] = max(best[i], done / elapsed)
    return best


def stage_times(
    engines: list[ModuleType], cases: list[Case], repeats: int
) -> list[dict[str, float]]:
    """µs per case of each stage (parse the tariff, compile it, parse the CDR, price it),
    for each engine: every stage of every case timed alone, the engines taking turns, the
    minimum of ``repeats`` runs of 20 kept, then averaged over the cases both engines price.
    Steadier than the rates on a busy machine (a minimum filters out the interruptions),
    and it says where the time goes."""
    totals: list[dict[str, float]] = [dict.fromkeys(STAGES, 0.0) for _ in engines]
    priced = 0
    for case in cases:
        stages = [_stages(engine, case) for engine in engines]
        if any(s is None for s in stages):
            continue  # refused while parsing (the refusal is its answer)
        priced += 1
        for name in STAGES:
            best = [float("inf")] * len(engines)
            for _ in range(repeats):
                for i, fns in enumerate(stages):
                    assert fns is not None
                    fn = fns[name]
                    began = time.perf_counter()
                    for _ in range(20):
                        fn()
                    best[i] = min(best[i], (time.perf_counter() - began) / 20)
            for i, seconds in enumerate(best):
                totals[i][name] += seconds * 1e6
    return [{name: us / priced for name, us in t.items()} for t in totals]


STAGES = ("parse tariff", "compile", "parse CDR", "price")


def _stages(engine: ModuleType, case: Case) -> dict[str, Callable[[], object]] | None:
    e, version = engine, case.version
    try:
        tariff = e.tariff_from_ocpi_dict(case.tariff, version=version)
        compiled = e.compile_tariff(tariff)
        cdr = e.cdr_from_ocpi_dict(case.cdr, version=version)
    except e.TariffError:
        return None
    return {
        "parse tariff": lambda: e.tariff_from_ocpi_dict(case.tariff, version=version),
        "compile": lambda: e.compile_tariff(tariff),
        "parse CDR": lambda: e.cdr_from_ocpi_dict(case.cdr, version=version),
        "price": lambda: e.price_cdr(
            compiled, cdr, time_zone=case.time_zone, reservation_expired=case.expired
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="CPU time per rate and engine (default 2)"
    )
    parser.add_argument(
        "--cdrs", type=int, default=500, help="CDRs generated per tariff (default 500)"
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE_REV,
        help=f"git revision of the previous engine (default {BASELINE_REV[:10]})",
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        default=["vectors", "simple", "complex", "hourly-48"],
        choices=["vectors", "simple", "complex", "hourly-48"],
    )
    parser.add_argument(
        "--stages",
        type=int,
        default=0,
        metavar="REPEATS",
        help="also time each stage of the vectors alone (µs per case, minimum of REPEATS)",
    )
    args = parser.parse_args()
    vectors = load_vectors()
    rng = random.Random(20250820)
    sets: dict[str, list[Case]] = {
        "vectors": [
            Case(
                c["tariff"],
                c["cdr"],
                version=c["ocpi_version"],
                time_zone=c["time_zone"],
                expired=c.get("reservation", {}).get("expired"),
            )
            for c in vectors
        ]
    }
    for label, part, make in (
        ("simple", "tariff_8_simple_025kwh", simple_cdrs),
        ("complex", "tariff_4_complex/monday", complex_cdrs),
        ("hourly-48", "codeberg_issue_228", hourly_cdrs),
    ):
        doc = _case_tariff(vectors, part)
        sets[label] = [Case(doc, cdr) for cdr in make(rng, args.cdrs)]

    with tempfile.TemporaryDirectory(prefix="bench-tariffs-") as tmp:
        previous = load_previous_engine(args.baseline, Path(tmp))
    print(
        f"Python {platform.python_version()} on {platform.machine()}; one process, one core; "
        f"rates per CPU second (best of 5 alternating rounds); baseline: the engine at "
        f"{args.baseline[:10]}"
    )
    header = (
        f"{'set':<10} {'measure':<12} {'cases':>6} {'periods':>7} "
        f"{'CDRs/s':>9} {'previous':>9} {'ratio':>6}  target"
    )
    print(header)
    for label in args.sets:
        cases = sets[label]
        now, before = Runner(current_engine, cases), Runner(previous, cases)
        a, b = now.answers(), before.answers()
        differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if differ:
            i = differ[0]
            print(f"{label}: {len(differ)} case(s) priced differently; the first, case {i}:")
            print(f"  now:      {a[i]}\n  previous: {b[i]}")
            return 1
        periods = sum(len(c.cdr["charging_periods"]) for c in cases) / len(cases)
        measures: list[tuple[str, Callable[[Runner], Callable[[], None]], int]] = []
        if label == "vectors":
            measures.append(("full", lambda r: r.full, len(cases)))
        measures.append(("parse+price", lambda r: r.parse_and_price, len(now.prepared)))
        measures.append(("priced", lambda r: r.priced, len(now.prepared)))
        for name, pick, count in measures:
            fast, slow = _rates([pick(now), pick(before)], count, args.seconds)
            # The vectors' target is for the full path, the generated sets' for pricing.
            wanted = "full" if label == "vectors" else "priced"
            target = TARGETS.get(label) if name == wanted else None
            verdict = (
                "" if target is None else f"{target:>6,} {'met' if fast >= target else 'MISSED'}"
            )
            print(
                f"{label:<10} {name:<12} {count:>6} {periods:>7.1f} "
                f"{fast:>9,.0f} {slow:>9,.0f} {fast / slow:>5.2f}x  {verdict}"
            )
    print("same answers as the previous engine on every case")
    if args.stages:
        now_us, before_us = stage_times([current_engine, previous], sets["vectors"], args.stages)
        print(f"vectors, µs per case (minimum of {args.stages} repeats): now / previous")
        for name in STAGES:
            print(f"  {name:<13} {now_us[name]:6.1f} / {before_us[name]:6.1f}")
        now_sum, before_sum = sum(now_us.values()), sum(before_us.values())
        print(f"  {'all':<13} {now_sum:6.1f} / {before_sum:6.1f}  ({before_sum / now_sum:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
