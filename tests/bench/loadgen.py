"""What the OCPP benchmarks share (``bench_ocpp.py``, ``bench_cluster.py``): pre-built
OCPP 1.6J frames, CPU and memory counters from ``/proc``, and the load generator: a
process per ``--clients`` opening WebSocket connections and driving them, steered by the
coordinator over a pipe (:class:`LoadGenerators`). Its chargers can answer the gateway's
CALLs, record each charging profile they are sent (``bench_smart.py``) and send a CALL on
demand (StartTransaction, StopTransaction, MeterValues, ...).

Not a benchmark itself; the scripts import it from their own directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import resource
import socket
import time
import traceback
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

HOST = "127.0.0.1"  # loopback only, always
CLK_TCK = os.sysconf("SC_CLK_TCK")
ADMIN_TOKEN = "bench-admin-token"

# -- pre-built OCPP 1.6J frames -----------------------------------------------------------

KINDS = ("Heartbeat", "StatusNotification", "MeterValues")
_TS = "2025-01-01T00:00:00Z"
BOOT_FRAME = (
    '[2,"boot","BootNotification",'
    '{"chargePointVendor":"Bench","chargePointModel":"Sim-1","firmwareVersion":"1.0"}]'
)
_HEARTBEAT = '","Heartbeat",{}]'
_STATUS = (
    '","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"%s",'
    '"timestamp":"' + _TS + '"}]'
)
_METER = (
    '","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":"' + _TS + '",'
    '"sampledValue":[{"value":"1234.5","measurand":"Energy.Active.Import.Register",'
    '"unit":"Wh"},{"value":"7200","measurand":"Power.Active.Import","unit":"W"}]}]}]'
)
# (kind index, frame tail after the message id): an equal mix of the three actions,
# the status alternating so that it really changes.
CYCLE: tuple[tuple[int, str], ...] = (
    (0, _HEARTBEAT),
    (1, _STATUS % "Available"),
    (2, _METER),
    (0, _HEARTBEAT),
    (1, _STATUS % "Preparing"),
    (2, _METER),
)


# -- /proc ----------------------------------------------------------------------------------


def proc_cpu_split(pid: int, tid: int | None = None) -> tuple[float, float]:
    """(utime, stime) in seconds, all threads of ``pid`` (dead threads included),
    or only thread ``tid`` (the main thread, where aiohttp runs the event loop, has tid pid)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user and kernel) of each live thread of ``pid`` by its OS name (the
    gateway names its store threads: sqlite-writer, sqlite-reader, trail-writer, ...),
    the threads of one name summed. The main thread is named after the program."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            utime, stime = proc_cpu_split(pid, int(tid))
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
        key = "event loop" if int(tid) == pid else name
        out[key] = out.get(key, 0.0) + utime + stime
    for child in child_pids(pid):  # the trail's writer process, when the gateway has one
        try:
            with open(f"/proc/{child}/comm") as f:
                key = f"{f.read().strip()} (process)"
            spent = proc_cpu_seconds(child)
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[key] = out.get(key, 0.0) + spent
    return out


def child_pids(pid: int) -> list[int]:
    """The live child processes of ``pid`` (``/proc/PID/task/TID/children``)."""
    found: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(child) for child in f.read().split()]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return found


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` (every thread) and of its child processes: a live one as it
    is now, one that ended as the kernel counted it for ``pid`` once reaped (the gateway's
    writer processes, ``GATEWAY_WRITER_PROCESSES``, are part of its cost)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    own = sum(int(v) for v in fields[11:15]) / CLK_TCK  # utime, stime, cutime, cstime
    children = 0.0
    for child in child_pids(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            children += proc_cpu_seconds(child)
    return own + children


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds all cores spent on anything but idle and I/O wait, and of those in
    interrupts (``/proc/stat``): loopback TCP is mostly delivered in softirq context,
    which the kernel charges to no process."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK, (ticks[5] + ticks[6]) / CLK_TCK


def proc_memory_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0])
    return out


def find_redis_server_pid() -> int | None:
    """The local redis-server's pid, when this user may read its CPU counters."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "redis-server":
                    continue
            proc_cpu_seconds(int(entry))
        except OSError:
            continue
        return int(entry)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class BenchError(RuntimeError):
    pass


# -- load generator (one process per --clients) ----------------------------------------------


class _Phase:
    __slots__ = (
        "deadline",
        "done",
        "errors",
        "first_error",
        "inflight",
        "last_answer",
        "lat",
        "lost",
        "ok",
        "period",
        "unexpected",
    )

    def __init__(self, deadline: float, period: float, inflight: int) -> None:
        self.deadline = deadline
        self.period = period  # seconds between two CALLs of one connection; 0 = back to back
        self.inflight = inflight
        self.done = asyncio.Event()
        self.lat = (array("d"), array("d"), array("d"))  # seconds, per kind
        self.ok = self.errors = self.unexpected = self.lost = 0
        self.first_error = ""
        self.last_answer = 0.0
        if inflight == 0:
            self.done.set()


class _Conn:
    __slots__ = ("cp_id", "due", "expect", "kind", "n", "sent_at", "waiter", "ws")

    def __init__(self, ws: Any, cp_id: str = "") -> None:
        self.ws = ws
        self.cp_id = cp_id
        self.n = 0
        self.kind = 0
        self.sent_at = 0.0
        self.due = 0.0
        self.expect: str | None = None  # '[3,"<id>"' while a CALL is in flight
        # (message id, future of the answer) of a CALL sent on demand (_Client.call)
        self.waiter: tuple[str, asyncio.Future[str]] | None = None


# The charging profiles a charger was sent: (monotonic time received, profile id, limit of
# the first period, or None for a ClearChargingProfile).
ProfileRecord = tuple[float, int, float | None]


def profile_of_call(action: str, payload: dict[str, Any]) -> tuple[int, float | None] | None:
    """(profile id, first period's limit) of a SetChargingProfile (1.6 csChargingProfiles,
    2.0.1 chargingProfile), (id or -1, None) of a ClearChargingProfile, else None."""
    if action == "ClearChargingProfile":
        return int(payload.get("id", payload.get("chargingProfileId", -1)) or -1), None
    if action != "SetChargingProfile":
        return None
    profile = payload.get("csChargingProfiles") or payload.get("chargingProfile") or {}
    schedule = profile.get("chargingSchedule") or {}
    if isinstance(schedule, list):  # 2.0.1: a list of schedules
        schedule = schedule[0] if schedule else {}
    periods = schedule.get("chargingSchedulePeriod") or [{}]
    limit = periods[0].get("limit")
    pid = profile.get("chargingProfileId", profile.get("id", -1))
    return int(pid), None if limit is None else float(limit)


class _Client:
    def __init__(self, url: str, answer_calls: bool = False) -> None:
        import aiohttp

        self.url = url
        # Answer the gateway's CALLs (admin commands) with {"status": "Accepted"}.
        self.answer_calls = answer_calls
        self.calls_answered = 0
        # Per charger, the profiles it was sent (answered Accepted), in order received.
        self.profiles: dict[str, list[ProfileRecord]] = {}
        self.profile_seen = asyncio.Event()  # set at each record (await_profiles)
        self.by_id: dict[str, _Conn] = {}
        self.calls_sent = 0
        self.calls_before_boot = 0  # CALLs received before the BootNotification's answer
        self.raw: list[RawCharger] = []  # the storm's connections
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        )
        self.conns: list[_Conn] = []
        self.readers: set[asyncio.Task[None]] = set()
        self.phase: _Phase | None = None
        self.held = 0
        self.dropped = 0  # connections the server closed while held
        self.stray = 0  # frames that answered nothing in flight
        self.closing = False

    async def connect_all(self, ids: list[str], concurrency: int, timeout: float) -> dict[str, Any]:
        import aiohttp

        sem = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()
        ws_timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0)

        async def one(cp_id: str) -> None:
            async with sem:
                ws = None
                try:
                    async with asyncio.timeout(30):
                        ws = await self.session.ws_connect(
                            f"{self.url}/{cp_id}",
                            protocols=("ocpp1.6",),
                            compress=0,
                            autoping=True,
                            timeout=ws_timeout,
                        )
                        if ws.protocol != "ocpp1.6":
                            raise BenchError(f"subprotocol {ws.protocol!r}")
                        await ws.send_str(BOOT_FRAME)
                        msg = await ws.receive()
                        while (
                            self.answer_calls
                            and msg.type is aiohttp.WSMsgType.TEXT
                            and str(msg.data).startswith("[2")
                        ):
                            # The gateway's CALL (a site's limit) before the boot's answer.
                            self.calls_before_boot += 1
                            await self._answer_call(ws, str(msg.data), cp_id)
                            msg = await ws.receive()
                        data = str(msg.data)
                        if msg.type is not aiohttp.WSMsgType.TEXT or not (
                            data.startswith('[3,"boot",') and '"Accepted"' in data
                        ):
                            raise BenchError(f"BootNotification answered {msg.data!r:.100}")
                except Exception as exc:
                    failures[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    if ws is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(ws.close(), 5)
                    return
            conn = _Conn(ws, cp_id)
            self.conns.append(conn)
            self.by_id[cp_id] = conn
            self.held += 1
            task = asyncio.create_task(self._reader(conn))
            self.readers.add(task)
            task.add_done_callback(self.readers.discard)

        start = time.monotonic()
        tasks = [asyncio.create_task(one(cp_id)) for cp_id in ids]
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            failures["not connected within --connect-timeout"] += len(pending)
            await asyncio.wait(pending, timeout=10)
        elapsed = time.monotonic() - start
        # Start-up garbage is done with; keep full collections from walking thousands of
        # connections and adding their pauses to the latencies measured.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 1000)
        return {
            "held": self.held,
            "failed": sum(failures.values()),
            "failures": failures.most_common(5),
            "seconds": elapsed,
        }

    def _next_frame(self, conn: _Conn) -> str:
        conn.n = n = conn.n + 1
        uid = str(n)
        conn.kind, tail = CYCLE[n % 6]
        conn.expect = '[3,"' + uid + '"'
        return '[2,"' + uid + tail

    async def _send(self, conn: _Conn) -> bool:
        frame = self._next_frame(conn)
        conn.sent_at = time.monotonic()
        try:
            await conn.ws.send_str(frame)
        except Exception:
            return False
        return True

    def _finish(self, phase: _Phase) -> None:
        phase.inflight -= 1
        if phase.inflight <= 0:
            phase.done.set()

    async def _reader(self, conn: _Conn) -> None:
        """The connection's only receiver; drives the next CALL once one is answered."""
        import aiohttp

        ws = conn.ws
        text = aiohttp.WSMsgType.TEXT
        clock = time.monotonic
        try:
            while True:
                msg = await ws.receive()
                if msg.type is not text:
                    break
                if self.answer_calls and msg.data.startswith("[2"):
                    await self._answer_call(ws, msg.data, conn.cp_id)
                    continue
                if conn.waiter is not None and self._answered(conn, msg.data):
                    continue
                now = clock()
                phase = self.phase
                expect = conn.expect
                if phase is None or expect is None:
                    self.stray += 1
                    continue
                data = msg.data
                if data.startswith(expect):
                    phase.lat[conn.kind].append(now - conn.sent_at)
                    phase.ok += 1
                elif data.startswith('[4,"' + expect[4:]):
                    phase.errors += 1
                    phase.first_error = phase.first_error or data[:200]
                else:
                    phase.unexpected += 1
                    continue
                phase.last_answer = now
                conn.expect = None
                if phase.period:
                    conn.due += phase.period
                    if conn.due >= phase.deadline:
                        self._finish(phase)
                        continue
                    delay = conn.due - clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif now >= phase.deadline:
                    self._finish(phase)
                    continue
                if not await self._send(conn):
                    conn.expect = None
                    phase.lost += 1
                    self._finish(phase)
                    break
        finally:
            self.held -= 1
            if not self.closing:
                self.dropped += 1
            phase = self.phase
            if phase is not None and conn.expect is not None:
                conn.expect = None
                phase.lost += 1
                self._finish(phase)

    async def _answer_call(self, ws: Any, data: str, cp_id: str = "") -> None:
        """A CALL from the gateway (TriggerMessage, ...): Accepted, as a charger that
        complies answers (the frame is parsed: the gateway's JSON may have spaces)."""
        received = time.monotonic()
        try:
            frame = json.loads(data)
            uid = frame[1]
            await ws.send_str('[3,"' + str(uid) + '",{"status":"Accepted"}]')
        except (ValueError, IndexError, ConnectionError):
            return
        self.calls_answered += 1
        self.record(cp_id, frame, received)

    def record(self, cp_id: str, frame: list[Any], received: float) -> None:
        """Note a charging profile set or cleared (answered Accepted) and when it came."""
        if len(frame) < 4 or not isinstance(frame[3], dict):
            return
        profile = profile_of_call(str(frame[2]), frame[3])
        if profile is None:
            return
        self.profiles.setdefault(cp_id, []).append((received, profile[0], profile[1]))
        self.profile_seen.set()

    def _answered(self, conn: _Conn, data: str) -> bool:
        """Whether ``data`` answers the CALL sent on demand on ``conn`` (resolved)."""
        assert conn.waiter is not None
        uid, future = conn.waiter
        if data.startswith('[3,"' + uid + '"') or data.startswith('[4,"' + uid + '"'):
            conn.waiter = None
            if not future.done():
                future.set_result(data)
            return True
        return False

    async def call(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Send one CALL (``action``, ``payload``) from charger ``cp_id`` now and wait for
        its answer; with ``expect``, then wait as :meth:`await_profiles` does from the
        moment it was sent (``timeout`` seconds in all)."""
        conn = self.by_id.get(spec["cp_id"])
        if conn is None or conn.ws.closed:
            raise BenchError(f"charger {spec['cp_id']!r} is not connected here")
        if conn.waiter is not None or conn.expect is not None:
            raise BenchError(f"charger {spec['cp_id']!r} has a CALL in flight")
        self.calls_sent += 1
        uid = f"d{self.calls_sent}"
        frame = json.dumps([2, uid, spec["action"], spec["payload"]], separators=(",", ":"))
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        conn.waiter = (uid, future)
        sent = time.monotonic()
        await conn.ws.send_str(frame)
        try:
            async with asyncio.timeout(spec["timeout"]):
                answer = await future
        except TimeoutError:
            conn.waiter = None
            raise BenchError(f"{spec['action']} of {spec['cp_id']} not answered") from None
        answered = time.monotonic()
        result: dict[str, Any] = {"sent": sent, "answered": answered, "answer": answer}
        if spec.get("expect") is not None:
            result.update(
                await self.await_profiles(
                    {
                        "expect": spec["expect"],
                        "since": sent,
                        "timeout": max(0.1, sent + spec["timeout"] - time.monotonic()),
                    }
                )
            )
        return result

    def _settled(self, cp_id: str, pid: int, limit: float | None, since: float) -> float | None:
        """When ``cp_id`` came to hold profile ``pid`` at ``limit`` for good: the first of
        the profiles received since ``since`` after which none other came (None: not yet)."""
        records = self.profiles.get(cp_id, ())
        at = None
        for t, got_pid, got in reversed(records):
            if t < since:
                break
            if got_pid != pid:
                continue
            if (got is None) != (limit is None) or (
                got is not None and limit is not None and abs(got - limit) > 0.05
            ):
                break
            at = t
        return at

    async def await_profiles(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Wait until each charger of ``expect`` ({cp_id: [profile id, limit]}) holds that
        profile at that limit (``limit`` None: cleared), received since ``since``
        (monotonic), at most ``timeout`` seconds. Returns when each got it, and what the
        others last got."""
        expect: dict[str, list[Any]] = spec["expect"]
        since: float = spec["since"]
        deadline = time.monotonic() + spec["timeout"]
        got: dict[str, float] = {}
        while True:
            self.profile_seen.clear()
            for cp_id, (pid, limit) in expect.items():
                if cp_id not in got:
                    at = self._settled(cp_id, int(pid), limit, since)
                    if at is not None:
                        got[cp_id] = at
            if len(got) == len(expect):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.profile_seen.wait()
        missing: dict[str, ProfileRecord | None] = {}
        for cp_id in expect:
            if cp_id not in got:
                records = self.profiles.get(cp_id)
                missing[cp_id] = records[-1] if records else None
        return {"got": got, "missing": missing}

    async def storm(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Connect ``ids`` (``concurrency`` handshakes in flight, 0: all at once, from
        ``start_at``), each sending BootNotification then two StatusNotifications (connector
        0 and 1), one CALL in flight; the connections are then held like the others.

        The chargers are :class:`RawCharger` connections (a few hundred bytes of Python per
        frame) rather than aiohttp's client: the storm measures the gateways, and aiohttp's
        handshake costs the load generator more CPU than it costs the server.

        Errors by kind: refused or connect timeout (TCP, 30 s), handshake (an HTTP status
        instead of 101), closed (before its three answers), CALLERROR, rejected (boot not
        Accepted), timeout (``timeout`` seconds per charger from its start)."""
        from urllib.parse import urlsplit

        loop = asyncio.get_running_loop()
        url = urlsplit(self.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        ids: list[str] = spec["ids"]
        concurrency: int = spec["concurrency"]
        sem = asyncio.Semaphore(concurrency or len(ids) or 1)
        errors: Counter[str] = Counter()
        examples: dict[str, str] = {}
        done_at = array("d")
        frames = [("boot", BOOT_FRAME)] + [
            (
                f"s{c}",
                f'[2,"s{c}'
                + (_STATUS % "Available").replace('"connectorId":1', f'"connectorId":{c}'),
            )
            for c in (0, 1)
        ]

        def error(kind: str, detail: str) -> None:
            errors[kind] += 1
            examples.setdefault(kind, detail[:200])

        async def exchange(cp_id: str) -> RawCharger | None:
            """The open connection once its three CALLs are answered, else None."""
            charger = RawCharger(self, f"{url.path}/{cp_id}", f"{host}:{port}")
            try:
                async with asyncio.timeout(30):
                    await loop.create_connection(lambda: charger, host, port)
            except TimeoutError:
                error("connect timeout", f"TCP connect to {host}:{port} took over 30 s")
                return None
            except OSError as exc:
                error("refused", f"{type(exc).__name__}: {exc}")
                return None
            try:
                status = await charger.upgraded
                if status != 101:
                    error("handshake", f"HTTP {status}")
                    charger.abort()
                    return None
                for uid, frame in frames:
                    data = await charger.call(frame)
                    if data.startswith('[4,"' + uid + '"'):
                        error("CALLERROR", data)
                    elif not data.startswith('[3,"' + uid + '"'):
                        error("unexpected", data)
                    elif uid == "boot" and '"Accepted"' not in data:
                        error("rejected", data)
                    else:
                        continue
                    charger.abort()
                    return None
            except ConnectionError as exc:
                error("closed", f"{type(exc).__name__}: {exc}")
                return None
            except BaseException:
                charger.abort()
                raise
            return charger

        async def one(cp_id: str) -> None:
            async with sem:
                try:
                    async with asyncio.timeout(spec["timeout"]):
                        charger = await exchange(cp_id)
                except TimeoutError:
                    error("timeout", f"not answered within {spec['timeout']:.0f} s")
                    return
            if charger is None:
                return
            done_at.append(time.monotonic())
            charger.held = True
            self.raw.append(charger)
            self.held += 1

        delay = spec["start_at"] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        await asyncio.gather(*(one(cp_id) for cp_id in ids))
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        gc.collect()
        return {
            "answered": len(done_at),
            "errors": dict(errors),
            "examples": examples,
            "start": start,
            "done_at": done_at.tobytes(),
            "cpu": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        }

    async def _kick(self, conn: _Conn, phase: _Phase, at: float) -> None:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        conn.due = at
        if not await self._send(conn):
            conn.expect = None
            phase.lost += 1
            self._finish(phase)

    async def run_phase(self, spec: dict[str, Any]) -> dict[str, Any]:
        active = [c for c in self.conns[: spec["active"]] if not c.ws.closed]
        delay = spec["start_at"] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        rate = spec["rate"]  # this client's share, CALLs per second; 0 = saturate
        period = len(active) / rate if rate else 0.0
        start = time.monotonic()
        phase = _Phase(start + spec["duration"], period, len(active))
        self.phase = phase
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        kicks = []
        if period:
            step = period / max(1, len(active))
            kicks = [
                asyncio.create_task(self._kick(c, phase, start + i * step))
                for i, c in enumerate(active)
            ]
        else:
            for conn in active:
                conn.due = start
                if not await self._send(conn):
                    conn.expect = None
                    phase.lost += 1
                    self._finish(phase)
        try:
            await asyncio.wait_for(phase.done.wait(), spec["duration"] + spec["drain"])
        except TimeoutError:
            phase.lost += phase.inflight
        for task in kicks:
            task.cancel()
        self.phase = None
        for conn in active:
            conn.expect = None
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "ok": phase.ok,
            "errors": phase.errors,
            "first_error": phase.first_error,
            "unexpected": phase.unexpected,
            "lost": phase.lost,
            "active": len(active),
            "start": start,
            "last_answer": phase.last_answer or start,
            "lat": [a.tobytes() for a in phase.lat],
            "cpu": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        }

    async def close(self) -> dict[str, Any]:
        self.closing = True
        held = self.held
        if self.conns:
            await asyncio.wait([asyncio.create_task(c.ws.close()) for c in self.conns], timeout=30)
        for charger in self.raw:
            charger.close()
        for task in list(self.readers):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.session.close(), 10)
        return {"held": held, "dropped": self.dropped, "stray": self.stray}


class RawCharger(asyncio.Protocol):
    """A charger's WebSocket connection (RFC 6455) straight on an asyncio transport: the
    upgrade request with subprotocol ocpp1.6, text frames masked with the key 0 (section
    5.3 lets the client pick any key; XOR with zeros leaves the payload as it is), the
    server's unmasked frames parsed as they come; pings are answered, and so are the
    gateway's CALLs (Accepted) when the client answers calls. One CALL in flight."""

    def __init__(self, client: _Client, path: str, host: str) -> None:
        self.client = client
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.upgraded: asyncio.Future[int] = loop.create_future()  # the HTTP status
        self.answer: asyncio.Future[str] | None = None
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.held = False  # counted in the client's held connections
        self.cp_id = path.rsplit("/", 1)[-1]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            parts = head.split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status == 101 and "ocpp1.6" not in head:
                status = 0  # no subprotocol agreed
            self.open = status == 101
            if not self.upgraded.done():
                self.upgraded.set_result(status)
            if not self.open:
                return
        while len(buf) >= 2:
            opcode, n, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, pos = int.from_bytes(buf[2:4]), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, pos = int.from_bytes(buf[2:10]), 10
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos : pos + n])
            del buf[: pos + n]
            if opcode == 1:
                self._text(payload.decode())
            elif opcode == 9:
                self._frame(0xA, payload)  # pong
            elif opcode == 8:
                self._frame(0x8, payload[:2])
                self.abort()
                return

    def _text(self, text: str) -> None:
        if text.startswith("[2") and self.client.answer_calls:
            received = time.monotonic()
            with contextlib.suppress(ValueError, IndexError):
                frame = json.loads(text)
                self.send('[3,"' + str(frame[1]) + '",{"status":"Accepted"}]')
                self.client.calls_answered += 1
                self.client.record(self.cp_id, frame, received)
            return
        answer = self.answer
        if answer is not None and not answer.done():
            answer.set_result(text)
        else:
            self.client.stray += 1

    def _frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2)
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8)
        self.transport.write(head + b"\0\0\0\0" + payload)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    async def call(self, frame: str) -> str:
        """Send a CALL, return the frame that came next (its answer, one in flight)."""
        self.answer = asyncio.get_running_loop().create_future()
        self.send(frame)
        return await self.answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        lost = ConnectionError(f"connection closed ({exc or 'EOF'})")
        for fut in (self.upgraded, self.answer):
            if fut is not None and not fut.done():
                fut.set_exception(lost)
        if self.held:
            self.held = False
            self.client.held -= 1
            if not self.client.closing:
                self.client.dropped += 1

    def close(self) -> None:
        """A close frame (1000), then the socket."""
        self._frame(0x8, (1000).to_bytes(2))
        self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _client_loop(pipe: Pipe, url: str, answer_calls: bool) -> None:
    loop = asyncio.get_running_loop()
    client = _Client(url, answer_calls)
    while True:
        try:
            cmd, arg = await loop.run_in_executor(None, pipe.recv)
        except EOFError:  # the coordinator is gone
            await client.close()
            return
        try:
            if cmd == "connect":
                result = await client.connect_all(arg["ids"], arg["concurrency"], arg["timeout"])
            elif cmd == "phase":
                result = await client.run_phase(arg)
            elif cmd == "storm":
                result = await client.storm(arg)
            elif cmd == "call":
                result = await client.call(arg)
            elif cmd == "await_profiles":
                result = await client.await_profiles(arg)
            elif cmd == "profiles":  # every profile received: {cp_id: [records]}
                result = {"profiles": client.profiles}
            elif cmd == "status":
                result = {"held": client.held, "dropped": client.dropped, "stray": client.stray}
                if client.answer_calls:
                    result["calls_answered"] = client.calls_answered
                    result["calls_before_boot"] = client.calls_before_boot
            elif cmd == "close":
                pipe.send(("ok", await client.close()))
                return
            else:
                raise BenchError(f"unknown command {cmd!r}")
        except Exception:
            pipe.send(("error", traceback.format_exc()))
            continue
        pipe.send(("ok", result))


def client_main(pipe: Pipe, url: str, answer_calls: bool = False) -> None:
    # Each client holds up to --connections / --clients sockets, under the fd limit.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_client_loop(pipe, url, answer_calls))


class LoadGenerators:
    """Load-generator processes (``spawn``: no state of the coordinator is inherited),
    each running :func:`client_main` against one URL and answering over its pipe."""

    def __init__(self, clients: list[tuple[Any, Pipe]] | None = None) -> None:
        self.clients: list[tuple[Any, Pipe]] = clients if clients is not None else []

    def start(self, urls: list[str], answer_calls: bool = False) -> None:
        """One process per URL in ``urls``."""
        ctx = mp.get_context("spawn")
        for url in urls:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(theirs, url, answer_calls), daemon=True)
            proc.start()
            theirs.close()
            self.clients.append((proc, ours))

    def subset(self, indices: list[int]) -> LoadGenerators:
        """A view of some of the processes (the same processes and pipes)."""
        return LoadGenerators([self.clients[i] for i in indices])

    def send(self, cmd: str, args: list[Any]) -> None:
        for (_, pipe), arg in zip(self.clients, args, strict=True):
            pipe.send((cmd, arg))

    def collect(self, cmd: str, timeout: float) -> list[dict[str, Any]]:
        """Each process's answer to ``cmd``, in order, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        answers = []
        for proc, pipe in self.clients:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"a load generator did not finish {cmd!r} within {timeout:.0f} s")
            try:
                status, result = pipe.recv()
            except EOFError:
                raise BenchError(f"load generator {proc.pid} died during {cmd!r}") from None
            if status != "ok":
                raise BenchError(f"load generator failed during {cmd!r}:\n{result}")
            answers.append(result)
        return answers

    def ask(self, cmd: str, args: list[Any], timeout: float) -> list[dict[str, Any]]:
        self.send(cmd, args)
        return self.collect(cmd, timeout)

    def stop(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        with contextlib.suppress(BenchError, OSError):
            for answer in self.ask("close", [None] * len(self.clients), 60):
                totals.update(answer)
        for proc, pipe in self.clients:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            pipe.close()
        self.clients = []
        return dict(totals)

    def kill(self) -> None:
        """SIGKILL every process: the kernel closes all their sockets at once."""
        for proc, _ in self.clients:
            proc.kill()
        for proc, pipe in self.clients:
            proc.join(timeout=30)
            pipe.close()
        self.clients = []

    def split(self, total: int) -> list[int]:
        n = len(self.clients)
        return [total // n + (1 if i < total % n else 0) for i in range(n)]


@dataclass
class PhaseResult:
    name: str
    active: int
    target_rate: float
    ok: int = 0
    errors: int = 0
    lost: int = 0
    unexpected: int = 0
    first_error: str = ""
    window: float = 0.0
    wall: float = 0.0
    server_cpu: float = 0.0
    server_sys: float = 0.0  # the kernel's share of server_cpu
    loop_cpu: float = 0.0  # the main (event-loop) thread's share of server_cpu
    # server_cpu by thread name (the threads that ran during the phase)
    threads_cpu: dict[str, float] = field(default_factory=dict)
    machine_cpu: float = 0.0  # every process on the machine, interrupts included
    irq_cpu: float = 0.0  # hard and soft interrupts (loopback networking)
    redis_cpu: float | None = None
    client_cpu: float = 0.0
    lat: list[list[float]] = field(default_factory=list)  # sorted, per kind

    @property
    def all_lat(self) -> list[float]:
        return sorted(x for per_kind in self.lat for x in per_kind)

    @property
    def rate(self) -> float:
        return self.ok / self.window if self.window > 0 else 0.0

    def per_msg_us(self, seconds: float | None) -> float | None:
        if seconds is None or not self.ok:
            return None
        return seconds / self.ok * 1e6


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"


def fmt_us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} µs"
