"""What metrics add to a message: the calls the gateway makes per OCPP message and per OCPI
request, timed alone in one process (CPU time), beside the same calls with metrics off.

``bench_ocpp.py --compare-metrics ROUNDS`` measures the same end to end (the whole gateway
with ``GATEWAY_METRICS`` off and on, in turn), but on this shared 2-core machine its figures
move by tens of µs per message from run to run, far more than metrics cost. Here each hot
path's metrics calls run alone, as the gateway makes them:

* **OCPP message**: the counter of the CALL answered (``OcppCounters.call_received``, the
  bench's mix of Heartbeat, StatusNotification and MeterValues from 1.6 chargers) against
  the no-op the central system holds with metrics off (``NoMetrics``), and the storage
  write timer (``Metrics.storage_observer``: a histogram observation per SQLite batch or
  Redis pipeline; at a steady rate about one batch per message, the worst case) against
  the ``None`` check the store makes without it;
* **OCPI request**: ``Metrics.ocpi_middleware`` around a handler that answers at once,
  against calling the handler directly.

Each figure is the best of ``--rounds`` rounds of ``--calls`` calls (CPU time of this
thread), printed beside its baseline; the sum per OCPP message is set against the server
CPU per message that ``bench_ocpp.py`` measures (``--message-us``, 100 µs: issue 15's
target at a steady rate; the lower a message's cost, the larger the share).

```sh
.venv/bin/python tests/bench/bench_metrics.py
```
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.csms.core import NoMetrics
from gateway.metrics import Metrics

ACTIONS = ("Heartbeat", "StatusNotification", "MeterValues")


def best(fn: Callable[[int], None], calls: int, rounds: int) -> float:
    """µs of CPU per call, the best of ``rounds``."""
    figures = []
    for _ in range(rounds):
        started = time.thread_time()
        fn(calls)
        figures.append((time.thread_time() - started) / calls * 1e6)
    return min(figures)


def ocpp_counter(counters: object) -> Callable[[int], None]:
    received = counters.call_received  # type: ignore[attr-defined]

    def run(calls: int) -> None:
        for i in range(calls):
            received("1.6", ACTIONS[i % 3], "result")

    return run


def storage_timer(observe: Callable[[float], None] | None) -> Callable[[int], None]:
    # What the store's writer thread does around each batch, less what it does anyway
    # (reading the clock before and after).
    def run(calls: int) -> None:
        for _ in range(calls):
            if observe is not None:
                observe(0.000_4)

    return run


def ocpi_requests(metrics: Metrics | None) -> Callable[[int], None]:
    requests = [
        make_mocked_request("GET", "/ocpi/2.2.1/locations?offset=0&limit=10"),
        make_mocked_request("PUT", "/ocpi/2.2.1/tokens/NL/EMS/T1"),
        make_mocked_request("POST", "/ocpi/2.2.1/commands/START_SESSION"),
    ]
    answer = web.Response(status=200)

    async def handler(request: web.Request) -> web.StreamResponse:
        return answer

    async def calls_with(n: int) -> None:
        assert metrics is not None
        middleware = metrics.ocpi_middleware
        for i in range(n):
            await middleware(requests[i % 3], handler)

    async def calls_without(n: int) -> None:
        for i in range(n):
            await handler(requests[i % 3])

    def run(calls: int) -> None:
        asyncio.run(calls_without(calls) if metrics is None else calls_with(calls))

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--message-us",
        type=float,
        default=100.0,
        help="server CPU per OCPP message to set the cost against (bench_ocpp.py)",
    )
    args = parser.parse_args()
    metrics = Metrics()
    rows = [
        (
            "OCPP: CALL answered counted",
            best(ocpp_counter(metrics.ocpp), args.calls, args.rounds),
            best(ocpp_counter(NoMetrics()), args.calls, args.rounds),
        ),
        (
            "storage: batch timed",
            best(storage_timer(metrics.storage_observer("sqlite")), args.calls, args.rounds),
            best(storage_timer(None), args.calls, args.rounds),
        ),
        (
            "OCPI: request counted",
            best(ocpi_requests(metrics), args.calls // 4, args.rounds),
            best(ocpi_requests(None), args.calls // 4, args.rounds),
        ),
    ]
    print(f"metrics' calls alone, CPU per call (best of {args.rounds} rounds):")
    print(f"  {'':32} {'metrics on':>12} {'off':>10} {'added':>10}")
    for name, on, off in rows:
        print(f"  {name:32} {on:9.2f} µs {off:7.2f} µs {on - off:7.2f} µs")
    per_message = sum(on - off for _, on, off in rows[:2])
    print(
        f"per OCPP message (one CALL answered, one storage batch): {per_message:.2f} µs,"
        f" {per_message / args.message_us * 100:.1f} % of {args.message_us:g} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
