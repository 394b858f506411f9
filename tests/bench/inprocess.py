"""Serving HTTP requests in one process, without sockets: an aiohttp application's own
request handler fed request bytes through a transport that only keeps what is written.

Not a benchmark of its own: ``bench_ocpi.py --in-process ROUNDS`` drives the gateway's
OCPI application and a bare aiohttp application answering the same bytes with it, in
turn, in the same process, and compares their CPU per request. Without the load
generators, the kernel's sockets and the other processes on the machine in the figure, the
CPU per request moves far less from run to run than end to end, so a change of a few
microseconds on the request path can be seen at all (the end-to-end figures of this
2-core machine move by tens of percent between runs).

What it measures: the whole process's CPU (``time.process_time``, every thread) and its
child processes' (the trail's writer process) and the event-loop thread's alone
(``time.thread_time``), per request answered, over rounds of a time or a number of requests. The driver's own
work per request (a future, ``data_received``, finding the end of the answer) is in both
figures alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from loadgen import child_pids, proc_cpu_seconds


class _Sink(asyncio.Transport):
    """A transport that keeps the bytes written and wakes the driver when a whole
    answer (head and ``Content-Length`` bytes of body) has arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.done: asyncio.Future[bytes] | None = None
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data
        self._check()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.out += data
        self._check()

    def _check(self) -> None:
        end = self.out.find(b"\r\n\r\n")
        if end < 0 or self.done is None or self.done.done():
            return
        head = bytes(self.out[:end]).lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            raise AssertionError(f"an answer without Content-Length: {head[:300]!r}")
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop >= 0 else len(head)])
        if len(self.out) >= end + 4 + length:
            answer = bytes(self.out[: end + 4 + length])
            del self.out[: end + 4 + length]
            self.done.set_result(answer)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return ("127.0.0.1", 40000)
        if name == "sockname":
            return ("127.0.0.1", 8080)
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


@dataclass
class Served:
    """One application under the driver."""

    name: str
    runner: web.AppRunner
    request: bytes
    check: Callable[[bytes], None]


async def serve(app: web.Application) -> web.AppRunner:
    """The application started as ``web.AppRunner`` starts it (its cleanup contexts
    run), with no site: requests come through :func:`run` only."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def run(
    served: Served, connections: int, size: float | int, pause: float
) -> tuple[int, float, float]:
    """``connections`` keep-alive connections, each sending ``served.request`` again
    ``pause`` seconds after its answer is whole, for ``size`` seconds (a float) or
    ``size`` requests in all (an int): (answers, process CPU, loop thread CPU). Every
    answer must be a 200; the first is checked whole (``served.check``).

    The pause matters: with no socket to wait on, a loop that never sleeps never lets go
    of the GIL, and the application's other threads (the trail's SQLite writer) would
    starve, not cost what they cost beside a real server."""
    server = served.runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    count = 0
    deadline = 0.0
    counted = isinstance(size, int)

    def more() -> bool:
        return count < size if counted else time.perf_counter() < deadline

    async def connection() -> None:
        nonlocal count
        sink = _Sink()
        protocol = server()
        protocol.connection_made(sink)
        try:
            while more():
                sink.done = loop.create_future()
                protocol.data_received(served.request)
                answer = await sink.done
                if not answer.startswith(b"HTTP/1.1 200 "):
                    raise AssertionError(f"{served.name}: {answer[:300]!r}")
                if count == 0:
                    served.check(answer)
                count += 1
                await asyncio.sleep(pause)
        finally:
            protocol.connection_lost(None)

    cpu, thread = _cpu(), time.thread_time()
    deadline = time.perf_counter() + size
    await asyncio.gather(*(connection() for _ in range(connections)))
    return count, _cpu() - cpu, time.thread_time() - thread


def _cpu() -> float:
    """This process's CPU (every thread) and its live children's: the gateway's trail
    writer processes (GATEWAY_WRITER_PROCESSES) are the application's."""
    children = 0.0
    for pid in child_pids(os.getpid()):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            children += proc_cpu_seconds(pid)
    return time.process_time() + children


async def compare(
    apps: list[Served],
    rounds: int,
    connections: int,
    size: float | int,
    pause: float,
    profile: str | None,
) -> dict[str, dict[str, float]]:
    """Every application ``rounds`` times in turn; the medians of CPU per answer (µs),
    process and loop thread. With ``profile`` (a prefix), each application first runs a
    round under cProfile (its figures left out), its stats written to
    ``{profile}-{name}.pstats``."""
    figures: dict[str, list[tuple[float, float]]] = {a.name: [] for a in apps}
    warm_up = max(1, size // 10) if isinstance(size, int) else min(1.0, size)
    for served in apps:  # warm-up: caches, first pages built, the trail's first flush
        await run(served, connections, warm_up, pause)
    for served in apps if profile else ():
        profiler = cProfile.Profile()
        profiler.enable()
        await run(served, connections, size, pause)
        profiler.disable()
        profiler.dump_stats(f"{profile}-{served.name}.pstats")
    for _ in range(rounds):
        for served in apps:
            count, cpu, thread = await run(served, connections, size, pause)
            figures[served.name].append((cpu / count * 1e6, thread / count * 1e6))
    return {
        name: {
            "cpu_us": statistics.median(c for c, _ in rows),
            "loop_us": statistics.median(t for _, t in rows),
            "cpu_min": min(c for c, _ in rows),
            "cpu_max": max(c for c, _ in rows),
        }
        for name, rows in figures.items()
    }
