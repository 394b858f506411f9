#!/usr/bin/env python
"""Benchmark of two gateway processes on one Redis (issue 10): connections held, scaling
of messages per second, a command routed to the other process, a reconnect storm.

Run from the repository root (not collected by pytest; Redis must answer)::

    .venv/bin/python tests/bench/bench_cluster.py            # 30,000 chargers, 10,000 in the storm
    .venv/bin/python tests/bench/bench_cluster.py --quick    # 2,000 chargers, well under a minute

What it does (every figure is printed beside a baseline measured in the same run):

1. starts two real gateways, A and B (``ocpi-gateway serve``, auto-registration on,
   heartbeat interval an hour, no per-address bound on unauthenticated chargers) on free
   loopback ports, each with its own data dir, sharing one Redis under a fresh key prefix
   (``--redis-url``, db 14 by default; the keys are deleted afterwards);
2. connects the chargers (OCPP 1.6J, one BootNotification each) from load-generator
   processes (the open-files limit is per process): ``--clients`` per gateway for the
   steady chargers, and one process holding the ``--storm`` chargers on A, connected with
   the storm's own sequence (BootNotification, two StatusNotifications) at a paced
   ``--connect-concurrency``: the storm's baseline. *Connections held*: per process,
   counted by the kernel (established TCP connections on its port, ``/proc/net/tcp``),
   with RSS before and after;
3. saturation (``--active`` chargers, Heartbeat/StatusNotification/MeterValues back to
   back, one CALL in flight each): first all on A (*one process*: B holds its chargers,
   idle), then half on A and half on B (*two processes*): msg/s, the scaling ratio, p50/p99,
   CPU per message of each gateway, of Redis and of the load generators;
4. command latency: ``POST /admin/chargers/{id}/commands/trigger-message`` for chargers
   held by A (the load generator answers the TriggerMessage Accepted), alternately sent to
   A (*local*, the baseline) and to B (*routed* over Redis to A); until the command router
   exists B answers 409 and the routed figure is "n/a (409)";
5. reconnect storm: the process holding the ``--storm`` chargers on A is SIGKILLed (the
   kernel closes its sockets at once) and fresh load generators reconnect all of them at
   once (``--storm-to``: half to A and half to B by default, as a load balancer without
   pinning would), each sending BootNotification and two StatusNotifications: the time
   from the drop until every one is answered, and the errors (CALLERRORs, refused
   connections, handshakes answered otherwise than 101, closed connections, timeouts).

The report starts with the command line; ``--json FILE`` writes the figures too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen import (
    ADMIN_TOKEN,
    HOST,
    BenchError,
    LoadGenerators,
    PhaseResult,
    find_redis_server_pid,
    fmt_ms,
    fmt_us,
    free_port,
    machine_busy_seconds,
    percentile,
    proc_cpu_seconds,
    proc_memory_kib,
)

FD_HEADROOM = 300  # a gateway's own files: listening socket, Redis pool, logs, epoll...


# -- the gateway processes ------------------------------------------------------------------


def gateway_env(redis_url: str, prefix: str, secret_key: str) -> dict[str, str]:
    """What tests/test_leases_processes.py ``cluster_env`` gives a process of a cluster (one
    Redis, one prefix, one secret key), set up for a load test: no GATEWAY_* of the caller
    leaks in; auto-registration; a heartbeat interval of an hour (the watchdog never closes
    an idle charger); no per-address bound on unauthenticated chargers (every charger here
    comes from 127.0.0.1 without a password)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | {
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": prefix,
        "GATEWAY_SECRET_KEY": secret_key,
        "GATEWAY_AUTO_REGISTER": "true",
        "GATEWAY_HEARTBEAT_INTERVAL": "3600",
        "GATEWAY_UNAUTHENTICATED_PER_MINUTE": "0",
        "GATEWAY_UNAUTHENTICATED_PER_ADDRESS": "0",
    }


class Gateway:
    def __init__(self, name: str, tmp: Path, env: dict[str, str], backlog: int | None) -> None:
        self.name = name
        self.backlog = backlog
        self.port = free_port()
        self.data_dir = tmp / f"data-{name}"
        self.log_path = tmp / f"gateway-{name}.log"
        # GATEWAY_LISTEN_BACKLOG (the gateway's default: 4096) when --listen-backlog is given.
        self.env = env if backlog is None else env | {"GATEWAY_LISTEN_BACKLOG": str(backlog)}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ocpp"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        script = Path(sys.executable).parent / "ocpi-gateway"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]
        cmd += ["serve", "--host", HOST, "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            with contextlib.suppress(OSError):
                url = f"http://{HOST}:{self.port}/health/ready"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"gateway {self.name} not ready within {timeout:.0f} s" + self.tail()
                )
            time.sleep(0.1)

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(
                f"gateway {self.name} exited with {self.proc.returncode}" + self.tail()
            )

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\n--- gateway {self.name} log (tail) ---\n" + "\n".join(text) if text else ""

    def log_problems(self) -> int:
        """Lines of its log at ERROR or worse, and tracebacks."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(
            1
            for line in text.splitlines()
            if "ERROR" in line or "CRITICAL" in line or line.startswith("Traceback")
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return proc_memory_kib(self.pid)["VmRSS"]

    def admin(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)


def established(ports: list[int]) -> dict[int, int]:
    """Established TCP connections whose local port is one of ``ports`` (the server ends of
    the chargers' connections: what each process holds, as the kernel counts it)."""
    wanted = {f"{port:04X}": port for port in ports}
    counts = dict.fromkeys(ports, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                parts = line.split(None, 4)
                if parts[3] == "01":
                    port = wanted.get(parts[1].rsplit(":", 1)[1])
                    if port is not None:
                        counts[port] += 1
    return counts


KERNEL_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "SyncookiesSent")


def kernel_tcp_counters() -> dict[str, int]:
    """Machine-wide TcpExt counters (``/proc/net/netstat``): ListenOverflows counts the
    connections dropped because a listening socket's accept queue (its backlog) was full;
    the client's kernel then retransmits its SYN after 1, 3, 7, 15, 31 s."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return {k: table.get(k, 0) for k in KERNEL_COUNTERS}
    return dict.fromkeys(KERNEL_COUNTERS, 0)


def listen_backlog(port: int) -> int | None:
    """The accept queue length a listening socket was given (``ss``: Send-Q)."""
    try:
        out = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        ).stdout
        return int(out.split()[2])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Layout:
    """Which chargers each load generator holds, on which gateway."""

    a_steady: int
    b_steady: int
    storm: int
    storm_to_b: int  # of the storm chargers, how many reconnect to B (the rest to A)

    @property
    def peaks(self) -> dict[str, int]:
        """The most connections each gateway holds at any time."""
        return {
            "A": self.a_steady + self.storm,
            "B": self.b_steady + self.storm_to_b,
        }


def make_layout(connections: int, storm: int, storm_to: str) -> Layout:
    """Steady chargers split so that the busiest moment of either gateway (A before the
    storm, B after it) is as low as it can be: both under the open-files limit."""
    steady = connections - storm
    to_b = {"A": 0, "B": storm, "both": storm // 2}[storm_to]
    a_steady = min(steady, max(0, (steady + to_b - storm) // 2))
    return Layout(a_steady, steady - a_steady, storm, to_b)


@dataclass
class ClusterPhase:
    result: PhaseResult
    gateway_cpu: dict[str, float] = field(default_factory=dict)


class ClusterBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        self.prefix = f"bench-cluster:{os.getpid()}:{uuid.uuid4().hex[:8]}:"
        secret = base64.urlsafe_b64encode(os.urandom(32)).decode()  # a Fernet key
        env = gateway_env(args.redis_url, self.prefix, secret)
        self.a = Gateway("A", self.tmp, env, args.listen_backlog)
        self.b = Gateway("B", self.tmp, env, args.listen_backlog)
        self.layout = make_layout(args.connections, args.storm, args.storm_to)
        self.steady_a = LoadGenerators()
        self.steady_b = LoadGenerators()
        self.storm_gen = LoadGenerators()
        self.reconnect_gen = LoadGenerators()
        self.redis_pid: int | None = None
        self.run_id = uuid.uuid4().hex[:6]
        self.ids_a: list[list[str]] = []
        self.storm_ids: list[str] = []
        self.results: dict[str, Any] = {}

    @property
    def gateways(self) -> tuple[Gateway, Gateway]:
        return self.a, self.b

    def check(self) -> None:
        for gw in self.gateways:
            gw.check()

    def held(self) -> dict[str, int]:
        counts = established([self.a.port, self.b.port])
        return {"A": counts[self.a.port], "B": counts[self.b.port]}

    def redis_cpu(self) -> float | None:
        if self.redis_pid is None:
            return None
        try:
            return proc_cpu_seconds(self.redis_pid)
        except OSError:
            return None

    # -- start and connect --------------------------------------------------------------

    def start(self) -> None:
        import redis

        try:
            redis.Redis.from_url(self.args.redis_url, socket_timeout=5).ping()
        except redis.RedisError as exc:
            raise BenchError(
                f"no Redis answers at {self.args.redis_url} ({exc}): the processes share it"
            ) from None
        self.redis_pid = find_redis_server_pid()
        for gw in self.gateways:
            gw.start()
        for gw in self.gateways:
            gw.wait_ready()
        time.sleep(0.5)  # let start-up settle (lease acquisition, gc.freeze)
        self.results["listen_backlog"] = {gw.name: listen_backlog(gw.port) for gw in self.gateways}
        lay = self.layout
        print(
            f"gateway A pid {self.a.pid} on {self.a.ws_url}, gateway B pid {self.b.pid} on "
            f"{self.b.ws_url}; Redis {self.args.redis_url} prefix {self.prefix}; temp dir {self.tmp}",
            flush=True,
        )
        print(
            f"chargers: A {lay.a_steady} steady + {lay.storm} storm, B {lay.b_steady} steady; "
            f"the storm reconnects {lay.storm - lay.storm_to_b} to A and {lay.storm_to_b} to B",
            flush=True,
        )
        n = self.args.clients
        self.steady_a.start([self.a.ws_url] * n, answer_calls=True)
        self.steady_b.start([self.b.ws_url] * n, answer_calls=True)
        if lay.storm:
            self.storm_gen.start([self.a.ws_url] * self.args.storm_clients, answer_calls=True)

    def connect(self) -> None:
        args, lay = self.args, self.layout
        rss0 = {gw.name: gw.rss_kib() for gw in self.gateways}
        cpu0 = {gw.name: gw.cpu() for gw in self.gateways}
        both = LoadGenerators(self.steady_a.clients + self.steady_b.clients)
        shares = self.steady_a.split(lay.a_steady) + self.steady_b.split(lay.b_steady)
        ids = [
            [f"bc-{self.run_id}-{'AB'[c >= args.clients]}{c}-{i}" for i in range(share)]
            for c, share in enumerate(shares)
        ]
        self.ids_a = ids[: args.clients]
        t0 = time.monotonic()
        answers = both.ask(
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
        steady_wall = time.monotonic() - t0
        cpu1 = {gw.name: gw.cpu() for gw in self.gateways}
        self.check()
        failures: Counter[str] = Counter()
        for answer in answers:
            failures.update(dict(answer["failures"]))
        self.results["connect"] = {
            "requested": lay.a_steady + lay.b_steady,
            "held": sum(a["held"] for a in answers),
            "failed": sum(a["failed"] for a in answers),
            "failures": failures.most_common(5),
            "seconds": steady_wall,
            "server_cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0},
        }
        # The storm chargers, paced: the baseline of the storm (the same CALLs per charger).
        self.storm_ids = [f"bc-{self.run_id}-S-{i}" for i in range(lay.storm)]
        if lay.storm:
            cpu0 = {gw.name: gw.cpu() for gw in self.gateways}
            redis0 = self.redis_cpu()
            kernel0 = kernel_tcp_counters()
            n = args.storm_clients
            t0 = time.monotonic()
            paced = self.storm_gen.ask(
                "storm",
                [
                    {
                        "ids": self.storm_ids[i::n],
                        "concurrency": args.connect_concurrency,
                        "timeout": args.connect_timeout,
                        "start_at": t0,
                    }
                    for i in range(n)
                ],
                args.connect_timeout + 60,
            )
            self.results["storm_baseline"] = self.storm_figures(
                paced, t0, cpu0, redis0, kernel0, concurrency=args.connect_concurrency
            )
        time.sleep(1.0)  # let the last writes land before sampling memory
        self.check()
        self.results["held_after_connect"] = self.held()
        self.results["rss_kib"] = {
            gw.name: {"before": rss0[gw.name], "after": gw.rss_kib()} for gw in self.gateways
        }

    # -- saturation ---------------------------------------------------------------------

    def phase(self, name: str, active_a: int, active_b: int, duration: float) -> ClusterPhase:
        self.check()
        gens = LoadGenerators(self.steady_a.clients + self.steady_b.clients)
        actives = self.steady_a.split(active_a) + self.steady_b.split(active_b)
        start_at = time.monotonic() + 0.3
        gens.send(
            "phase",
            [
                {
                    "active": a,
                    "rate": 0.0,
                    "duration": duration,
                    "start_at": start_at,
                    "drain": 30.0,
                }
                for a in actives
            ],
        )
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu0 = {gw.name: gw.cpu() for gw in self.gateways}
        redis0 = self.redis_cpu()
        machine0 = machine_busy_seconds()
        t0 = time.monotonic()
        answers = gens.collect("phase", duration + 90)
        cpu1 = {gw.name: gw.cpu() for gw in self.gateways}
        redis1 = self.redis_cpu()
        machine1 = machine_busy_seconds()
        result = PhaseResult(name=name, active=sum(a["active"] for a in answers), target_rate=0)
        for answer in answers:
            result.ok += answer["ok"]
            result.errors += answer["errors"]
            result.lost += answer["lost"]
            result.unexpected += answer["unexpected"]
            result.client_cpu += answer["cpu"]
            result.first_error = result.first_error or answer["first_error"]
        result.window = max(a["last_answer"] for a in answers) - min(a["start"] for a in answers)
        result.wall = time.monotonic() - t0
        gateway_cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
        result.server_cpu = sum(gateway_cpu.values())
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
        self.check()
        return ClusterPhase(result, gateway_cpu)

    def saturation(self) -> None:
        args = self.args
        if args.warmup > 0:
            self.phase("warm-up", args.active // 2, args.active - args.active // 2, args.warmup)
        one = self.phase("one process (A)", args.active, 0, args.duration)
        two = self.phase(
            "two processes (A+B)", args.active // 2, args.active - args.active // 2, args.duration
        )
        self.results["saturation"] = [one, two]

    # -- commands -----------------------------------------------------------------------

    def commands(self) -> None:
        """TriggerMessage through A (holds the charger) and through B, alternately."""
        chargers = [cp for chunk in self.ids_a for cp in chunk]
        if not chargers:
            raise BenchError("no charger on A to command")
        body = json.dumps({"message": "Heartbeat"}).encode()
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        conns = {
            gw.name: http.client.HTTPConnection(HOST, gw.port, timeout=60) for gw in self.gateways
        }
        lat: dict[str, list[float]] = {"local": [], "routed": []}
        statuses: dict[str, Counter[str]] = {"local": Counter(), "routed": Counter()}
        examples: dict[str, str] = {}
        cpu0 = {gw.name: gw.cpu() for gw in self.gateways}
        try:
            for i in range(self.args.commands + 5):  # the first 5 of each: warm-up
                cp_id = chargers[(i * 7919) % len(chargers)]
                for how, gw_name in (("local", "A"), ("routed", "B")):
                    conn = conns[gw_name]
                    t0 = time.perf_counter()
                    conn.request(
                        "POST", f"/admin/chargers/{cp_id}/commands/trigger-message", body, headers
                    )
                    response = conn.getresponse()
                    data = response.read()
                    elapsed = time.perf_counter() - t0
                    if i < 5:
                        continue
                    ok = response.status == 200 and json.loads(data).get("status") == "Accepted"
                    status = str(response.status)
                    if response.status == 200 and not ok:
                        status += " not Accepted"
                    statuses[how][status] += 1
                    if ok:
                        lat[how].append(elapsed)
                    else:
                        examples.setdefault(how, f"{response.status} {data[:200]!r}")
        finally:
            for conn in conns.values():
                conn.close()
        cpu1 = {gw.name: gw.cpu() for gw in self.gateways}
        self.results["commands"] = {
            "lat": {k: sorted(v) for k, v in lat.items()},
            "statuses": {k: dict(v) for k, v in statuses.items()},
            "examples": examples,
            "server_cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0},
        }

    # -- reconnect storm ------------------------------------------------------------------

    def storm_figures(
        self,
        answers: list[dict[str, Any]],
        t0: float,
        cpu0: dict[str, float],
        redis0: float | None,
        kernel0: dict[str, int],
        concurrency: int,
    ) -> dict[str, Any]:
        kernel1 = kernel_tcp_counters()
        cpu1 = {gw.name: gw.cpu() for gw in self.gateways}
        redis1 = self.redis_cpu()
        done: list[float] = []
        errors: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for answer in answers:
            values = array("d")
            values.frombytes(answer["done_at"])
            done.extend(x - t0 for x in values)
            errors.update(answer["errors"])
            for kind, text in answer["examples"].items():
                examples.setdefault(kind, text)
        done.sort()
        return {
            "chargers": len(self.storm_ids),
            "answered": len(done),
            "errors": dict(errors),
            "examples": examples,
            "concurrency": concurrency,
            "all_answered_s": done[-1] if done else None,
            "p50_s": percentile(done, 50),
            "p99_s": percentile(done, 99),
            "server_cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0},
            "redis_cpu_s": None if redis0 is None or redis1 is None else redis1 - redis0,
            "client_cpu_s": sum(a["cpu"] for a in answers),
            "kernel": {k: kernel1[k] - kernel0[k] for k in kernel0},
        }

    def storm(self) -> None:
        args, lay = self.args, self.layout
        if not lay.storm:
            return
        to_a = lay.storm - lay.storm_to_b
        if to_a and lay.storm_to_b:  # --storm-to both: one load generator to each
            targets = [self.a.ws_url, self.b.ws_url]
            chunks = [self.storm_ids[:to_a], self.storm_ids[to_a:]]
        else:
            url = self.b.ws_url if lay.storm_to_b else self.a.ws_url
            targets = [url] * args.storm_clients
            chunks = [self.storm_ids[i :: args.storm_clients] for i in range(args.storm_clients)]
        self.reconnect_gen.start(targets, answer_calls=True)
        # Spawned and idle (imports done) before the drop.
        self.reconnect_gen.ask("status", [None] * len(targets), 60)
        held_before = self.held()
        cpu0 = {gw.name: gw.cpu() for gw in self.gateways}
        redis0 = self.redis_cpu()
        kernel0 = kernel_tcp_counters()
        t0 = time.monotonic()
        self.storm_gen.kill()
        self.reconnect_gen.send(
            "storm",
            [
                {
                    "ids": chunk,
                    "concurrency": args.storm_concurrency,
                    "timeout": args.storm_timeout,
                    "start_at": t0,
                }
                for chunk in chunks
            ],
        )
        answers = self.reconnect_gen.collect("storm", args.storm_timeout + 60)
        figures = self.storm_figures(answers, t0, cpu0, redis0, kernel0, args.storm_concurrency)
        figures["to"] = {"A": to_a, "B": lay.storm_to_b}
        figures["held_before"] = held_before
        time.sleep(1.0)
        self.check()
        figures["held_after"] = self.held()
        self.results["storm"] = figures

    # -- end ------------------------------------------------------------------------------

    def finish(self) -> None:
        held = self.held()
        gens = LoadGenerators(
            self.steady_a.clients + self.steady_b.clients + self.reconnect_gen.clients
        )
        status = gens.ask("status", [None] * len(gens.clients), 30)
        connected: dict[str, int | None] = {}
        for gw in self.gateways:
            try:
                chargers = gw.admin("GET", "/admin/chargers", timeout=180)
                connected[gw.name] = sum(1 for c in chargers if c.get("connected"))
            except (OSError, ValueError) as exc:
                print(f"  (admin API of {gw.name} failed: {exc})", file=sys.stderr)
                connected[gw.name] = None
        self.results["end"] = {
            "held": held,
            "load_generators_hold": sum(a["held"] for a in status),
            "dropped": sum(a["dropped"] for a in status),
            "admin_connected": connected,
            "rss_kib": {gw.name: proc_memory_kib(gw.pid) for gw in self.gateways},
            "log_problems": {gw.name: gw.log_problems() for gw in self.gateways},
        }

    def run(self) -> dict[str, Any]:
        self.start()
        self.connect()
        c = self.results["connect"]
        if not c["held"]:
            raise BenchError(f"no charger could connect: {c['failures']}" + self.a.tail())
        print(f"connected; saturation {self.args.duration:.0f} s per phase", flush=True)
        self.saturation()
        print("commands", flush=True)
        self.commands()
        print("reconnect storm", flush=True)
        self.storm()
        self.finish()
        return self.results

    def cleanup(self) -> None:
        for gens in (self.steady_a, self.steady_b, self.storm_gen, self.reconnect_gen):
            if gens.clients:
                gens.stop()
        for gw in self.gateways:
            gw.stop()
        import redis

        with contextlib.suppress(redis.RedisError):
            r = redis.Redis.from_url(self.args.redis_url, socket_timeout=10)
            keys = list(r.scan_iter(match=self.prefix + "*", count=1000))
            for i in range(0, len(keys), 1000):
                r.delete(*keys[i : i + 1000])
            r.close()
        if self.args.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- report ---------------------------------------------------------------------------------


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def report(
    args: argparse.Namespace, bench: ClusterBench, results: dict[str, Any]
) -> dict[str, Any]:
    lay = bench.layout
    c = results["connect"]
    held = results["held_after_connect"]
    rss = results["rss_kib"]
    end = results["end"]
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    lines = [
        "",
        f"command: {shlex.join([sys.executable, *sys.argv])}",
        f"Cluster benchmark: two gateway processes (A, B) on one Redis, OCPP 1.6J, "
        f"{os.cpu_count()} cores, load generators: {args.clients} per gateway + "
        f"{args.storm_clients if lay.storm else 0} (storm) + "
        f"{(2 if lay.storm_to_b and lay.storm_to_b < lay.storm else args.storm_clients) if lay.storm else 0}"
        " (reconnect)",
        "",
        "connections held (server ends of established TCP connections, /proc/net/tcp)",
        f"  total                         {held['A'] + held['B']} of {args.connections} requested"
        f"  (open-files limit {fd_limit} per process)",
        f"  per process                   A {held['A']}, B {held['B']}",
        f"  steady connect + Boot         {c['held']}/{c['requested']} in {c['seconds']:.1f} s "
        f"({c['held'] / c['seconds']:.0f}/s, {args.connect_concurrency} in flight per load generator)"
        + (f"; {c['failed']} failed: {c['failures']}" if c["failed"] else ""),
    ]
    for name in ("A", "B"):
        per_conn = (
            (rss[name]["after"] - rss[name]["before"]) * 1024 / held[name] if held[name] else None
        )
        lines.append(
            f"  RSS {name}                         {_mib(rss[name]['after'])} "
            f"(before connecting {_mib(rss[name]['before'])}; "
            + ("n/a" if per_conn is None else f"{per_conn / 1000:.1f} kB")
            + " per connection)"
        )
    summary: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "connections_requested": args.connections,
        "connections_held": held["A"] + held["B"],
        "held_per_process": held,
        "rss_kib": rss,
    }

    one, two = results["saturation"]
    lines += [
        "",
        f"saturation: {args.active} active chargers back to back, {args.duration:.0f} s each",
    ]
    sat_summary = {}
    for ph in (one, two):
        r = ph.result
        lat = r.all_lat
        others = r.machine_cpu - r.irq_cpu - r.server_cpu - r.client_cpu - (r.redis_cpu or 0)
        lines += [
            f"  {r.name:<29} {r.rate:>7.0f} msg/s   p50 / p99 {fmt_ms(percentile(lat, 50))} / "
            f"{fmt_ms(percentile(lat, 99))}   (CALLERROR {r.errors}, unanswered {r.lost})",
            "    gateway CPU                 "
            + ", ".join(
                f"{k} {v / r.wall * 100:.0f} % of a core" for k, v in ph.gateway_cpu.items()
            )
            + f"; {fmt_us(r.per_msg_us(r.server_cpu))} per message",
            f"    redis {fmt_us(r.per_msg_us(r.redis_cpu))}, load generators "
            f"{fmt_us(r.per_msg_us(r.client_cpu))}, interrupts {fmt_us(r.per_msg_us(r.irq_cpu))} "
            f"per message; other processes {max(0.0, others) / r.wall * 100:.0f} % of a core"
            + ("  (a busy machine: figures perturbed)" if others > 0.15 * r.wall else ""),
        ]
        if r.first_error:
            lines.append(f"    first CALLERROR: {r.first_error}")
        sat_summary[r.name] = {
            "msgs_per_s": r.rate,
            "p50_ms": (percentile(lat, 50) or 0) * 1000,
            "p99_ms": (percentile(lat, 99) or 0) * 1000,
            "errors": r.errors,
            "unanswered": r.lost,
            "gateway_cpu_percent_of_core": {k: v / r.wall * 100 for k, v in ph.gateway_cpu.items()},
            "other_processes_percent_of_core": max(0.0, others) / r.wall * 100,
        }
    ratio = two.result.rate / one.result.rate if one.result.rate else None
    lines.append(
        "  scaling ratio (two / one)     "
        + ("n/a" if ratio is None else f"{ratio:.2f}")
        + "  (2 cores shared by the gateways, Redis and the load generators)"
    )
    summary["saturation"] = sat_summary
    summary["scaling_ratio"] = ratio

    cmd = results["commands"]
    local, routed = cmd["lat"]["local"], cmd["lat"]["routed"]
    routed_409 = not routed and cmd["statuses"]["routed"].get("409", 0) > 0
    lines += [
        "",
        f"command latency: POST /admin/chargers/{{id}}/commands/trigger-message to chargers held "
        f"by A, {args.commands} each, one at a time",
        f"  local (through A)             p50 / p99 {fmt_ms(percentile(local, 50))} / "
        f"{fmt_ms(percentile(local, 99))}   answers {cmd['statuses']['local']}",
        "  routed (through B, to A)      "
        + (
            "n/a (409)"
            if routed_409
            else f"p50 / p99 {fmt_ms(percentile(routed, 50))} / {fmt_ms(percentile(routed, 99))}"
        )
        + f"   answers {cmd['statuses']['routed']}",
    ]
    for how, text in cmd["examples"].items():
        lines.append(f"    first failure ({how}): {text}")
    summary["commands"] = {
        how: {
            "p50_ms": None if not v else (percentile(v, 50) or 0) * 1000,
            "p99_ms": None if not v else (percentile(v, 99) or 0) * 1000,
            "answers": cmd["statuses"][how],
        }
        for how, v in cmd["lat"].items()
    }

    if "storm" in results:
        st, base = results["storm"], results["storm_baseline"]
        lines += [
            "",
            f"reconnect storm: {st['chargers']} chargers on A dropped at once (load generator "
            f"SIGKILLed), reconnecting at once to A ({st['to']['A']}) and B ({st['to']['B']}); "
            "BootNotification + 2 StatusNotification each",
        ]
        for label, f in (("paced (baseline)", base), ("storm", st)):
            n_err = sum(f["errors"].values())
            inflight = "all at once" if not f["concurrency"] else f"{f['concurrency']} in flight"
            lines.append(
                f"  {label:<29} all answered in {_s(f['all_answered_s'])} ({inflight}); "
                f"{f['answered']}/{f['chargers']} answered, {n_err} errors"
                + (f" {f['errors']}" if n_err else "")
                + f"; per charger p50 {_s(f['p50_s'])}, p99 {_s(f['p99_s'])}"
            )
            lines.append(
                "    CPU                         "
                + ", ".join(f"gateway {k} {v:.1f} s" for k, v in f["server_cpu_s"].items())
                + (f", redis {f['redis_cpu_s']:.1f} s" if f["redis_cpu_s"] is not None else "")
                + f", load generators {f['client_cpu_s']:.1f} s"
            )
            k = f["kernel"]
            lines.append(
                f"    kernel (machine-wide)       {k['ListenOverflows']} connections dropped on a full "
                f"accept queue (ListenOverflows), {k['TCPSynRetrans']} SYN retransmits"
            )
            for kind, text in f["examples"].items():
                lines.append(f"    first {kind}: {text}")
        met = st["answered"] == st["chargers"] and (st["all_answered_s"] or 99) < 15
        lines.append(
            f"  aim: all answered within 15 s, no error: {'met' if met else 'missed'} "
            f"(baseline paced: {_s(base['all_answered_s'])})"
        )
        backlog = results["listen_backlog"]
        somaxconn = Path("/proc/sys/net/core/somaxconn").read_text().strip()
        lines.append(
            f"  listen backlog                A {backlog['A']}, B {backlog['B']} (kernel somaxconn "
            f"{somaxconn})" + (" [--listen-backlog]" if args.listen_backlog else "")
        )
        lines.append(
            f"  held before / after           A {st['held_before']['A']} / {st['held_after']['A']}, "
            f"B {st['held_before']['B']} / {st['held_after']['B']}"
        )
        summary["storm"] = {k: v for k, v in st.items() if k != "examples"} | {"aim_met": met}
        summary["storm_baseline"] = {k: v for k, v in base.items() if k != "examples"}

    lines += [
        "",
        "end",
        f"  held (kernel)                 A {end['held']['A']}, B {end['held']['B']}; load "
        f"generators hold {end['load_generators_hold']} ({end['dropped']} closed by a gateway)",
        f"  connected (admin API)         A says {end['admin_connected']['A']}, "
        f"B says {end['admin_connected']['B']}",
        "  RSS / peak                    "
        + ", ".join(
            f"{k} {_mib(v['VmRSS'])} / {_mib(v['VmHWM'])}" for k, v in end["rss_kib"].items()
        ),
        f"  ERROR lines in the logs       A {end['log_problems']['A']}, B {end['log_problems']['B']}",
    ]
    summary["end"] = end
    print("\n".join(lines), flush=True)
    return summary


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark two gateway processes on one Redis (see the module docstring)."
    )
    parser.add_argument(
        "--connections", type=int, default=30_000, help="chargers in all, storm included (30000)"
    )
    parser.add_argument(
        "--storm", type=int, default=10_000, help="chargers of A in the reconnect storm (10000)"
    )
    parser.add_argument(
        "--storm-to",
        choices=("both", "A", "B"),
        default="both",
        help="where the storm reconnects: half to A and half to B (both), or all to one",
    )
    parser.add_argument(
        "--storm-concurrency",
        type=int,
        default=0,
        help="handshakes in flight in the storm (0: all)",
    )
    parser.add_argument(
        "--storm-timeout", type=float, default=60.0, help="seconds per charger (60)"
    )
    parser.add_argument(
        "--storm-clients", type=int, default=2, help="load generators reconnecting (2)"
    )
    parser.add_argument("--active", type=int, default=1000, help="chargers sending (1000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured saturated seconds")
    parser.add_argument("--commands", type=int, default=300, help="commands each way (300)")
    parser.add_argument(
        "--clients", type=int, default=2, help="load generators per gateway, steady chargers (2)"
    )
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14", help="Redis shared by A and B (db 14)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2,000 chargers (1,000 in the storm), 200 active, 3 s phases",
    )
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=64,
        help="handshakes in flight per load generator",
    )
    parser.add_argument("--connect-timeout", type=float, default=600.0, help="seconds (600)")
    parser.add_argument(
        "--listen-backlog",
        type=int,
        help="run the gateways with this accept queue length (GATEWAY_LISTEN_BACKLOG; the "
        "gateway's default is 4096): --listen-backlog 128 shows the storm with aiohttp's default",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (gateway logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.storm, args.active = 2000, 1000, 200
        args.duration, args.warmup, args.commands = 3.0, 1.0, 50
    if (
        min(args.connections, args.clients, args.active, args.storm_clients) < 1
        or args.duration <= 0
    ):
        parser.error(
            "--connections, --clients, --storm-clients, --active, --duration must be positive"
        )
    if not 0 <= args.storm <= args.connections:
        parser.error("--storm must be between 0 and --connections")
    lay = make_layout(args.connections, args.storm, args.storm_to)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_HEADROOM
    for name, peak in lay.peaks.items():
        if peak > limit:
            parser.error(
                f"gateway {name} would hold {peak} connections at its busiest, over the "
                f"open-files limit ({limit + FD_HEADROOM} per process, {FD_HEADROOM} kept for "
                "its own files): fewer --connections or --storm, or another --storm-to"
            )
    if (
        max(lay.a_steady, lay.b_steady) / args.clients > limit
        or lay.storm / args.storm_clients > limit
    ):
        parser.error(
            "more connections per load generator than the open-files limit: raise --clients"
        )
    if args.active > lay.a_steady or args.active - args.active // 2 > lay.b_steady:
        parser.error(
            f"--active {args.active}: A holds {lay.a_steady} steady chargers, B {lay.b_steady}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = ClusterBench(args)
    # SIGTERM (e.g. a CI timeout) unwinds through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"command: {shlex.join([sys.executable, *sys.argv])}", flush=True)
    try:
        results = bench.run()
        summary = report(args, bench, results)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2, default=str) + "\n")
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
