#!/usr/bin/env python
"""Benchmark of the OCPP central system: connections held, throughput, latency, CPU, memory.

Run from the repository root (not collected by pytest)::

    .venv/bin/python tests/bench/bench_ocpp.py            # 10,000 chargers, SQLite
    .venv/bin/python tests/bench/bench_ocpp.py --redis    # the same on Redis (db 14)
    .venv/bin/python tests/bench/bench_ocpp.py --quick    # smoke test, 500 chargers
    .venv/bin/python tests/bench/bench_ocpp.py --server reference   # ocpp library alone
    .venv/bin/python tests/bench/bench_ocpp.py --server floor       # WebSocket + JSON alone

By default (``--server all``) the run is made three times, on three servers in turn: the
floor (:func:`serve_floor`: aiohttp's WebSocket and JSON, nothing else), the reference
(:func:`serve_reference`: the ocpp library's ChargePoint, no storage) and the gateway; the
gateway's figures are then printed beside both, with their ratios. ``--server both`` is
the reference and the gateway only.

What a run does (with the floor or the reference, step 1 starts that server instead):

1. starts the real gateway (``ocpi-gateway serve``) as a subprocess on a free
   loopback port, in a temporary data dir, with auto-registration on and a
   heartbeat interval of an hour (so the watchdog never closes idle chargers);
2. starts ``--clients`` load-generator processes (the per-process open-files
   limit, and so that their CPU is not the server's); each opens its share of
   the WebSocket connections (OCPP 1.6J) and sends one BootNotification per
   charger, then holds them idle: *connections held*, *memory per connection*
   (server RSS after minus before, from ``/proc/PID/status``), idle CPU;
3. saturation: ``--active`` of the chargers send Heartbeat, StatusNotification
   and MeterValues (equal mix) back to back, one CALL in flight per connection
   as OCPP-J requires, for ``--duration`` seconds: *messages per second*,
   round-trip latency (send to the CALLRESULT with the same message id), and
   *server CPU per message* (``utime + stime`` of the gateway process, all its
   threads, from ``/proc/PID/stat``, divided by the messages answered);
4. the same mix at a fixed total ``--rate`` for latency under a load that does
   not saturate the server, ``--between`` seconds (2) after the saturated phase, so
   that it measures the steady state rather than what that phase left to write.

Frames are pre-built strings (only the message id is spliced in) so that the
load generator costs a fraction of what the server does; its own CPU per
message is printed too, as is redis-server's with ``--redis``. Every wait is
bounded; the script stops the gateway (SIGTERM, then SIGKILL after a grace
period), removes its temporary directory and, with ``--redis``, its keys.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from array import array
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from loadgen import (
    ADMIN_TOKEN,
    HOST,
    KINDS,
    BenchError,
    LoadGenerators,
    PhaseResult,
    child_pids,
    find_redis_server_pid,
    free_port,
    machine_busy_seconds,
    percentile,
    proc_cpu_seconds,
    proc_cpu_split,
    proc_memory_kib,
    proc_thread_cpu,
)
from loadgen import fmt_ms as _ms
from loadgen import fmt_us as _us


def established_on(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (the kernel's count)."""
    wanted = f"{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                parts = line.split(None, 4)
                if parts[3] == "01" and parts[1].rsplit(":", 1)[1] == wanted:
                    count += 1
    return count


# -- reference: a minimal central system with the ocpp library alone ---------------------------


def serve_reference(port: int) -> None:
    """What the issue's reference figures measure: ocpp's ChargePoint, no storage."""
    from datetime import UTC, datetime

    from aiohttp import WSMsgType, web
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result

    def now() -> str:
        return datetime.now(UTC).isoformat()

    class Adapter:
        def __init__(self, ws: web.WebSocketResponse) -> None:
            self.ws = ws

        async def recv(self) -> str:
            msg = await self.ws.receive()
            if msg.type is WSMsgType.TEXT:
                return str(msg.data)
            raise ConnectionError("closed")

        async def send(self, message: str) -> None:
            await self.ws.send_str(message)

    class CentralSystemCP(ChargePoint):  # type: ignore[misc]
        @on("BootNotification")  # type: ignore[untyped-decorator]
        async def on_boot(self, **_: Any) -> Any:
            return call_result.BootNotification(
                current_time=now(), interval=3600, status="Accepted"
            )

        @on("Heartbeat")  # type: ignore[untyped-decorator]
        async def on_heartbeat(self, **_: Any) -> Any:
            return call_result.Heartbeat(current_time=now())

        @on("StatusNotification")  # type: ignore[untyped-decorator]
        async def on_status(self, **_: Any) -> Any:
            return call_result.StatusNotification()

        @on("MeterValues")  # type: ignore[untyped-decorator]
        async def on_meter_values(self, **_: Any) -> Any:
            return call_result.MeterValues()

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        cp = CentralSystemCP(request.match_info["cp_id"], Adapter(ws))
        with contextlib.suppress(ConnectionError):
            await cp.start()
        return ws

    app = web.Application()
    app.router.add_get("/ocpp/{cp_id}", handler)
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


# -- floor: what the WebSocket and the JSON work alone cost -----------------------------------


def serve_floor(port: int) -> None:
    """The floor of the comparison: aiohttp's ``WebSocketResponse`` (subprotocol
    ocpp1.6, route ``/ocpp/{cp_id}``) that parses each text frame with ``json.loads`` and
    answers a CALL ``[2, id, action, payload]`` with a CALLRESULT built by a JSON encoder
    (compact separators, as ``json.dumps(..., separators=(",", ":"))`` and as the ocpp
    library and the gateway write, built once as the gateway's is): BootNotification
    ``{currentTime, interval: 3600, status: Accepted}``, Heartbeat ``{currentTime}``, any
    other action ``{}``. No validation, no routing, no storage.

    Event loop: uvloop when importable, else asyncio's, as the gateway
    (``gateway.app._event_loop``), and the gateway's collector settings at start-up
    (``gc.freeze()``, thresholds 50,000 / 20 / 100). The reference server
    (:func:`serve_reference`) runs on asyncio's own loop (``web.run_app``'s default, no
    uvloop) with the collector's default thresholds."""
    import asyncio
    import gc
    from datetime import UTC, datetime

    from aiohttp import WSMsgType, web

    try:
        import uvloop
    except ImportError:  # as the gateway: the standard loop works too
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()

    decode = json.loads
    encode = json.JSONEncoder(separators=(",", ":")).encode
    text = WSMsgType.TEXT

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not text:
                continue
            try:
                frame = decode(msg.data)
                if frame[0] != 2:
                    continue
                action = frame[2]
            except (ValueError, TypeError, IndexError, KeyError):
                continue
            payload: dict[str, Any]
            if action == "BootNotification":
                payload = {
                    "currentTime": datetime.now(UTC).isoformat(),
                    "interval": 3600,
                    "status": "Accepted",
                }
            elif action == "Heartbeat":
                payload = {"currentTime": datetime.now(UTC).isoformat()}
            else:
                payload = {}
            await ws.send_str(encode([3, frame[1], payload]))
        return ws

    async def freeze_gc(app: web.Application) -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)

    app = web.Application()
    app.router.add_get("/ocpp/{cp_id}", handler)
    app.on_startup.append(freeze_gc)
    web.run_app(app, host=HOST, port=port, print=None, access_log=None, loop=loop)


CPROFILE_SERVER = "--serve-gateway-under-cprofile"


def _rss_parts(mem: dict[str, int]) -> dict[str, int] | None:
    """RssAnon / RssFile / RssShmem of a ``proc_memory_kib`` reading (None: not shown)."""
    keys = ("RssAnon", "RssFile", "RssShmem")
    return {k: mem[k] for k in keys} if all(k in mem for k in keys) else None


def _rss_parts_line(before: dict[str, int] | None, after: dict[str, int] | None) -> list[str]:
    """What the RSS after close is made of, each part against before connecting: heap
    (anonymous), mapped files (libraries) and shared memory (SQLite's WAL index)."""
    if before is None or after is None:
        return []
    parts = ", ".join(
        f"{name} {(after[k] - before[k]) / 1024:+.1f}"
        for name, k in (("anon", "RssAnon"), ("file", "RssFile"), ("shmem", "RssShmem"))
    )
    return [f"    of which (MiB)              {parts}"]


def serve_gateway_under_cprofile(out: str, gateway_args: list[str]) -> int:
    """``ocpi-gateway`` with a cProfile of its main (event-loop) thread, enabled by
    SIGUSR1 and written to ``out`` by SIGUSR2 (see ``--profile X.pstats``).

    cProfile's default (wall) clock: a CPU-time clock would cost a system call per
    function call and swamp the profile; the event-loop thread is busy during
    saturation, so its wall time is its CPU time unless the machine is crowded
    (see ``--nice``)."""
    import cProfile

    from gateway.cli import main as gateway_main

    profile = cProfile.Profile()

    def start(*_: Any) -> None:
        profile.enable()

    def stop(*_: Any) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return gateway_main(gateway_args)


# -- coordinator ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-ocpp-"))
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.log_path = self.tmp / "server.log"
        self.gens = LoadGenerators()
        self.redis_prefix = f"bench:{os.getpid()}:{uuid.uuid4().hex[:8]}:"
        self.redis_pid: int | None = None
        self.results: dict[str, Any] = {}
        self.ids: list[list[str]] = []  # per load generator, the chargers it connects

    # -- server --------------------------------------------------------------------------

    def _server_command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        if self.args.server == "reference":
            return [sys.executable, __file__, "--serve-reference", str(self.port)], env
        if self.args.server == "floor":
            return [sys.executable, __file__, "--serve-floor", str(self.port)], env
        script = Path(sys.executable).parent / "ocpi-gateway"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]
        if self.cprofile_out is not None:
            cmd = [sys.executable, __file__, CPROFILE_SERVER, str(self.cprofile_out)]
        # The benchmarks built on this one (bench_smart, bench_cluster) have no --trail:
        # they run with the default, the trail on.
        trail = getattr(self.args, "trail", "on")
        metrics = getattr(self.args, "metrics", "on")
        env.update(
            GATEWAY_AUTO_REGISTER="true",
            GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
            GATEWAY_LOG_LEVEL="WARNING",
            GATEWAY_HEARTBEAT_INTERVAL="3600",
            # 10,000 chargers without passwords from one address: no per-address bound.
            GATEWAY_UNAUTHENTICATED_PER_MINUTE="0",
            GATEWAY_UNAUTHENTICATED_PER_ADDRESS="0",
            GATEWAY_TRAIL="false" if trail == "off" else "true",
            GATEWAY_TRAIL_BODIES="true" if trail == "bodies" else "false",
            GATEWAY_WRITER_PROCESSES=(
                "false" if getattr(self.args, "writers", "process") == "thread" else "true"
            ),
            GATEWAY_METRICS="false" if metrics == "off" else "true",
        )
        for key in ("GATEWAY_REDIS_URL", "GATEWAY_REDIS_PREFIX", "GATEWAY_HOST", "GATEWAY_PORT"):
            env.pop(key, None)
        if self.args.redis:
            env["GATEWAY_REDIS_URL"] = self.args.redis_url
            env["GATEWAY_REDIS_PREFIX"] = self.redis_prefix
            # Redis storage needs the key that encrypts partner tokens (any Fernet key).
            env["GATEWAY_SECRET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
        cmd += ["serve", "--host", HOST, "--port", str(self.port)]
        cmd += ["--data-dir", str(self.tmp / "data")]
        return cmd, env

    def start_server(self) -> None:
        cmd, env = self._server_command()
        log = self.log_path.open("wb")
        self.server = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            self.check_server()
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                break
            if time.monotonic() > deadline:
                raise BenchError("the server did not listen within 60 s" + self.log_tail())
            time.sleep(0.1)
        time.sleep(0.5)  # let start-up settle (gc.freeze, first allocations)

    def check_server(self) -> None:
        if self.server is not None and self.server.poll() is not None:
            raise BenchError(f"the server exited with {self.server.returncode}" + self.log_tail())

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- server log (tail) ---\n" + "\n".join(text) if text else ""

    def stop_server(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        self.server.send_signal(signal.SIGTERM)
        try:
            self.server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(timeout=10)

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    # -- clients -------------------------------------------------------------------------

    def start_clients(self) -> None:
        self.gens.start([f"ws://{HOST}:{self.port}/ocpp"] * self.args.clients)

    @property
    def clients(self) -> list[tuple[Any, Pipe]]:
        return self.gens.clients

    def ask(self, cmd: str, args: list[Any], timeout: float) -> list[dict[str, Any]]:
        return self.gens.ask(cmd, args, timeout)

    def stop_clients(self) -> dict[str, int]:
        return self.gens.stop()

    def split(self, total: int) -> list[int]:
        return self.gens.split(total)

    # -- measurements --------------------------------------------------------------------

    def cpu(self) -> tuple[float, float | None]:
        redis_cpu = None
        if self.redis_pid is not None:
            with contextlib.suppress(OSError):
                redis_cpu = proc_cpu_seconds(self.redis_pid)
        return proc_cpu_seconds(self.pid), redis_cpu

    def connect(self) -> None:
        args = self.args
        run = uuid.uuid4().hex[:6]
        shares = self.split(args.connections)
        ids = [[f"bench-{run}-{c}-{i}" for i in range(share)] for c, share in enumerate(shares)]
        self.ids = ids  # the same chargers connect again in --reconnect-waves
        mem0 = proc_memory_kib(self.pid)
        cpu0, _ = self.cpu()
        t0 = time.monotonic()
        answers = self.ask(
            "connect",
            [
                {
                    "ids": chunk,
                    "concurrency": args.connect_concurrency,
                    "timeout": args.connect_timeout,
                }
                for chunk in ids
            ],
            args.connect_timeout + 60,
        )
        wall = time.monotonic() - t0
        cpu1, _ = self.cpu()
        self.check_server()
        time.sleep(1.0)  # let the last writes land before sampling memory
        held = sum(a["held"] for a in self.ask("status", [None] * len(self.clients), 30))
        mem1 = proc_memory_kib(self.pid)
        failures: Counter[str] = Counter()
        for answer in answers:
            failures.update(dict(answer["failures"]))
        self.results["connect"] = {
            "requested": args.connections,
            "held": held,
            "failed": sum(a["failed"] for a in answers),
            "failures": failures.most_common(5),
            "seconds": wall,
            "server_cpu_s": cpu1 - cpu0,
            "rss_before_kib": mem0["VmRSS"],
            "hwm_before_kib": mem0["VmHWM"],
            "rss_after_kib": mem1["VmRSS"],
            "hwm_after_kib": mem1["VmHWM"],
            # RssAnon / RssFile / RssShmem before connecting (what the RSS is made of).
            "parts_before_kib": _rss_parts(mem0),
        }

    def idle(self) -> None:
        cpu0, _ = self.cpu()
        t0 = time.monotonic()
        time.sleep(self.args.idle)
        cpu1, _ = self.cpu()
        wall = time.monotonic() - t0
        held = sum(a["held"] for a in self.ask("status", [None] * len(self.clients), 30))
        self.results["idle"] = {"seconds": wall, "server_cpu_s": cpu1 - cpu0, "held": held}

    def phase(self, name: str, active: int, duration: float, rate: float) -> PhaseResult:
        self.check_server()
        start_at = time.monotonic() + 0.3
        actives = self.split(active)
        rates = [rate * a / active if active else 0.0 for a in actives]
        specs = [
            {"active": a, "rate": r, "duration": duration, "start_at": start_at, "drain": 30.0}
            for a, r in zip(actives, rates, strict=True)
        ]
        for (_, pipe), spec in zip(self.clients, specs, strict=True):
            pipe.send(("phase", spec))
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu0, redis0 = self.cpu()
        sys0 = proc_cpu_split(self.pid)[1]
        loop0 = sum(proc_cpu_split(self.pid, self.pid))
        threads0 = proc_thread_cpu(self.pid)
        machine0 = machine_busy_seconds()
        t0 = time.monotonic()
        answers = []
        for proc, pipe in self.clients:
            if not pipe.poll(max(1.0, start_at + duration + 60 - time.monotonic())):
                raise BenchError(f"a load generator did not finish phase {name!r}")
            try:
                status, result = pipe.recv()
            except EOFError:
                raise BenchError(f"load generator {proc.pid} died during {name!r}") from None
            if status != "ok":
                raise BenchError(f"load generator failed during {name!r}:\n{result}")
            answers.append(result)
        cpu1, redis1 = self.cpu()
        sys1 = proc_cpu_split(self.pid)[1]
        loop1 = sum(proc_cpu_split(self.pid, self.pid))
        threads1 = proc_thread_cpu(self.pid)
        machine1 = machine_busy_seconds()
        wall = time.monotonic() - t0
        result = PhaseResult(name=name, active=sum(a["active"] for a in answers), target_rate=rate)
        for answer in answers:
            result.ok += answer["ok"]
            result.errors += answer["errors"]
            result.lost += answer["lost"]
            result.unexpected += answer["unexpected"]
            result.client_cpu += answer["cpu"]
            result.first_error = result.first_error or answer["first_error"]
        result.window = max(a["last_answer"] for a in answers) - min(a["start"] for a in answers)
        result.wall = wall
        result.server_cpu = cpu1 - cpu0
        result.server_sys = sys1 - sys0
        result.loop_cpu = loop1 - loop0
        result.threads_cpu = {
            name: spent
            for name, seconds in threads1.items()
            if (spent := seconds - threads0.get(name, 0.0)) > 0
        }
        result.machine_cpu = machine1[0] - machine0[0]
        result.irq_cpu = machine1[1] - machine0[1]
        if redis0 is not None and redis1 is not None:
            result.redis_cpu = redis1 - redis0
        per_kind: list[list[float]] = [[], [], []]
        for answer in answers:
            for kind, raw in enumerate(answer["lat"]):
                values = array("d")
                values.frombytes(raw)
                per_kind[kind].extend(values)
        result.lat = [sorted(v) for v in per_kind]
        self.check_server()
        return result

    def server_connected_count(self) -> int | None:
        """How many chargers the gateway itself lists as connected (admin API)."""
        if self.args.server != "gateway":
            return None
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}/admin/chargers",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=180) as response:
                chargers = json.load(response)
        except (OSError, ValueError) as exc:
            print(f"  (admin API check failed: {exc})", file=sys.stderr)
            return None
        return sum(1 for c in chargers if c.get("connected"))

    @property
    def cprofile_out(self) -> Path | None:
        """With ``--profile X.pstats``: the gateway runs under cProfile (main thread CPU)."""
        if self.args.profile and Path(self.args.profile).suffix in (".pstats", ".prof"):
            return Path(self.args.profile).resolve()
        return None

    def start_profiler(self, seconds: float) -> Callable[[], None]:
        """Start profiling the server now; the returned function stops it and saves the file."""
        if not self.args.profile:
            return lambda: None
        out = Path(self.args.profile).resolve()
        if self.cprofile_out is not None:
            out.unlink(missing_ok=True)
            os.kill(self.pid, signal.SIGUSR1)

            def stop_cprofile() -> None:
                os.kill(self.pid, signal.SIGUSR2)
                deadline = time.monotonic() + 60
                while not out.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
                if not out.exists():
                    print("cProfile: the server wrote no profile", file=sys.stderr)

            return stop_cprofile
        py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        if py_spy is None:
            raise BenchError("--profile needs py-spy (.venv/bin/pip install py-spy)")
        fmt = {".json": "speedscope", ".txt": "raw"}.get(out.suffix, "flamegraph")
        cmd = [py_spy, "record", "-p", str(self.pid), "-d", str(max(1, int(seconds))), "-r", "100"]
        cmd += ["--threads", "-f", fmt, "-o", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def stop_py_spy() -> None:
            try:
                _, err = proc.communicate(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate(timeout=10)
            if proc.returncode != 0:
                print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)

        return stop_py_spy

    # -- the run -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args = self.args
        if args.redis:
            import redis

            try:
                redis.Redis.from_url(args.redis_url, socket_timeout=5).ping()
            except redis.RedisError as exc:
                raise BenchError(f"--redis: no Redis answers at {args.redis_url}: {exc}") from None
            self.redis_pid = find_redis_server_pid()
        self.start_server()
        print(
            f"server pid {self.pid} on ws://{HOST}:{self.port}/ocpp "
            f"(storage: {self.storage_name}); temp dir {self.tmp}",
            flush=True,
        )
        self.start_clients()
        self.connect()
        c = self.results["connect"]
        if not c["held"]:
            raise BenchError(f"no charger could connect: {c['failures']}" + self.log_tail())
        print(
            f"connected {c['held']}/{c['requested']} in {c['seconds']:.1f} s; "
            f"idle {args.idle:.0f} s, warm-up {args.warmup:.0f} s, then {args.duration:.0f} s "
            f"saturated and, {getattr(args, 'between', 0.0):g} s later, rate-limited",
            flush=True,
        )
        self.idle()
        active = min(args.active, c["held"])
        if args.warmup > 0:
            self.phase("warm-up", active, args.warmup, 0)
        profile_rate = args.profile_phase == "rate-limited"
        stop_profiler = self.start_profiler(args.duration) if not profile_rate else None
        saturated = self.phase("saturation", active, args.duration, 0)
        if stop_profiler is not None:
            stop_profiler()
        # The rate-limited phase measures the steady state, not the saturated phase's
        # backlog: the trail's flush of its last half second (17,498 and 34,698 entries in
        # two runs) held the loop and the writer's commits at the start of the phase (in
        # one run 29 of its 107 status writes over 3 ms in its first 0.3 s; the twelfth
        # round in tests/bench/README.md).
        between = getattr(args, "between", 0.0)
        if between > 0:
            time.sleep(between)
        stop_profiler = self.start_profiler(args.duration) if profile_rate else None
        limited = self.phase("rate-limited", active, args.duration, args.rate)
        if stop_profiler is not None:
            stop_profiler()
        status = self.ask("status", [None] * len(self.clients), 30)
        self.results["end"] = {
            "held": sum(a["held"] for a in status),
            "dropped": sum(a["dropped"] for a in status),
            "server_connected": self.server_connected_count(),
            "memory_kib": proc_memory_kib(self.pid),
        }
        self.results["phases"] = [saturated, limited]
        self.after_close()
        self.reconnect_waves()
        return self.results

    def after_close(self) -> None:
        """Every charger disconnects (the load generators close their connections and
        exit); once the kernel shows none left on the server's port, the server's RSS is
        sampled until it stops falling (``--settle`` s at most): what the closed
        connections still hold, against the RSS before any connected."""
        rss_open = proc_memory_kib(self.pid)["VmRSS"]
        t0 = time.monotonic()
        self.stop_clients()
        deadline = t0 + 120
        while established_on(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        closed_s = time.monotonic() - t0
        self.check_server()
        samples = [proc_memory_kib(self.pid)["VmRSS"]]
        settle_until = time.monotonic() + self.args.settle
        while time.monotonic() < settle_until:
            time.sleep(0.5)
            samples.append(proc_memory_kib(self.pid)["VmRSS"])
        self.results["closed"] = {
            "seconds_to_close": closed_s,
            "rss_open_kib": rss_open,
            "rss_closed_kib": samples[-1],
            "parts_closed_kib": _rss_parts(proc_memory_kib(self.pid)),
            "left_open": established_on(self.port),
            "children_rss_kib": self._children_rss_kib(),
        }

    def _children_rss_kib(self) -> dict[str, int]:
        """The RSS of each child process of the server (the gateway's trail writer), by
        name: apart from the server's own figures, which they are not part of."""
        found: dict[str, int] = {}
        for child in child_pids(self.pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                with open(f"/proc/{child}/comm") as f:
                    name = f.read().strip()
                found[name] = found.get(name, 0) + proc_memory_kib(child)["VmRSS"]
        return found

    def _closed_rss_kib(self) -> int:
        """Once the kernel shows no connection left on the port, the RSS after
        ``--settle`` s."""
        deadline = time.monotonic() + 120
        while established_on(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.check_server()
        time.sleep(self.args.settle)
        return int(proc_memory_kib(self.pid)["VmRSS"])

    def reconnect_waves(self) -> None:
        """``--reconnect-waves N``: the same chargers connect again (a BootNotification
        each) and all close, N times; the RSS with them held and after each close. What
        closed connections freed is reused, so these stay level unless something is
        kept per connection (or waits for a full collection of the cyclic GC)."""
        waves: list[dict[str, int]] = []
        args = self.args
        for _ in range(args.reconnect_waves):
            self.start_clients()
            self.ask(
                "connect",
                [
                    {"ids": chunk, "concurrency": args.connect_concurrency,
                     "timeout": args.connect_timeout}
                    for chunk in self.ids
                ],
                args.connect_timeout + 60,
            )  # fmt: skip
            time.sleep(1.0)
            held = sum(a["held"] for a in self.ask("status", [None] * len(self.clients), 30))
            rss_held = int(proc_memory_kib(self.pid)["VmRSS"])
            self.stop_clients()
            waves.append(
                {"held": held, "rss_held_kib": rss_held, "rss_closed_kib": self._closed_rss_kib()}
            )
        self.results["waves"] = waves

    @property
    def storage_name(self) -> str:
        if self.args.server == "reference":
            return "none (ocpp library alone)"
        if self.args.server == "floor":
            return "none (aiohttp WebSocket and JSON alone)"
        return (
            f"redis {self.args.redis_url} prefix {self.redis_prefix}"
            if self.args.redis
            else "sqlite"
        )

    def cleanup(self) -> None:
        if self.clients:
            self.stop_clients()
        self.stop_server()
        if self.args.redis and self.args.server == "gateway":
            import redis

            with contextlib.suppress(redis.RedisError):
                r = redis.Redis.from_url(self.args.redis_url, socket_timeout=10)
                keys = list(r.scan_iter(match=self.redis_prefix + "*", count=1000))
                for i in range(0, len(keys), 1000):
                    r.delete(*keys[i : i + 1000])
                r.close()
        if self.args.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- report ---------------------------------------------------------------------------------


def report(args: argparse.Namespace, bench: Bench, results: dict[str, Any]) -> dict[str, Any]:
    c, idle, end = results["connect"], results["idle"], results["end"]
    closed = results["closed"]
    saturated, limited = results["phases"]
    rss_delta = (c["rss_after_kib"] - c["rss_before_kib"]) * 1024
    hwm_delta = (c["hwm_after_kib"] - c["rss_before_kib"]) * 1024
    per_conn = rss_delta / c["held"] if c["held"] else None
    per_conn_peak = hwm_delta / c["held"] if c["held"] else None
    server_us = saturated.per_msg_us(saturated.server_cpu)
    summary: dict[str, Any] = {
        "server": args.server,
        "storage": bench.storage_name,
        "connections_requested": c["requested"],
        "connections_held": c["held"],
        "connections_held_at_end": end["held"],
        "server_reports_connected": end["server_connected"],
        "msgs_per_s_saturation": saturated.rate,
        "server_cpu_us_per_msg": server_us,
        "memory_per_connection_bytes": per_conn,
        "peak_memory_per_connection_bytes": per_conn_peak,
        "server_peak_rss_kib": end["memory_kib"]["VmHWM"],
        "rss_before_connecting_kib": c["rss_before_kib"],
        "rss_after_close_kib": closed["rss_closed_kib"],
        "rss_after_close_above_before_kib": closed["rss_closed_kib"] - c["rss_before_kib"],
    }
    waves = bench.results.get("waves") or []
    if waves:
        summary["reconnect_waves"] = waves
        summary["rss_after_last_wave_above_before_kib"] = (
            waves[-1]["rss_closed_kib"] - c["rss_before_kib"]
        )
    lines = [
        "",
        f"OCPP central system benchmark: {args.server} ({bench.storage_name}), OCPP 1.6J, "
        f"{os.cpu_count()} cores, {args.clients} load-generator processes",
        "",
        "connections",
        f"  held (load generator)         {c['held']} of {c['requested']}"
        + (f"  ({c['failed']} failed: {c['failures']})" if c["failed"] else ""),
        f"  held at the end               {end['held']}"
        + (f"  ({end['dropped']} closed by the server)" if end["dropped"] else ""),
    ]
    if end["server_connected"] is not None:
        lines.append(f"  connected (gateway admin API) {end['server_connected']}")
    lines += [
        f"  connect + BootNotification    {c['seconds']:.1f} s "
        f"({c['held'] / c['seconds']:.0f}/s), server CPU "
        f"{_us(c['server_cpu_s'] / c['held'] * 1e6 if c['held'] else None)} per connection",
        f"  idle server CPU               {idle['server_cpu_s'] / idle['seconds'] * 100:.1f} % "
        f"of a core over {idle['seconds']:.0f} s",
        "",
        "server memory",
        f"  RSS before connecting         {c['rss_before_kib'] / 1024:.1f} MiB",
        f"  RSS with all idle connections {c['rss_after_kib'] / 1024:.1f} MiB "
        f"(peak VmHWM {c['hwm_after_kib'] / 1024:.1f} MiB)",
        f"  RSS / peak at the end         {end['memory_kib']['VmRSS'] / 1024:.1f} / "
        f"{end['memory_kib']['VmHWM'] / 1024:.1f} MiB",
        f"  RSS after all closed          {closed['rss_closed_kib'] / 1024:.1f} MiB "
        f"({(closed['rss_closed_kib'] - c['rss_before_kib']) / 1024:+.1f} MiB against before "
        f"connecting; closed in {closed['seconds_to_close']:.1f} s"
        + (f", {closed['left_open']} still open" if closed["left_open"] else "")
        + ")",
        *_rss_parts_line(c.get("parts_before_kib"), closed.get("parts_closed_kib")),
        *(
            [
                "  its child processes' RSS      "
                + ", ".join(f"{n} {k / 1024:.1f} MiB" for n, k in children.items())
                + " (not in the figures above)"
            ]
            if (children := closed.get("children_rss_kib"))
            else []
        ),
        "  per idle connection           "
        + ("n/a" if per_conn is None else f"{per_conn / 1000:.1f} kB")
        + "  (peak: "
        + ("n/a" if per_conn_peak is None else f"{per_conn_peak / 1000:.1f} kB")
        + ")",
    ]
    for i, wave in enumerate(waves, 1):
        lines.append(
            f"  reconnect wave {i}              {wave['held']} held: RSS "
            f"{(wave['rss_held_kib'] - c['rss_before_kib']) / 1024:+.1f} MiB, after all closed "
            f"{(wave['rss_closed_kib'] - c['rss_before_kib']) / 1024:+.1f} MiB (against before "
            "connecting)"
        )
    for phase in (saturated, limited):
        lat = phase.all_lat
        target = (
            "back to back, 1 CALL in flight per connection"
            if not phase.target_rate
            else f"target {phase.target_rate:.0f} msg/s"
        )
        lines += [
            "",
            f"{phase.name}: {phase.active} active chargers, {target}, {args.duration:.0f} s",
            f"  answered                      {phase.ok}"
            + f"  (CALLERROR {phase.errors}, unanswered {phase.lost}, stray {phase.unexpected})",
            f"  throughput                    {phase.rate:.0f} msg/s",
            f"  round trip p50 / p99          {_ms(percentile(lat, 50))} / {_ms(percentile(lat, 99))}"
            f"   (p99.9 {_ms(percentile(lat, 99.9))}, max {_ms(lat[-1] if lat else None)})",
        ]
        for kind, values in zip(KINDS, phase.lat, strict=True):
            lines.append(
                f"    {kind:<27} {_ms(percentile(values, 50))} / {_ms(percentile(values, 99))}"
            )
        lines += [
            f"  server CPU                    {_us(phase.per_msg_us(phase.server_cpu))} per message"
            f"  ({phase.server_cpu / phase.wall * 100:.0f} % of a core; kernel "
            f"{_us(phase.per_msg_us(phase.server_sys))})",
            f"    event-loop thread           {_us(phase.per_msg_us(phase.loop_cpu))} per message"
            f"  ({phase.loop_cpu / phase.wall * 100:.0f} % of a core); other threads "
            f"{_us(phase.per_msg_us(phase.server_cpu - phase.loop_cpu))}",
        ]
        others = sorted(
            ((n, c) for n, c in phase.threads_cpu.items() if n != "event loop"),
            key=lambda item: -item[1],
        )
        if others:
            lines.append(
                "      by thread                 "
                + ", ".join(f"{n} {_us(phase.per_msg_us(c))}" for n, c in others[:5])
            )
        if phase.redis_cpu is not None:
            lines.append(
                f"  redis-server CPU              {_us(phase.per_msg_us(phase.redis_cpu))} per message"
            )
        lines.append(
            f"  load generator CPU            {_us(phase.per_msg_us(phase.client_cpu))} per message"
        )
        others = (
            phase.machine_cpu
            - phase.irq_cpu
            - phase.server_cpu
            - phase.client_cpu
            - (phase.redis_cpu or 0)
        )
        lines.append(
            f"  interrupts (loopback TCP)     {_us(phase.per_msg_us(phase.irq_cpu))} per message"
            f"  ({phase.irq_cpu / phase.wall * 100:.0f} % of a core, charged to no process)"
        )
        lines.append(
            f"  other processes               {max(0.0, others) / phase.wall * 100:.0f} % of a core"
            + ("  (a busy machine: figures perturbed)" if others > 0.15 * phase.wall else "")
        )
        if phase.first_error:
            lines.append(f"  first CALLERROR: {phase.first_error}")
        summary[f"{phase.name}"] = {
            "active": phase.active,
            "answered": phase.ok,
            "errors": phase.errors,
            "unanswered": phase.lost,
            "msgs_per_s": phase.rate,
            "p50_ms": (percentile(lat, 50) or 0) * 1000,
            "p99_ms": (percentile(lat, 99) or 0) * 1000,
            "server_cpu_us_per_msg": phase.per_msg_us(phase.server_cpu),
            "redis_cpu_us_per_msg": phase.per_msg_us(phase.redis_cpu),
            "client_cpu_us_per_msg": phase.per_msg_us(phase.client_cpu),
            "event_loop_cpu_us_per_msg": phase.per_msg_us(phase.loop_cpu),
            "threads_cpu_us_per_msg": {
                name: phase.per_msg_us(cpu) for name, cpu in phase.threads_cpu.items()
            },
            "server_busy_percent_of_core": phase.server_cpu / phase.wall * 100,
            "interrupts_us_per_msg": phase.per_msg_us(phase.irq_cpu),
            "other_processes_percent_of_core": max(0.0, others) / phase.wall * 100,
        }
    lines += [
        "",
        "summary",
        f"  connections held              {c['held']}",
        f"  msgs/s at saturation          {saturated.rate:.0f}",
        f"  p50 / p99 (saturation)        {_ms(percentile(saturated.all_lat, 50))} / "
        f"{_ms(percentile(saturated.all_lat, 99))}",
        f"  p50 / p99 (rate-limited)      {_ms(percentile(limited.all_lat, 50))} / "
        f"{_ms(percentile(limited.all_lat, 99))}",
        f"  server CPU per message        {_us(server_us)}  (target <= 250 µs)",
        f"  server peak memory            {end['memory_kib']['VmHWM'] / 1024:.1f} MiB, "
        + ("n/a" if per_conn is None else f"{per_conn / 1000:.1f} kB")
        + " per idle connection",
    ]
    print("\n".join(lines), flush=True)
    return summary


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the OCPP central system (see the module docstring)."
    )
    parser.add_argument("--connections", type=int, default=10_000, help="chargers (10000)")
    parser.add_argument("--active", type=int, default=1000, help="chargers sending (1000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (10)")
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="total msg/s of the rate-limited phase (2000)"
    )
    parser.add_argument("--redis", action="store_true", help="use Redis storage")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14", help="with --redis (db 14)"
    )
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes (2)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 500 chargers, 200 active, 3 s phases"
    )
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured saturated seconds")
    parser.add_argument(
        "--connect-concurrency", type=int, default=64, help="handshakes in progress per client"
    )
    parser.add_argument("--connect-timeout", type=float, default=600.0, help="seconds (600)")
    parser.add_argument(
        "--server",
        choices=("all", "both", "gateway", "reference", "floor"),
        default="all",
        help="all (the default: the floor, the reference server, then the gateway, --rounds "
        "times in turn, and the gateway's figures beside both), both (the reference, then the "
        "gateway), or one alone: the gateway, the reference (a minimal central system with "
        "the ocpp library alone) or the floor (an aiohttp WebSocket server that parses each "
        "frame and answers it with json, nothing else)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="with --server all or both: rounds (1)"
    )
    parser.add_argument(
        "--between",
        type=float,
        default=2.0,
        help="seconds between the saturated and the rate-limited phase, so that the latter "
        "measures the steady state rather than what the former left to write (2)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds the server's RSS is watched after every charger closed (5)",
    )
    parser.add_argument(
        "--reconnect-waves",
        type=int,
        default=0,
        help="after the after-close phase, the same chargers connect again and all close, "
        "this many times; the RSS after each close (0)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server and load generators at this niceness (e.g. -10, needs root) so "
        "that other work on a shared machine disturbs the figures less",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the server during one phase (--profile-phase): FILE.pstats runs it under cProfile "
        "(event-loop thread, pstats file), else py-spy record (.txt collapsed "
        "stacks, .json speedscope, other names an SVG flame graph)",
    )
    parser.add_argument(
        "--profile-phase",
        choices=("saturation", "rate-limited"),
        default="saturation",
        help="the phase --profile records (saturation)",
    )
    parser.add_argument(
        "--trail",
        choices=("off", "on", "bodies"),
        default="on",
        help="the message trail: off, on (the default: metadata of every frame) or bodies "
        "(the frames' text too, tokens masked)",
    )
    parser.add_argument(
        "--writers",
        choices=("process", "thread"),
        default="process",
        help="who writes the trail and the status history on SQLite (GATEWAY_WRITER_PROCESSES):"
        " processes of the gateway's (the default; their CPU is counted as the gateway's) or"
        " threads",
    )
    parser.add_argument(
        "--compare-trail",
        type=int,
        metavar="ROUNDS",
        default=0,
        help="run the whole benchmark with the trail off, on and with bodies, ROUNDS times in "
        "turn, and print the server CPU per message of each beside the others",
    )
    parser.add_argument(
        "--metrics",
        choices=("off", "on"),
        default="on",
        help="metrics (GATEWAY_METRICS): on (the default) or off",
    )
    parser.add_argument(
        "--compare-metrics",
        type=int,
        metavar="ROUNDS",
        default=0,
        help="run the whole benchmark with metrics off and on, ROUNDS times in turn, and "
        "print the server CPU per message of each beside the other",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    parser.add_argument("--serve-reference", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.active, args.duration = 500, 200, 3.0
        args.rate, args.idle, args.warmup = 500.0, 1.0, 1.0
    if args.connections < 1 or args.clients < 1 or args.active < 1 or args.duration <= 0:
        parser.error("--connections, --clients, --active and --duration must be positive")
    if args.connections / args.clients > 18_000:
        parser.error("more than 18,000 connections per client: raise --clients (fd limit)")
    if args.server in ("reference", "floor") and args.redis:
        parser.error("--redis applies to the gateway only")
    if args.server in ("reference", "floor") and Path(args.profile or "").suffix in (
        ".pstats",
        ".prof",
    ):
        parser.error("cProfile (--profile X.pstats) applies to the gateway only; use py-spy")
    if args.compare_trail or args.compare_metrics:
        args.server = "gateway"  # those compare the gateway with itself
    return args


def compare_trail(args: argparse.Namespace) -> int:
    """The whole benchmark with the trail off, on and with bodies, in turn (so that a
    change in the machine's load affects all three alike), and their figures side by side."""
    return compare(args, "trail", ("off", "on", "bodies"), args.compare_trail, "message trail")


def compare_metrics(args: argparse.Namespace) -> int:
    """The whole benchmark with metrics off and on, in turn, side by side."""
    return compare(args, "metrics", ("off", "on"), args.compare_metrics, "metrics")


def compare(
    args: argparse.Namespace, option: str, modes: tuple[str, ...], rounds: int, title: str
) -> int:
    figures: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for round_no in range(1, rounds + 1):
        for mode in figures:
            print(f"\n=== round {round_no}, {option} {mode} ===", flush=True)
            bench = Bench(argparse.Namespace(**{**vars(args), option: mode}))
            try:
                figures[mode].append(report(args, bench, bench.run()))
            except BenchError as exc:
                print(f"benchmark failed: {exc}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                return 130
            finally:
                bench.cleanup()
    print(f"\n{title} cost (saturation; server CPU per message, all threads):")
    base = [f["server_cpu_us_per_msg"] for f in figures["off"]]
    for mode, runs in figures.items():
        cpu = [f["server_cpu_us_per_msg"] for f in runs]
        rates = [f["msgs_per_s_saturation"] for f in runs]
        mean = sum(cpu) / len(cpu)
        delta = mean - sum(base) / len(base)
        print(
            f"  {option} {mode:<6}  {' / '.join(f'{c:.0f}' for c in cpu)} µs (mean {mean:.1f}, "
            f"{delta:+.1f} µs against off); {' / '.join(f'{r:,.0f}' for r in rates)} msg/s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


# (label, summary key path, format, better when lower)
SIDE_BY_SIDE: tuple[tuple[str, tuple[str, ...], str, bool], ...] = (
    ("msg/s at saturation", ("msgs_per_s_saturation",), "{:,.0f}", False),
    (
        "server CPU per message, saturation",
        ("saturation", "server_cpu_us_per_msg"),
        "{:.0f} µs",
        True,
    ),
    ("  event-loop thread", ("saturation", "event_loop_cpu_us_per_msg"), "{:.0f} µs", True),
    ("p50 / p99, saturation", ("saturation", "p50_ms", "p99_ms"), "{:.1f} / {:.1f} ms", True),
    ("msg/s, rate-limited", ("rate-limited", "msgs_per_s"), "{:,.0f}", False),
    (
        "server CPU per message, rate-limited",
        ("rate-limited", "server_cpu_us_per_msg"),
        "{:.0f} µs",
        True,
    ),
    ("  event-loop thread", ("rate-limited", "event_loop_cpu_us_per_msg"), "{:.0f} µs", True),
    ("p50 / p99, rate-limited", ("rate-limited", "p50_ms", "p99_ms"), "{:.2f} / {:.2f} ms", True),
    ("memory per idle connection", ("memory_per_connection_bytes",), "{:.1f} kB", True),
    (
        "RSS after all closed, above before",
        ("rss_after_close_above_before_kib",),
        "{:+.1f} MiB",
        True,
    ),
    (
        "  after the last reconnect wave",
        ("rss_after_last_wave_above_before_kib",),
        "{:+.1f} MiB",
        True,
    ),
)


def _figure(summary: dict[str, Any], path: tuple[str, ...]) -> list[float] | None:
    """The value(s) at ``path`` (a section and one or two keys, or one key)."""
    node: Any = summary
    if len(path) == 1:
        value = node.get(path[0])
        if value is None:
            return None
        if path[0] == "memory_per_connection_bytes":
            return [value / 1000]
        if path[0] in ("rss_after_close_above_before_kib", "rss_after_last_wave_above_before_kib"):
            return [value / 1024]
        return [value]
    section = node.get(path[0]) or {}
    values = [section.get(key) for key in path[1:]]
    numbers = [float(v) for v in values if v is not None]
    return numbers if len(numbers) == len(values) else None


def compare_servers(args: argparse.Namespace) -> int:
    """The floor (``--server all`` only), the reference server (the ocpp library alone)
    and the gateway, ``--rounds`` times in turn, each of the gateway's figures beside the
    baselines' of the same run and its ratio to each: on a shared machine the ratios stay
    trustworthy when the absolute figures move."""
    servers = (
        ("floor", "reference", "gateway") if args.server == "all" else ("reference", "gateway")
    )
    baselines = servers[:-1]
    figures: dict[str, list[dict[str, Any]]] = {server: [] for server in servers}
    for round_no in range(1, args.rounds + 1):
        for server in figures:
            print(f"\n=== round {round_no}: {server} ===", flush=True)
            run_args = argparse.Namespace(**{**vars(args), "server": server})
            if server != "gateway":
                run_args.redis, run_args.profile = False, None
            bench = Bench(run_args)
            try:
                figures[server].append(report(run_args, bench, bench.run()))
            except BenchError as exc:
                print(f"benchmark failed: {exc}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                return 130
            finally:
                bench.cleanup()
    storage = figures["gateway"][0]["storage"].split(" ")[0]
    print(
        f"\nside by side ({args.connections} chargers, {args.active} active, rate-limited at "
        f"{args.rate:.0f} msg/s; gateway on {storage}; each round's runs, ratios of the "
        f"gateway's figure to the {' and the '.join(baselines)}'s):"
    )
    head = f"  {'':<38} {'gateway':>18}" + "".join(f" {b:>18}" for b in baselines)
    print(head + "".join(f" {'/ ' + b:>11}" for b in baselines))
    for label, path, fmt, _lower in SIDE_BY_SIDE:
        for r in range(args.rounds):
            ours = _figure(figures["gateway"][r], path)
            theirs = [_figure(figures[b][r], path) for b in baselines]
            line = f"  {label:<38} {'n/a' if ours is None else fmt.format(*ours):>18}"
            for value in theirs:
                line += f" {'n/a' if value is None else fmt.format(*value):>18}"
            for value in theirs:
                ratio = ""
                if ours is not None and value is not None and value[0] and len(path) <= 2:
                    ratio = f"{ours[0] / value[0]:.2f}"
                line += f" {ratio:>11}"
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == [CPROFILE_SERVER]:
        return serve_gateway_under_cprofile(raw[1], raw[2:])
    args = parse_args(argv)
    if args.serve_reference:
        serve_reference(args.serve_reference)
        return 0
    if args.serve_floor:
        serve_floor(args.serve_floor)
        return 0
    if args.nice:
        try:  # inherited by the server and the load generators
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as exc:
            print(f"--nice {args.nice}: {exc}", file=sys.stderr)
            return 2
    # SIGTERM (e.g. a CI timeout) unwinds through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.compare_trail:
        return compare_trail(args)
    if args.compare_metrics:
        return compare_metrics(args)
    if args.server in ("all", "both"):
        return compare_servers(args)
    bench = Bench(args)
    try:
        results = bench.run()
        summary = report(args, bench, results)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
