"""A diagnostic, not a benchmark: what held the gateway's event loop when it was late.

Put this directory first on ``PYTHONPATH`` of a benchmark that starts the gateway through
the ``ocpi-gateway`` console script (``bench_ocpp.py``; the load generators are left
alone)::

    PYTHONPATH=tests/bench/stall_probe .venv/bin/python tests/bench/bench_ocpp.py ...

In the gateway process, a timer on the event loop expects to run every millisecond; a
thread samples the loop thread's Python stack every half millisecond (and, when the loop
thread has no Python frame on top, what the process's other threads are running). Each
time the timer runs more than ``STALL_MS`` (3) late, the samples of that window are
written, most frequent first, to ``$STALL_DIR/stalls.<pid>.log`` (``/tmp``): a line
``STALL <ms> ms at <unix time>, <n> samples`` and the stacks. A window whose samples show
the loop at ``runners.py:run`` alone was not running Python: it waited in C (for the GIL,
the kernel, or a core taken by another process).

The sampler takes the GIL 2,000 times a second: figures measured with it are not the
benchmark's; run it to find where stalls come from, then measure without it.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

# The checkout's root: its files are named from there.
_ROOT = f"{Path(__file__).resolve().parents[3]}/"


def _frames(frame: FrameType | None, depth: int = 30) -> str:
    parts: list[str] = []
    while frame is not None and len(parts) < depth:
        code = frame.f_code
        name = code.co_filename
        if "site-packages/" in name:
            name = name.split("site-packages/", 1)[1]
        elif name.startswith(_ROOT):
            name = name[len(_ROOT) :]
        else:
            name = os.path.basename(name)
        parts.append(f"{name}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return ";".join(reversed(parts))


def _install() -> None:
    import uvloop

    loop_thread = threading.get_ident()
    limit = float(os.environ.get("STALL_MS", "3")) / 1000
    folder = os.environ.get("STALL_DIR", "/tmp")
    out = open(os.path.join(folder, f"stalls.{os.getpid()}.log"), "w")  # noqa: SIM115
    ring: collections.deque[tuple[float, str]] = collections.deque(maxlen=4000)
    stalls: collections.deque[tuple[float, float]] = collections.deque()

    def sample() -> None:
        me = threading.get_ident()
        while True:
            time.sleep(0.0005)
            frames = sys._current_frames()
            now = time.perf_counter()
            stack = _frames(frames.get(loop_thread))
            if stack.count(";") <= 4:  # no Python frame above the loop: what others run
                names = {t.ident: t.name for t in threading.enumerate()}
                busy = []
                for ident, frame in frames.items():
                    if ident in (loop_thread, me):
                        continue
                    top = _frames(frame, 3).split(";")
                    if not any(w in top[-1] for w in ("_take", "wait", "_linger", "_worker")):
                        busy.append(f"{names.get(ident, '?')}={'<'.join(reversed(top))}")
                stack += " || " + " | ".join(busy)
            ring.append((now, stack))
            while stalls:
                start, end = stalls.popleft()
                seen = collections.Counter(s for t, s in ring if start <= t <= end + 0.001)
                out.write(
                    f"STALL {1000 * (end - start):.1f} ms at {time.time():.3f},"
                    f" {sum(seen.values())} samples\n"
                )
                for text, count in seen.most_common(6):
                    out.write(f"  {count} {text[-1500:]}\n")
                out.flush()

    def attach(loop: Any) -> None:
        due: list[float] = []

        def tick() -> None:
            now = time.perf_counter()
            if due and now - due[0] > limit:
                stalls.append((due[0], now))
            due[:] = [now + 0.001]
            loop.call_later(0.001, tick)

        loop.call_soon(tick)

    original = uvloop.new_event_loop

    def new_event_loop(*args: Any, **kwargs: Any) -> Any:
        loop = original(*args, **kwargs)
        attach(loop)
        return loop

    uvloop.new_event_loop = new_event_loop
    threading.Thread(target=sample, name="stall-sampler", daemon=True).start()


if any("ocpi-gateway" in arg for arg in sys.argv):
    _install()
