"""A diagnostic, not a benchmark: where a slow store write of the steady rate waits, and
whether the event loop was late meanwhile.

Put this directory first on ``PYTHONPATH`` of a benchmark that starts the gateway through
the ``ocpi-gateway`` console script (``bench_ocpp.py``; other processes are left alone)::

    PYTHONPATH=tests/bench/stage_probe .venv/bin/python tests/bench/bench_ocpp.py ...
    .venv/bin/python tests/bench/stage_probe/sitecustomize.py /tmp/stages.<pid>.log

In the gateway process it notes, for every row write of the main database's writer (a
connector's status, a charger's state: ``_Row`` jobs), when it was queued, when its batch
started and committed, and when its result was settled on the event loop, with its batch's
size; the arrival of every charger frame (``decode_frame``); and every time a 1 ms timer
on the loop ran more than 2 ms late. A thread of its own appends them to
``$PROBE_DIR/stages.<pid>.log`` (``/tmp``) once a second.

Run as a script on such a log (``LOG [SECONDS]``), it takes the rate-limited phase (the
writes after the last second without any, ``bench_ocpp.py --between``; SECONDS long, 5)
and prints the writes' p50 / p97 / p99, how the writes over ``WRITE_MS`` (3) split into
their stages, the gaps between frames over 4 ms and the loop's lateness. The wrappers cost
a few microseconds a call: figures measured with the probe are not the benchmark's.
(tests/bench/README.md, thirteenth round.)
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import threading
import time
from typing import Any

_LOG: list[tuple[Any, ...]] = []


def _writer(path: str) -> None:
    with open(path, "a") as out:
        while True:
            time.sleep(1.0)
            batch = _LOG[:]
            del _LOG[: len(batch)]  # list operations are atomic under the GIL
            for event in batch:
                out.write(" ".join(f"{x:.6f}" if isinstance(x, float) else str(x) for x in event))
                out.write("\n")
            out.flush()


def _install() -> None:
    import asyncio

    from gateway.csms import connection
    from gateway.storage import sqlite

    clock = time.perf_counter
    run = sqlite._Worker.run

    def queued(self: Any, job: Any) -> Any:
        future = run(self, job)
        if self._window and isinstance(job, sqlite._Row):  # the main writer's rows only
            future.probe_queued = clock()
        return future

    sqlite._Worker.run = queued  # type: ignore[method-assign]
    batch = sqlite._Worker._run

    def timed(self: Any, items: list[Any]) -> bool:
        started = clock()
        stopping = batch(self, items)
        committed = clock()
        for _job, future, _loop in items:
            if hasattr(future, "probe_queued"):
                future.probe_batch = (started, committed, len(items))
        return stopping

    sqlite._Worker._run = timed  # type: ignore[method-assign]
    settle = sqlite._settle

    def settled(results: list[Any]) -> None:
        now = clock()
        for future, _ok, _value in results:
            stages = getattr(future, "probe_batch", None)
            if stages is not None:
                start, end, size = stages
                queued_at = future.probe_queued
                _LOG.append(("W", queued_at, start - queued_at, end - start, now - end, size))
        settle(results)

    sqlite._settle = settled
    decode = connection.decode_frame
    ticking = [False]

    def tick(loop: asyncio.AbstractEventLoop, due: float) -> None:
        now = clock()
        if now - due > 0.002:
            _LOG.append(("L", due, now - due))
        loop.call_later(0.001, tick, loop, clock() + 0.001)

    def decode_frame(raw: str, edge: bool) -> Any:
        if not ticking[0]:
            ticking[0] = True
            loop = asyncio.get_running_loop()
            loop.call_later(0.001, tick, loop, clock() + 0.001)
        _LOG.append(("F", clock()))
        return decode(raw, edge)

    connection.decode_frame = decode_frame
    folder = os.environ.get("PROBE_DIR", "/tmp")
    path = os.path.join(folder, f"stages.{os.getpid()}.log")
    threading.Thread(target=_writer, args=(path,), name="stage-probe", daemon=True).start()


def report(path: str, seconds: float = 5.0) -> None:
    """The rate-limited phase of the log at ``path``."""
    limit = float(os.environ.get("WRITE_MS", "3")) / 1000
    writes: list[tuple[float, ...]] = []
    frames: list[float] = []
    late: list[tuple[float, float]] = []
    with open(path) as log:
        for line in log:
            kind, *values = line.split()
            if kind == "W":
                writes.append(tuple(float(v) for v in values))
            elif kind == "F":
                frames.append(float(values[0]))
            elif kind == "L":
                late.append((float(values[0]), float(values[1])))
    writes.sort()
    gaps = [b[0] for a, b in itertools.pairwise(writes) if b[0] - a[0] > 1.0]
    start = gaps[-1] if gaps else writes[0][0]
    phase = [w for w in writes if start <= w[0] < start + seconds]
    totals = sorted(w[1] + w[2] + w[3] for w in phase)
    n = len(totals)
    print(
        f"rate-limited phase ({seconds:g} s): {n} row writes, p50 {totals[n // 2] * 1e3:.2f}"
        f" ms, p97 {totals[int(n * 0.97)] * 1e3:.2f}, p99 {totals[int(n * 0.99)] * 1e3:.2f}"
    )
    slow = [w for w in phase if w[1] + w[2] + w[3] > limit]
    print(f"over {limit * 1e3:g} ms: {len(slow)}")
    for name, i in (("queued", 1), ("in the batch", 2), ("to the loop", 3)):
        if slow:
            ms = [w[i] * 1e3 for w in slow]
            print(f"  {name:13s} median {statistics.median(ms):.2f} ms, at most {max(ms):.2f}")
    if slow:
        print("  batch sizes  ", sorted(int(w[4]) for w in slow)[:: max(1, len(slow) // 15)])
    phase_frames = [f for f in frames if start <= f < start + seconds]
    print(
        "frame gaps over 4 ms (s into the phase, ms):",
        [
            (round(a - start, 3), round((b - a) * 1e3, 1))
            for a, b in itertools.pairwise(phase_frames)
            if b - a > 0.004
        ],
    )
    print(
        "loop late over 2 ms:",
        [
            (round(t - start, 3), round(ms * 1e3, 1))
            for t, ms in late
            if start <= t < start + seconds
        ],
    )


if __name__ == "__main__":
    report(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 5.0)
elif any("ocpi-gateway" in arg for arg in sys.argv):
    _install()
