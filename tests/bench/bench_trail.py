"""The message trail alone: CPU per OCPP frame recorded, on the event loop and in the
store's threads, without the rest of the gateway around it (bench_ocpp.py --compare-trail
measures the same end to end, where the machine's noise is larger than the trail).

In one process: a ``TrailRecorder`` on a real store (SQLite in a temp dir, or Redis db 14
under a fresh prefix with ``--redis``), fed the frames ``bench_ocpp.py``'s chargers send
(Heartbeat, StatusNotification, MeterValues and their answers, from ``--chargers``
chargers) as the central system's connections report them, flushed as its writer task
does. The trail is first filled with ``--prefill`` entries (an index's insert costs more
in a bigger tree), then ``--entries`` are measured: the event-loop thread's CPU
(recording, and the flushes' share of the loop) and the whole process's (the rest is the
store's threads: SQLite's writer; on Redis the client is on the loop and the server's
CPU is not counted). Run it on two trees (``PYTHONPATH=<worktree>``) to compare them: it
uses only the recorder's public calls.

    .venv/bin/python tests/bench/bench_trail.py [--redis] [--bodies] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from loadgen import CYCLE, KINDS

from gateway.storage.base import Store
from gateway.storage.redis import open_redis_store
from gateway.storage.redis_keys import RedisKeys
from gateway.storage.sqlite import open_sqlite_store
from gateway.trail import TrailConfig, TrailRecorder


@asynccontextmanager
async def open_store(args: argparse.Namespace) -> AsyncIterator[Store]:
    if not args.redis:
        with tempfile.TemporaryDirectory(prefix="bench-trail-") as tmp:
            store = await open_sqlite_store(Path(tmp) / "gateway.sqlite3")
            try:
                yield store
            finally:
                await store.close()
        return
    prefix = f"gwbench:{uuid.uuid4().hex}:"
    store = await open_redis_store(args.redis_url, prefix=prefix)
    try:
        yield store
    finally:
        await store.close()
        client = aioredis.Redis.from_url(args.redis_url)
        keys = [key async for key in client.scan_iter(RedisKeys(prefix).match_all(), 1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


def frames(chargers: int, n: int) -> list[tuple[str, str, str, str, str]]:
    """(charger, message id, action, CALL text, CALLRESULT text), n of them."""
    out = []
    for i in range(n):
        kind, tail = CYCLE[i % len(CYCLE)]
        mid = f"m{i}"
        answer = '{"currentTime":"2025-01-01T00:00:00Z"}' if kind == 0 else "{}"
        charger = f"CP{i * 7919 % chargers:06d}"
        out.append((charger, mid, KINDS[kind], f'[2,"{mid}{tail}', f'[3,"{mid}",{answer}]'))
    return out


async def feed(
    recorder: TrailRecorder, items: list[tuple[str, str, str, str, str]], prune: bool = False
) -> float:
    """Record the frames as the connections do, flushing as the writer task would (every
    ``flush_entries``), and with ``prune`` pruning after each flush as the ``trail``
    lease's holder does (a trail at its ``max_entries`` deletes as much as it gains);
    answer the event-loop thread's CPU seconds."""
    every = recorder.config.flush_entries
    ocpp = recorder.ocpp
    # The loop thread's own CPU: while it awaits a flush it sleeps in epoll (the store's
    # thread works; in the gateway the loop would serve chargers meanwhile).
    started = time.thread_time()
    for charger, mid, action, call, result in items:
        ocpp(charger, "in", call, "CALL", mid, action, None, None)
        ocpp(charger, "out", result, "CALLRESULT", mid, action, None, None)
        if recorder.queued >= every:
            await recorder.flush()
            if prune:
                await recorder.prune()
    await recorder.flush()
    if prune:
        await recorder.prune()
    return time.thread_time() - started


async def busy(stop: asyncio.Event) -> None:
    """A loop as busy as the gateway's at saturation: Python work between system calls
    that release the GIL (as socket writes do), so that the store's thread competes for
    the GIL as it does in the gateway."""
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        while not stop.is_set():
            for _ in range(20):
                sum(range(200))
                os.write(sink, b"x")
            await asyncio.sleep(0)
    finally:
        os.close(sink)


async def one_round(args: argparse.Namespace) -> tuple[float, float]:
    stop = asyncio.Event()
    spinner = asyncio.create_task(busy(stop)) if args.busy else None
    try:
        return await _round(args)
    finally:
        stop.set()
        if spinner is not None:
            await spinner


async def _round(args: argparse.Namespace) -> tuple[float, float]:
    async with open_store(args) as store:
        config = TrailConfig(
            bodies=args.bodies,
            flush_entries=args.flush_entries,
            max_entries=args.prefill if args.at_cap else TrailConfig().max_entries,
        )
        recorder = TrailRecorder(store.trail, lambda: datetime.now(UTC), config)
        for start in range(0, args.prefill // 2, 50_000):
            await feed(recorder, frames(args.chargers, min(50_000, args.prefill // 2 - start)))
        items = frames(args.chargers, args.entries // 2)
        gc.collect()
        process = time.process_time()
        loop_cpu = await feed(recorder, items, prune=args.at_cap)
        total = time.process_time() - process
        assert recorder.dropped_failed == 0 and recorder.dropped_full == 0
        n = 2 * len(items)
        return loop_cpu / n * 1e6, (total - loop_cpu) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", action="store_true", help="Redis instead of SQLite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--bodies", action="store_true", help="keep the frames' bodies")
    parser.add_argument("--chargers", type=int, default=500)
    parser.add_argument("--prefill", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument(
        "--flush-entries", type=int, default=10_000, help="GATEWAY_TRAIL_FLUSH_ENTRIES (10,000)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--at-cap",
        action="store_true",
        help="the trail at its bound (GATEWAY_TRAIL_MAX_ENTRIES = --prefill): prune after"
        " each flush, as the trail lease's holder does in steady state (a trail of the"
        " default million entries is full within hours)",
    )
    parser.add_argument(
        "--busy",
        action="store_true",
        help="keep the event loop busy meanwhile (its CPU is then not reported; the other "
        "threads' is)",
    )
    args = parser.parse_args()
    print(
        f"trail on {'Redis' if args.redis else 'SQLite'}, bodies {'on' if args.bodies else 'off'},"
        f" {args.chargers} chargers, {args.prefill:,} entries before, {args.entries:,}"
        f" measured{', pruned to the prefill after each flush' if args.at_cap else ''};"
        " CPU per entry (two entries per OCPP message)"
    )
    for n in range(1, args.rounds + 1):
        loop_us, threads_us = asyncio.run(one_round(args))
        print(
            f"  round {n}: event loop {loop_us:5.2f} µs, other threads {threads_us:5.2f} µs,"
            f" total {loop_us + threads_us:5.2f} µs per entry",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
