#!/usr/bin/env python
"""One SQLite store driven at a steady rate, as a charger fleet drives it: CPU per operation.

    .venv/bin/python tests/bench/bench_store_steady.py [--rate 700] [--ops 3000] [--op get]

Operations are started one every ``1 / --rate`` seconds on uvloop (each its own task, as
each charger's message is), ``--op``: ``get`` (``chargers.get``, a point read), ``put``
(``connectors.put``, a one-row write), ``both`` (a put, then a get), ``list``
(``connectors.list``, a charger's two connectors: what the location catalog reads at every
status change of a placed charger). Printed: the process's
CPU per operation (every thread: the loop, SQLite's writer and reader, kernel time with
the fsyncs), latency p50/p99, the writer's transactions, voluntary context switches per
operation. A sleep and wake-up of the driver alone is part of every figure (``--op none``
measures it: about 90 µs on the 2-core development VM). Run it on an older tree with
``PYTHONPATH=<worktree>`` to compare (issue 15, tests/bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.domain.models import Charger, ConnectorState, ConnectorStatus
from gateway.storage.sqlite import open_sqlite_store

CHARGERS = 200


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-store-steady-") as tmp:
        store = await open_sqlite_store(Path(tmp) / "gateway.sqlite3")
        try:
            now = datetime.now(UTC)
            for i in range(CHARGERS):
                await store.chargers.put(Charger(id=f"CP-{i}"))
                if args.op == "list":
                    for connector_id in (1, 2):
                        await store.connectors.put(
                            ConnectorState(
                                f"CP-{i}", 1, connector_id, ConnectorStatus.AVAILABLE, now
                            )
                        )
            latencies: list[float] = []
            statuses = (ConnectorStatus.AVAILABLE, ConnectorStatus.PREPARING)

            async def one(i: int) -> None:
                started = time.perf_counter()
                charger_id = f"CP-{i % CHARGERS}"
                if args.op in ("put", "both"):
                    state = ConnectorState(charger_id, 1, 1, statuses[i % 2], now)
                    await store.connectors.put(state)
                if args.op in ("get", "both"):
                    await store.chargers.get(charger_id)
                if args.op == "list":
                    await store.connectors.list(charger_id)
                latencies.append(time.perf_counter() - started)

            for i in range(CHARGERS):  # warm-up
                await one(i)
            latencies.clear()
            batches0 = store.backend.writer_batches  # type: ignore[attr-defined]
            cpu0 = time.process_time()
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            tasks = []
            due = time.perf_counter()
            for i in range(args.ops):
                tasks.append(asyncio.ensure_future(one(i)))
                due += 1 / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.gather(*tasks)
            cpu = time.process_time() - cpu0
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            batches = store.backend.writer_batches - batches0  # type: ignore[attr-defined]
        finally:
            await store.close()
    latencies.sort()
    n = args.ops
    print(
        f"{args.op} at {args.rate:.0f}/s: CPU {cpu / n * 1e6:.1f} µs per operation "
        f"(kernel {(usage1.ru_stime - usage0.ru_stime) / n * 1e6:.1f}), "
        f"p50 {latencies[n // 2] * 1e3:.2f} ms, p99 {latencies[int(n * 0.99)] * 1e3:.2f} ms, "
        f"{batches} write transactions, "
        f"{(usage1.ru_nvcsw - usage0.ru_nvcsw) / n:.2f} context switches per operation",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=700.0, help="operations/s (700)")
    parser.add_argument("--ops", type=int, default=3000, help="operations measured (3000)")
    parser.add_argument("--op", choices=("none", "get", "put", "both", "list"), default="both")
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
