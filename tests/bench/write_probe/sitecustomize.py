"""A diagnostic, not a benchmark: which of the gateway's periodic work the slow status
writes follow.

Put this directory first on ``PYTHONPATH`` of a benchmark that starts the gateway through
the ``ocpi-gateway`` console script (``bench_ocpp.py``; other processes are left alone)::

    PYTHONPATH=tests/bench/write_probe .venv/bin/python tests/bench/bench_ocpp.py ...
    .venv/bin/python tests/bench/write_probe/sitecustomize.py /tmp/writes.<pid>.log

In the gateway process it records, with its wall-clock start, how long each
StatusNotification waits for its status to be stored (``CentralSystem.connector_status``:
the store's write, committed, then the event), and every start of the work that runs
now and then on the event loop or holds it: the message trail's flush (entries handed to
its store), the status history's encoding of a flush, the ownership renewal (every
``lease_seconds / 3``: each charger connected here) and the cycle collector's runs (with
their generation and duration). A thread of its own appends them to
``$PROBE_DIR/writes.<pid>.log`` (``/tmp``) once a second, so the loop never writes a file.

Run as a script on such a log (``LOG [SECONDS]``), it finds the rate-limited phase (after
the saturated one, whose writes wait tens of ms, and the pause ``bench_ocpp.py --between``
puts before it; SECONDS long, 5), prints the p50 and p99 of its writes, counts those
slower than ``WRITE_MS`` (3) by the event that started within 20 ms before each one (the
nearest), and lists the events of that phase. The wrappers cost a few microseconds a call: figures
measured with the probe are not the benchmark's.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import threading
import time
from typing import Any

_EVENTS: list[tuple[Any, ...]] = []
# A slow write follows an event that started at most this long before it (seconds).
_NEAR = 0.020


def _note(*event: Any) -> None:
    _EVENTS.append(event)  # list.append is atomic under the GIL: no lock


def _writer(path: str) -> None:
    with open(path, "a") as out:
        while True:
            time.sleep(1.0)
            batch = _EVENTS[:]
            del _EVENTS[: len(batch)]
            for event in batch:
                out.write(" ".join(str(x) for x in event) + "\n")
            out.flush()


def _install() -> None:
    from gateway import trail
    from gateway.cluster import ownership
    from gateway.csms import core
    from gateway.storage import history, sqlite

    clock = time.time

    status = core.CentralSystem.connector_status

    async def connector_status(self: Any, state: Any) -> None:
        start = clock()
        await status(self, state)
        _note("write", f"{start:.4f}", f"{(clock() - start) * 1000:.2f}")

    core.CentralSystem.connector_status = connector_status  # type: ignore[method-assign]

    flush = trail.TrailRecorder.flush

    async def trail_flush(self: Any) -> None:
        _note("trail", f"{clock():.4f}", len(self._queue))
        await flush(self)

    trail.TrailRecorder.flush = trail_flush  # type: ignore[method-assign]

    encode_all = history.encode_all

    async def history_encode(entries: Any) -> Any:
        _note("history", f"{clock():.4f}", len(entries))
        return await encode_all(entries)

    history.encode_all = history_encode

    renew = ownership.ChargerRegistry.renew

    async def registry_renew(self: Any) -> None:
        start = clock()
        await renew(self)
        _note("renew", f"{start:.4f}", f"{(clock() - start) * 1000:.2f}")

    ownership.ChargerRegistry.renew = registry_renew  # type: ignore[method-assign]

    write_batch = sqlite._write_batch

    def timed_batch(conn: Any, jobs: list[Any]) -> list[tuple[bool, Any]]:
        # In the writer thread: a batch that took long (a checkpoint, a slow fsync).
        start = clock()
        outcomes = write_batch(conn, jobs)
        took = clock() - start
        if took > 0.002:
            _note("batch", f"{start:.4f}", f"{took * 1000:.2f}")
        return outcomes

    # Looked up when the store opens its writer (after this: the app is not built yet).
    sqlite._write_batch = timed_batch

    started: list[float] = [0.0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            took = (clock() - started[0]) * 1000
            _note(f"gc{info['generation']}", f"{started[0]:.4f}", f"{took:.2f}")

    gc.callbacks.append(collected)
    folder = os.environ.get("PROBE_DIR", "/tmp")
    path = os.path.join(folder, f"writes.{os.getpid()}.log")
    threading.Thread(target=_writer, args=(path,), name="write-probe", daemon=True).start()


def report(path: str, seconds: float = 5.0) -> None:
    """The rate-limited phase of the log at ``path``: slow writes by nearest event."""
    limit = float(os.environ.get("WRITE_MS", "3"))
    rows = [line.split() for line in open(path)]  # noqa: SIM115
    writes = sorted((float(r[1]), float(r[2])) for r in rows if r[0] == "write")
    events = sorted((float(r[1]), r[0], r[2]) for r in rows if r[0] != "write")
    # The saturated phase's writes wait tens of ms; the rate-limited phase starts at the
    # first write after the last second without any (bench_ocpp.py --between), else 0.3 s after
    # the saturated phase's last slow write.
    last = max((t for t, ms in writes if ms > 40), default=writes[0][0])
    after = [t for t, _ in writes if t > last]
    gaps = [b for a, b in itertools.pairwise([last, *after]) if b - a > 1.0]
    begin = gaps[-1] if gaps else last + 0.3
    end = begin + seconds
    phase = [(t, ms) for t, ms in writes if begin <= t < end]
    slow = [(t, ms) for t, ms in phase if ms > limit]
    causes: dict[str, list[float]] = {}
    for t, ms in slow:
        near = [(abs(t - at), kind) for at, kind, _ in events if -ms / 1000 <= t - at <= _NEAR]
        kind = min(near)[1] if near else "none"
        causes.setdefault(kind.rstrip("012") if kind.startswith("gc") else kind, []).append(ms)
    waits = sorted(ms for _, ms in phase)
    print(
        f"rate-limited phase ({seconds:.0f} s from {begin:.3f}): {len(phase)} status writes,"
        f" p50 {waits[len(waits) // 2]:.2f} ms, p99 {waits[len(waits) * 99 // 100]:.2f} ms;"
        f" {len(slow)} over {limit:g} ms"
    )
    for kind, times in sorted(causes.items(), key=lambda kv: -len(kv[1])):
        times.sort()
        print(
            f"  after {kind:8} {len(times):5}  median {times[len(times) // 2]:.1f} ms,"
            f" max {times[-1]:.1f} ms"
        )
    print("events of the phase:")
    for at, kind, detail in events:
        if begin <= at < end:
            print(f"  {at - begin:7.3f} s  {kind:8} {detail}")


if __name__ == "__main__":
    report(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 5.0)
elif any("ocpi-gateway" in arg for arg in sys.argv):
    _install()
