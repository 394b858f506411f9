"""Hub benchmark: what routing an OCPI request through the gateway's hub adds.

    .venv/bin/python tests/bench/bench_hub.py [--seconds 3] [--requests 5000] [--concurrency 1 16]
    .venv/bin/python tests/bench/bench_hub.py --redis      # Redis storage (db 14, fresh prefix)
    .venv/bin/python tests/bench/bench_hub.py --py-spy /tmp/hub   # /tmp/hub-get.txt ... (py-spy)
    .venv/bin/python tests/bench/bench_hub.py --cprofile /tmp/hub.pstats   # cProfile, ab's GET

The hub under test is the real product: the gateway (``python -m gateway.cli serve``)
started as its own process on a free loopback port, in a temporary data dir, with its
embedded SQLite storage (or Redis with ``--redis``: a fresh key prefix, deleted
afterwards). Three processes in all (the machine may have only 2 cores):

* the gateway;
* a platforms process serving two real OCPI 2.2.1 platforms, each on its own port with
  its own credentials token, each serving versions, version details, credentials and a
  HubClientInfo Receiver: a CPO (NL*CP1) with a locations Sender whose GET list answers
  a page of 10 locations, about 7.7 kB, with ``X-Total-Count`` and a ``Link`` to the
  next page, and an eMSP (NL*EM1) with a locations Receiver whose PUT answers an empty
  success;
* this load generator.

The platforms and the load generator run on uvloop, as the gateway does. Options:
``--redis`` / ``--redis-url``, ``--keep`` (keep the temp dir with the gateway log).

Setup, as an operator and the platforms would do it: ``POST /admin/partners`` (kind HUB)
for each platform gives a token A and the hub's versions URL; the platform (the load
generator speaking for it) GETs the hub's versions and version details and POSTs its
credentials; the hub calls the platform's versions and details back with the platform's
token and answers the token to use towards the hub. The bench then waits for the hub's
HubClientInfo pushes to be delivered (the outbox empty) before it measures.

Cases, each first checked once (an OCPI status 1000 and the expected data, else the
bench aborts), then run direct and through the hub, one ``--concurrency`` level at a
time, each run bounded by ``--seconds`` and ``--requests`` after a short warm-up:

* GET list: the eMSP (OCPI-from NL*EM1, its hub token) GETs ``{hub}/locations/sender``
  with OCPI-to NL*CP1; direct, the same request straight to the CPO's locations Sender,
  with the CPO's own token (what the hub sends it);
* PUT location: the CPO (OCPI-from NL*CP1, its hub token) PUTs one of 100 locations to
  ``{hub}/locations/receiver/NL/CP1/LOCn`` with OCPI-to NL*EM1; direct, the same request
  straight to the eMSP's locations Receiver.

Through the hub a request pays for the gateway's whole path: its OCPI middleware
(authentication of the token, request ids, routing headers), the activity noting for
the still-alive check, the routing decision over the hub directory and rules, the owner
index lookup of a PUT (open routing learns who owns a pushed location), the
:class:`~ocpi.hub.forward.Forwarder` (a new request to the platform over the gateway's
keep-alive pool, the envelope check of the answer) and the ``Link`` rewrite of a page.
Figures are requests/s and p50/p99 latency, then the latency the hub adds (through minus
direct) and CPU time per request (``/proc/PID/stat``, ``getrusage``) of the gateway (and
its share in the kernel), of the platforms process and of the load generator. Then, with
``ab`` (ApacheBench, a C client that costs far less CPU per request than this Python
one, so that the three processes on 2 cores measure the gateway rather than the load
generator; ``--ab-concurrency``, 16, 0 for none), requests/s direct and through the hub
with the same CPU figures (ab sends one URL: the PUT case always LOC0). A summary prints
the issue's three figures, each beside the direct baseline of the same run and their
ratio: gateway CPU per forward against the receiving platform's CPU per direct request,
requests/s at 16 in flight, p50 at 1 in flight. ``--py-spy PREFIX`` records the gateway
(raw stacks) during the hub runs; ``--cprofile FILE`` runs the gateway under a cProfile
of its event-loop thread, switched on (SIGUSR1) and off and written (SIGUSR2) around ab's
GET through the hub: exact call counts, where py-spy's non-blocking samples lose frames
of the coroutine stacks. Every wait is bounded; the gateway and the platforms
are stopped and the temp dir removed at the end, also on error. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from aiohttp import web
from loadgen import child_pids, proc_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]

HOST = "127.0.0.1"
ADMIN_TOKEN = "bench-hub-admin-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CPO = ("NL", "CP1")
EMSP = ("NL", "EM1")
PUT_LOCATIONS = 100  # the PUT case cycles over LOC0..LOC99


class BenchError(Exception):
    pass


def location(i: int) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CP1",
        "id": f"LOC{i}",
        "publish": True,
        "address": "Stationsplein 1",
        "city": "Amsterdam",
        "country": "NLD",
        "coordinates": {"latitude": "52.378900", "longitude": "4.900100"},
        "time_zone": "Europe/Amsterdam",
        "evses": [
            {
                "uid": f"EVSE{i}-{j}",
                "status": "AVAILABLE",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 32,
                        "last_updated": "2024-01-01T00:00:00Z",
                    }
                ],
                "last_updated": "2024-01-01T00:00:00Z",
            }
            for j in range(2)
        ],
        "last_updated": "2024-01-01T00:00:00Z",
    }


def token_header(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on uvloop when installed (as the gateway does), so that the load
    generator and the platforms cost as little CPU as they can on a small machine."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


# ------------------------------------------------------------------ the platforms


def build_platform(
    role: str, token: str, parties: tuple[str, str], me: dict[str, str]
) -> web.Application:
    """A real OCPI 2.2.1 platform (``role`` CPO or EMSP) accepting ``token``;
    ``me["url"]`` is its base URL, known once it listens."""
    from ocpi.transport import envelope, json_dumps

    accepted = {token_header(token), "Token " + token}
    ok = json_dumps(envelope()).encode()
    page = json_dumps(envelope([location(i) for i in range(10)])).encode()
    module = ("locations", "SENDER" if role == "CPO" else "RECEIVER")

    def answer(data: Any = None, status: int = 200, code: int = 1000) -> web.Response:
        return web.Response(
            body=json_dumps(envelope(data, status_code=code)).encode(),
            status=status,
            content_type="application/json",
        )

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") not in accepted:
            return answer(None, 401, 2001)
        response: web.StreamResponse = await handler(request)
        return response

    async def versions(request: web.Request) -> web.Response:
        return answer([{"version": "2.2.1", "url": f"{me['url']}/ocpi/2.2.1"}])

    async def details(request: web.Request) -> web.Response:
        base = f"{me['url']}/ocpi/2.2.1"
        endpoints = [
            {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials"},
            {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
            {"identifier": "hubclientinfo", "role": "RECEIVER", "url": f"{base}/hubclientinfo"},
            {
                "identifier": module[0],
                "role": module[1],
                "url": f"{base}/{module[0]}/{module[1].lower()}",
            },
        ]
        return answer({"version": "2.2.1", "endpoints": endpoints})

    async def credentials(request: web.Request) -> web.Response:
        return answer(
            {
                "token": token,
                "url": f"{me['url']}/ocpi/versions",
                "roles": [
                    {
                        "role": role,
                        "country_code": parties[0],
                        "party_id": parties[1],
                        "business_details": {"name": f"bench {role}"},
                    }
                ],
            }
        )

    async def get_list(request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", "0"))
        nxt = f"{me['url']}/ocpi/2.2.1/locations/sender?offset={offset + 10}&limit=10"
        return web.Response(
            body=page,
            content_type="application/json",
            headers={"X-Total-Count": "1000", "X-Limit": "10", "Link": f'<{nxt}>; rel="next"'},
        )

    async def get_one(request: web.Request) -> web.Response:
        loc_id = request.match_info["id"]
        if loc_id.startswith("LOC") and loc_id[3:].isdigit():
            return answer(location(int(loc_id[3:])))
        return answer(None, 404, 2003)

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ok, content_type="application/json")

    app = web.Application(middlewares=[auth])
    app.router.add_get("/ocpi/versions", versions)
    app.router.add_get("/ocpi/2.2.1", details)
    app.router.add_get("/ocpi/2.2.1/credentials", credentials)
    app.router.add_put("/ocpi/2.2.1/hubclientinfo/{cc}/{pid}", accept)
    if role == "CPO":
        app.router.add_get("/ocpi/2.2.1/locations/sender", get_list)
        app.router.add_get("/ocpi/2.2.1/locations/sender/{id}", get_one)
    else:
        app.router.add_route("PUT", "/ocpi/2.2.1/locations/receiver/{cc}/{pid}/{tail:.+}", accept)
        app.router.add_route("PATCH", "/ocpi/2.2.1/locations/receiver/{cc}/{pid}/{tail:.+}", accept)
    return app


def serve_platforms(tokens: dict[str, str], urls_out: Any) -> None:
    """The platforms process: the CPO and the eMSP, each on its own port."""

    async def main() -> None:
        urls: dict[str, str] = {}
        for role, party in (("CPO", CPO), ("EMSP", EMSP)):
            me: dict[str, str] = {}
            runner = web.AppRunner(build_platform(role, tokens[role], party, me), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, HOST, 0)
            await site.start()
            me["url"] = urls[role] = f"http://{HOST}:{runner.addresses[0][1]}"
        urls_out.put(urls)
        await asyncio.Event().wait()

    run_loop(main())


# ------------------------------------------------------------------ the gateway


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on processes (``/proc/stat``: neither idle, I/O wait
    nor interrupts, which no process is charged for)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - sum(ticks[3:7])) / CLK_TCK


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` in seconds: in the process itself, and in the kernel
    on its behalf (system calls: socket writes and reads, epoll)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


class Gateway:
    """The gateway as its own process; ``stop`` is safe to call at any point."""

    def __init__(
        self,
        tmp: Path,
        redis_url: str | None,
        extra_env: dict[str, str] | None = None,
        cprofile: str | None = None,
        wrapper: list[str] | None = None,
    ) -> None:
        self.extra_env = extra_env or {}
        self.cprofile = cprofile
        self.wrapper = wrapper or []  # a command the gateway runs under (valgrind)
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = tmp / "gateway.log"
        self.data_dir = tmp / "data"
        self.redis_url = redis_url
        self.redis_prefix = f"bench-hub:{os.getpid()}:{uuid.uuid4().hex[:8]}:"
        self.process: subprocess.Popen[bytes] | None = None
        # A Fernet key (required with Redis): 32 random bytes, url-safe base64; the same
        # for every start on this data (bench_ocpi.py builds the app again in-process).
        self.secret_key = base64.urlsafe_b64encode(os.urandom(32)).decode()

    def environment(self) -> dict[str, str]:
        """The gateway's settings (``GATEWAY_*``), as its process gets them."""
        env = dict(
            GATEWAY_DATA_DIR=str(self.data_dir),
            GATEWAY_HOST=HOST,
            GATEWAY_PORT=str(self.port),
            GATEWAY_PUBLIC_URL=self.url,
            GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
            GATEWAY_LOG_LEVEL="WARNING",
        )
        env.update(self.extra_env)
        if self.redis_url is not None:
            env.update(
                GATEWAY_REDIS_URL=self.redis_url,
                GATEWAY_REDIS_PREFIX=self.redis_prefix,
                GATEWAY_SECRET_KEY=self.secret_key,
            )
        return env

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(self.environment())
        with self.log_path.open("wb") as log:
            command = [sys.executable, "-m", "gateway.cli", "serve"]
            if self.cprofile:
                command = [sys.executable, "-c", _CPROFILED_GATEWAY, self.cprofile]
            self.process = subprocess.Popen(
                self.wrapper + command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait = 600 if self.wrapper else 60  # valgrind starts it 50 times slower
        deadline = time.monotonic() + wait
        while True:
            self.check()
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"the gateway did not listen within {wait} s" + self.log_tail())
            time.sleep(0.1)

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchError(f"the gateway exited with {self.process.returncode}" + self.log_tail())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_lines()[-lines:]
        return "\n--- gateway log (tail) ---\n" + "\n".join(text) if text else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.redis_url is not None:
            import redis

            with contextlib.suppress(redis.RedisError):
                r = redis.Redis.from_url(self.redis_url, socket_timeout=10)
                keys = list(r.scan_iter(match=self.redis_prefix + "*", count=1000))
                for i in range(0, len(keys), 1000):
                    r.delete(*keys[i : i + 1000])
                r.close()


# ------------------------------------------------------------------ setup over HTTP


async def fetch(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any = None,
) -> tuple[int, Any, Any]:
    async with asyncio.timeout(20), session.request(method, url, headers=headers, json=body) as r:
        raw = await r.read()
        try:
            parsed = await r.json(content_type=None) if raw else None
        except ValueError:
            parsed = raw[:300]
        return r.status, r.headers, parsed


async def register(
    session: aiohttp.ClientSession,
    gateway: str,
    role: str,
    party: tuple[str, str],
    platform_url: str,
    platform_token: str,
) -> tuple[str, dict[tuple[str, str], str]]:
    """The operator creates a hub partner; the platform registers with its token A.
    Returns the platform's token towards the hub and the hub's endpoints."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, _, partner = await fetch(
        session,
        "POST",
        f"{gateway}/admin/partners",
        admin,
        {"name": f"bench {role}", "kind": "HUB"},
    )
    if status != 201:
        raise BenchError(f"POST /admin/partners: HTTP {status}: {partner}")
    auth = {"Authorization": token_header(partner["token_a"])}
    status, _, versions = await fetch(session, "GET", partner["our_versions_url"], auth)
    if status != 200 or versions.get("status_code") != 1000:
        raise BenchError(f"GET {partner['our_versions_url']}: HTTP {status}: {versions}")
    version_url = next(v["url"] for v in versions["data"] if v["version"] == "2.2.1")
    status, _, details = await fetch(session, "GET", version_url, auth)
    if status != 200 or details.get("status_code") != 1000:
        raise BenchError(f"GET {version_url}: HTTP {status}: {details}")
    endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
    credentials = {
        "token": platform_token,
        "url": f"{platform_url}/ocpi/versions",
        "roles": [
            {
                "role": role,
                "country_code": party[0],
                "party_id": party[1],
                "business_details": {"name": f"bench {role}"},
            }
        ],
    }
    status, _, reply = await fetch(
        session, "POST", endpoints[("credentials", "SENDER")], auth, credentials
    )
    if status != 200 or reply.get("status_code") != 1000:
        raise BenchError(f"credentials handshake of the {role}: HTTP {status}: {reply}")
    if [r["role"] for r in reply["data"]["roles"]] != ["HUB"]:
        raise BenchError(f"the hub answered roles {reply['data']['roles']}")
    return reply["data"]["token"], endpoints


async def settle(session: aiohttp.ClientSession, gateway: str) -> None:
    """Both parties CONNECTED, the HubClientInfo pushes delivered (no pending outbox item)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    _, _, parties = await fetch(session, "GET", f"{gateway}/admin/hub/parties", admin)
    status = {p["party"]: p["status"] for p in parties}
    for party in (CPO, EMSP):
        if status.get("*".join(party)) != "CONNECTED":
            raise BenchError(f"hub parties after registration: {status}")
    deadline = time.monotonic() + 15
    while True:
        _, _, pending = await fetch(session, "GET", f"{gateway}/admin/outbox?status=pending", admin)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"outbox items still pending after 15 s: {pending}")
        await asyncio.sleep(0.1)
    _, _, failed = await fetch(session, "GET", f"{gateway}/admin/outbox?status=failed", admin)
    if failed:
        raise BenchError(f"outbox items failed: {failed}")


# ------------------------------------------------------------------ load


async def run(
    session: aiohttp.ClientSession,
    method: str,
    items: list[tuple[str, bytes | None]],
    headers: dict[str, str],
    *,
    seconds: float,
    requests: int,
    concurrency: int,
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            url, body = items[sent % len(items)]
            sent += 1
            start = time.perf_counter()
            async with session.request(method, url, headers=headers, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise BenchError(f"{method} {url}: HTTP {response.status}")
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


AB = shutil.which("ab")


async def run_ab(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    seconds: float,
    requests: int,
    concurrency: int,
    tmp: Path,
) -> tuple[float, int]:
    """ApacheBench (a C client: far less CPU per request than this Python one), keep-alive,
    ``concurrency`` in flight: (requests/s, requests answered). Any failure aborts."""
    assert AB is not None
    command = [AB, "-q", "-k", "-c", str(concurrency)]
    command += ["-t", str(max(1, round(seconds))), "-n", str(requests)]  # -n after -t
    for name, value in headers.items():
        if name.lower() != "content-type":
            command += ["-H", f"{name}: {value}"]
    if body is not None:
        body_file = tmp / "ab-body.json"
        body_file.write_bytes(body)
        command += ["-u" if method == "PUT" else "-p", str(body_file), "-T", "application/json"]
    command.append(url)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    text = out.decode(errors="replace")

    def figure(label: str) -> str | None:
        found = re.search(rf"^{label}:\s+([0-9.]+)", text, re.M)
        return found.group(1) if found else None

    complete, failed = figure("Complete requests"), figure("Failed requests")
    rate, non_2xx = figure("Requests per second"), figure("Non-2xx responses")
    if process.returncode != 0 or complete is None or rate is None:
        raise BenchError(f"ab {url}: exit {process.returncode}: {err.decode()[-300:]}{text[-300:]}")
    if failed != "0" or non_2xx not in (None, "0"):
        raise BenchError(f"ab {url}: {failed} failed, {non_2xx} non-2xx of {complete}")
    return float(rate), int(complete)


class Pids:
    """CPU seconds of the gateway, the platforms and the load generator (this process
    and its finished children: ``ab``)."""

    def __init__(self, gateway: int, platforms: int) -> None:
        self.gateway, self.platforms = gateway, platforms

    def cpu(self) -> tuple[float, float, float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
        # proc_cpu_seconds: with the process's children (the gateway's trail writer).
        system = proc_cpu_split(self.gateway)[1]
        return proc_cpu_seconds(self.gateway), proc_cpu_seconds(self.platforms), load, system

    def per_request(
        self, before: tuple[float, float, float, float], requests: int
    ) -> tuple[float, float, float, float]:
        """µs of CPU per request since ``before``: gateway, platforms, load generator,
        and the gateway's share in the kernel (stime, of the first)."""
        after = self.cpu()
        n = max(requests, 1)
        return (
            (after[0] - before[0]) / n * 1e6,
            (after[1] - before[1]) / n * 1e6,
            (after[2] - before[2]) / n * 1e6,
            (after[3] - before[3]) / n * 1e6,
        )


@dataclass(frozen=True, slots=True)
class Measured:
    case: str
    path: str  # direct | hub
    client: str  # python | ab
    concurrency: int
    rate: float
    requests: int
    p50: float  # ms (NaN from ab: whole milliseconds only)
    p99: float
    gateway_us: float
    platforms_us: float
    load_us: float
    gateway_sys_us: float

    def print(self) -> None:
        case = self.case if self.client == "python" else f"{self.case} (ab)"
        latency = (
            f"{self.p50:>7.3f} {self.p99:>7.3f}" if not math.isnan(self.p50) else f"{'':>7} {'':>7}"
        )
        print(
            f"{case:28} {self.concurrency:>4} {self.path:6} {self.rate:>7.0f} {latency}"
            f" {self.requests:>6} {self.gateway_us:>6.0f} {self.gateway_sys_us:>6.0f}"
            f" {self.platforms_us:>7.0f} {self.load_us:>7.0f}"
        )


_FIGURES = (
    "rate",
    "requests",
    "p50",
    "p99",
    "gateway_us",
    "platforms_us",
    "load_us",
    "gateway_sys_us",
)


def summary(results: list[Measured], args: argparse.Namespace) -> None:
    """The issue's three figures, each beside the direct baseline of this run."""

    def find(case: str, path: str, client: str, concurrency: int) -> Measured | None:
        """The figures of that run; with several rounds, the median of each."""
        found = [
            m
            for m in results
            if (m.case, m.path, m.client, m.concurrency) == (case, path, client, concurrency)
        ]
        if not found:
            return None
        return Measured(
            case, path, client, concurrency,
            *(statistics.median(getattr(m, f) for m in found) for f in _FIGURES),
        )  # fmt: skip

    print()
    print("summary: through the hub against direct (the same requests straight to the")
    print("receiving platform, this run); ratio = hub / direct", end="")
    print(f"; medians of {args.rounds} rounds" if args.rounds > 1 else "")
    for case in dict.fromkeys(m.case for m in results):
        print(f"  {case}:")
        for client, concurrency in (("python", 1), ("ab", args.ab_concurrency), ("python", 16)):
            hub = find(case, "hub", client, concurrency)
            direct = find(case, "direct", client, concurrency)
            if hub is None or direct is None:
                continue
            how = f"{concurrency} in flight, {client}"
            print(
                f"    CPU per request ({how}): gateway {hub.gateway_us / 1000:.3f} ms per"
                f" forward (target <= 0.2); the receiving platform {direct.platforms_us / 1000:.3f}"
                f" ms per direct request (ratio {hub.gateway_us / direct.platforms_us:.2f})"
            )
        for client in ("ab", "python"):
            hub = find(case, "hub", client, 16)
            direct = find(case, "direct", client, 16)
            if hub is not None and direct is not None:
                print(
                    f"    req/s at 16 in flight ({client}): hub {hub.rate:,.0f} (target >= 5,000),"
                    f" direct {direct.rate:,.0f} (ratio {hub.rate / direct.rate:.2f})"
                )
                break
        hub, direct = find(case, "hub", "python", 1), find(case, "direct", "python", 1)
        if hub is not None and direct is not None:
            print(
                f"    p50 at 1 in flight: hub {hub.p50:.3f} ms, direct {direct.p50:.3f} ms"
                f" (ratio {hub.p50 / direct.p50:.2f}): added {hub.p50 - direct.p50:.3f} ms"
                " (target <= 0.3)"
            )


_CPROFILED_GATEWAY = """
import cProfile, runpy, signal, sys
output = sys.argv[1]
profile = cProfile.Profile()
def start(*_):
    profile.enable()
def stop(*_):
    profile.disable()
    profile.dump_stats(output)
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
sys.argv = ["gateway.cli", "serve"]
runpy.run_module("gateway.cli", run_name="__main__", alter_sys=True)
"""
"""The gateway with a cProfile of its event-loop thread between SIGUSR1 and SIGUSR2
(``--cprofile``)."""


def start_py_spy(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` (raw collapsed stacks) until :func:`stop_py_spy`."""
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "500",
            "--format",
            "raw",
            "--output",
            output,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # attached
    return spy


def stop_py_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(timeout=10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def routing(frm: tuple[str, str], to: tuple[str, str], token: str) -> dict[str, str]:
    return {
        "Authorization": token_header(token),
        "X-Request-ID": "bench-r",
        "X-Correlation-ID": "bench-c",
        "OCPI-from-country-code": frm[0],
        "OCPI-from-party-id": frm[1],
        "OCPI-to-country-code": to[0],
        "OCPI-to-party-id": to[1],
    }


async def check(
    session: aiohttp.ClientSession,
    what: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    expect: Callable[[Any, Any], str | None],
) -> None:
    """One request that must succeed before anything is measured."""
    async with asyncio.timeout(20), session.request(method, url, headers=headers, data=body) as r:
        raw = await r.read()
        status, received = r.status, r.headers
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    problem = None
    if status != 200 or not isinstance(parsed, dict) or parsed.get("status_code") != 1000:
        problem = f"HTTP {status}, body {raw[:300]!r}"
    else:
        problem = expect(parsed, received)
    if problem:
        raise BenchError(f"{what}: {method} {url}: {problem}")


async def bench(
    gateway: Gateway,
    platforms: dict[str, str],
    tokens: dict[str, str],
    args: argparse.Namespace,
    platforms_pid: int,
    tmp: Path,
) -> None:
    from ocpi.transport import json_dumps

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        emsp_hub_token, hub = await register(
            session, gateway.url, "EMSP", EMSP, platforms["EMSP"], tokens["EMSP"]
        )
        cpo_hub_token, _ = await register(
            session, gateway.url, "CPO", CPO, platforms["CPO"], tokens["CPO"]
        )
        await settle(session, gateway.url)

        hub_sender = hub[("locations", "SENDER")]
        hub_receiver = hub[("locations", "RECEIVER")]
        cpo_sender = f"{platforms['CPO']}/ocpi/2.2.1/locations/sender"
        emsp_receiver = f"{platforms['EMSP']}/ocpi/2.2.1/locations/receiver"
        owner = "/".join(CPO)  # a pushed location's URL names its owner
        get_via_hub = routing(EMSP, CPO, emsp_hub_token)
        get_direct = routing(EMSP, CPO, tokens["CPO"])
        put_via_hub = routing(CPO, EMSP, cpo_hub_token) | {"Content-Type": "application/json"}
        put_direct = routing(CPO, EMSP, tokens["EMSP"]) | {"Content-Type": "application/json"}
        bodies = [json_dumps(location(i)).encode() for i in range(PUT_LOCATIONS)]

        def is_loc1(parsed: Any, _: Any) -> str | None:
            data = parsed.get("data")
            return None if isinstance(data, dict) and data.get("id") == "LOC1" else "not LOC1"

        def is_page(base: str) -> Callable[[Any, Any], str | None]:
            def expect(parsed: Any, headers: Any) -> str | None:
                link = headers.get("Link", "")
                if len(parsed.get("data") or []) != 10 or headers.get("X-Total-Count") != "1000":
                    return "not a page of 10 of 1000 locations"
                if not link.startswith(f"<{base}?offset=10"):
                    return f"Link {link!r} is not below {base}"
                return None

            return expect

        # The forwarded requests really go through, and the direct ones are alike.
        for what, method, url, headers, body, expect in (
            ("GET one via the hub", "GET", f"{hub_sender}/LOC1", get_via_hub, None, is_loc1),
            ("GET one direct", "GET", f"{cpo_sender}/LOC1", get_direct, None, is_loc1),
            ("GET list via the hub", "GET", hub_sender, get_via_hub, None, is_page(hub_sender)),
            ("GET list direct", "GET", cpo_sender, get_direct, None, is_page(cpo_sender)),
            (
                "PUT via the hub",
                "PUT",
                f"{hub_receiver}/{owner}/LOC1",
                put_via_hub,
                bodies[1],
                lambda *_: None,
            ),
            (
                "PUT direct",
                "PUT",
                f"{emsp_receiver}/{owner}/LOC1",
                put_direct,
                bodies[1],
                lambda *_: None,
            ),
        ):
            await check(session, what, method, url, headers, body, expect)

        if args.instructions:
            await count_instructions(
                session, gateway, args.instructions, tmp,
                [(hub_sender, None)], get_via_hub,
                [(f"{hub_receiver}/{owner}/LOC{i}", b) for i, b in enumerate(bodies)], put_via_hub,
            )  # fmt: skip
            return

        Items = list[tuple[str, bytes | None]]
        cases: list[tuple[str, str, Items, dict[str, str], Items, dict[str, str]]] = [
            (
                "GET list (10 locations)",
                "GET",
                [(cpo_sender, None)],
                get_direct,
                [(hub_sender, None)],
                get_via_hub,
            ),
            (
                "PUT location",
                "PUT",
                [(f"{emsp_receiver}/{owner}/LOC{i}", b) for i, b in enumerate(bodies)],
                put_direct,
                [(f"{hub_receiver}/{owner}/LOC{i}", b) for i, b in enumerate(bodies)],
                put_via_hub,
            ),
        ]
        pids = Pids(gateway.pid, platforms_pid)
        print(
            f"{'case':28} {'conc':>4} {'path':6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
            f" {'n':>6} {'gw us':>6} {'gw sys':>6} {'plat us':>7} {'load us':>7}"
        )
        results: list[Measured] = []
        for round_ in range(args.rounds):
            if args.rounds > 1:
                print(f"round {round_ + 1} of {args.rounds}")
            for name, method, direct_items, direct_headers, hub_items, hub_headers in cases:
                for concurrency in args.concurrency:
                    for label, items, headers in (
                        ("direct", direct_items, direct_headers),
                        ("hub", hub_items, hub_headers),
                    ):
                        gateway.check()
                        await run(
                            session,
                            method,
                            items,
                            headers,
                            seconds=0.3,
                            requests=200,
                            concurrency=concurrency,
                        )
                        spy = None
                        if (
                            args.py_spy
                            and not round_
                            and label == "hub"
                            and concurrency == args.concurrency[-1]
                        ):
                            spy = start_py_spy(gateway.pid, f"{args.py_spy}-{method.lower()}.txt")
                        before = pids.cpu()
                        elapsed, lat = await run(
                            session,
                            method,
                            items,
                            headers,
                            seconds=args.seconds,
                            requests=args.requests,
                            concurrency=concurrency,
                        )
                        measured = Measured(
                            name, label, "python", concurrency, len(lat) / elapsed, len(lat),
                            pct(lat, 0.5), pct(lat, 0.99), *pids.per_request(before, len(lat)),
                        )  # fmt: skip
                        stop_py_spy(spy)
                        results.append(measured)
                        measured.print()
                    straight, through = results[-2], results[-1]
                    print(
                        f"{'':28} {'':>4} added: p50 {through.p50 - straight.p50:+.3f} ms,"
                        f" p99 {through.p99 - straight.p99:+.3f} ms;"
                        f" req/s {through.rate / straight.rate:.2f} of direct;"
                        f" gateway CPU {through.gateway_us:.0f} us per forwarded request"
                    )
            if args.ab_concurrency and AB is None:
                print("ab (apache2-utils) not found: no figures from a C client")
            elif args.ab_concurrency:
                for name, method, direct_items, direct_headers, hub_items, hub_headers in cases:
                    for label, items, headers in (
                        ("direct", direct_items, direct_headers),
                        ("hub", hub_items, hub_headers),
                    ):
                        url, body = items[0]
                        gateway.check()
                        await run_ab(
                            method, url, headers, body, seconds=1, requests=500,
                            concurrency=args.ab_concurrency, tmp=tmp,
                        )  # fmt: skip
                        profiled = args.cprofile and not round_ and label == "hub"
                        if profiled and method == args.cprofile_method:
                            os.kill(gateway.pid, signal.SIGUSR1)
                        spy = None
                        if args.py_spy and not round_ and label == "hub":
                            spy = start_py_spy(
                                gateway.pid, f"{args.py_spy}-ab-{method.lower()}.txt"
                            )
                        before = pids.cpu()
                        rate, done = await run_ab(
                            method, url, headers, body, seconds=args.seconds, requests=10**7,
                            concurrency=args.ab_concurrency, tmp=tmp,
                        )  # fmt: skip
                        measured = Measured(
                            name, label, "ab", args.ab_concurrency, rate, done, math.nan, math.nan,
                            *pids.per_request(before, done),
                        )  # fmt: skip
                        stop_py_spy(spy)
                        if profiled and method == args.cprofile_method:
                            os.kill(gateway.pid, signal.SIGUSR2)
                        results.append(measured)
                        measured.print()
        summary(results, args)


def add_gateway_env_option(parser: argparse.ArgumentParser) -> None:
    """``--gateway-env NAME=VALUE ...``: settings for the gateway process (read back by
    :func:`gateway_env`)."""
    parser.add_argument(
        "--gateway-env",
        metavar="NAME=VALUE",
        nargs="+",
        default=[],
        help="settings for the gateway (GATEWAY_TRAIL=false GATEWAY_METRICS=false: without them)",
    )


def gateway_env(args: argparse.Namespace) -> dict[str, str]:
    """The settings ``--gateway-env`` gave, for :class:`Gateway`'s ``extra_env``."""
    return dict(item.split("=", 1) for item in args.gateway_env)


def callgrind_command(out: Path) -> list[str] | None:
    """The command a program runs under to have its instructions counted by valgrind's
    callgrind (its output ``out``, each dump ``out.N``), or None when valgrind or
    ``callgrind_control`` (which dumps a running program's counters) is not installed."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return None
    return [
        "valgrind",
        "--tool=callgrind",
        "--compress-strings=no",  # each dump readable alone by callgrind_annotate
        # The gateway's writer processes (GATEWAY_WRITER_PROCESSES) are counted too:
        # each process its own file, OUT.PID (and OUT.PID.N for each dump).
        "--trace-children=yes",
        f"--callgrind-out-file={out}.%p",
    ]


def count_of_dump(gateway: Gateway, tmp: Path, label: str) -> int:
    """The instructions the gateway (under callgrind, its output in ``tmp``) and its
    child processes (the trail's writer) executed since the last dump: their counters
    dumped now (``callgrind_control --dump``), which also zeroes them."""
    return sum(_dumped(pid, tmp, label) for pid in (gateway.pid, *child_pids(gateway.pid)))


def _dumped(pid: int, tmp: Path, label: str) -> int:
    subprocess.run(
        ["callgrind_control", f"--dump={label}", str(pid)], check=True, capture_output=True
    )
    files = sorted(tmp.glob(f"callgrind.out.{pid}.*"), key=lambda f: f.stat().st_mtime)
    if not files:
        raise BenchError(f"no callgrind dump of process {pid} in {tmp}")
    return callgrind_total(files[-1])


def callgrind_total(path: Path) -> int:
    """The instructions a callgrind output file counts."""
    found = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.M)
    if found is None:
        raise BenchError(f"no instruction count in {path}")
    return int(found.group(1))


async def count_instructions(
    session: aiohttp.ClientSession,
    gateway: Gateway,
    n: int,
    tmp: Path,
    get_items: list[tuple[str, bytes | None]],
    get_headers: dict[str, str],
    put_items: list[tuple[str, bytes | None]],
    put_headers: dict[str, str],
) -> None:
    """``--instructions``: the gateway runs under callgrind, which counts the machine
    instructions it executes (every thread); its counters are dumped (``callgrind_control
    --dump``) after ``n`` GETs through the hub one at a time, after ``n`` PUTs, and after
    an idle spell as long as the GETs took (what the gateway's timers cost meanwhile,
    subtracted). Instructions are not time, but unlike CPU time on a shared machine they
    are the same from run to run (within about 1 %), so a change of a few percent shows."""

    async def phase(
        method: str, items: list[tuple[str, bytes | None]], headers: dict[str, str]
    ) -> float:
        began = time.monotonic()
        for i in range(n):
            url, body = items[i % len(items)]
            async with session.request(method, url, headers=headers, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise BenchError(f"{method} {url} through the hub: HTTP {response.status}")
        return time.monotonic() - began

    count_of_dump(gateway, tmp, "setup")
    get_seconds = await phase("GET", get_items, get_headers)
    get_count = count_of_dump(gateway, tmp, "get")
    put_seconds = await phase("PUT", put_items, put_headers)
    put_count = count_of_dump(gateway, tmp, "put")
    await asyncio.sleep(get_seconds)
    idle_rate = count_of_dump(gateway, tmp, "idle") / get_seconds
    print(
        f"gateway instructions (callgrind, every thread), {n} requests through the hub one at "
        f"a time each, idle cost subtracted ({idle_rate / 1e6:.1f} M instructions/s idle):"
    )
    for case, count, seconds in (
        ("GET list (10 locations)", get_count, get_seconds),
        ("PUT location", put_count, put_seconds),
    ):
        print(f"  {case:28} {(count - idle_rate * seconds) / n:12,.0f} per forward")


def report_log(gateway: Gateway) -> None:
    lines = gateway.log_lines()
    noted = [
        line for line in lines if " WARNING " in line or " ERROR " in line or "Traceback" in line
    ]
    if noted:
        print(f"gateway log: {len(noted)} warning/error lines of {len(lines)}; the first 10:")
        for line in noted[:10]:
            print("  " + line[:300])
    else:
        print(f"gateway log: no warnings or errors ({len(lines)} lines)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measured run")
    parser.add_argument("--requests", type=int, default=5000, help="per measured run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--redis", action="store_true", help="the gateway on Redis storage")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14", help="with --redis (db 14)"
    )
    parser.add_argument(
        "--ab-concurrency",
        type=int,
        default=16,
        help="requests in flight for the ab (ApacheBench) runs; 0: none",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PREFIX",
        help="profile the gateway (py-spy raw stacks) during the hub runs: PREFIX-get.txt and"
        " PREFIX-put.txt at the last --concurrency level, PREFIX-ab-get.txt and"
        " PREFIX-ab-put.txt under ab",
    )
    add_gateway_env_option(parser)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every case this many times in turn; the summary gives the medians",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the gateway, the platforms and the load generators at this niceness (e.g."
        " -10, needs root) so that other work on the machine disturbs the figures less",
    )
    parser.add_argument(
        "--cprofile",
        metavar="FILE",
        help="cProfile the gateway's event-loop thread during ab's GET (or --cprofile-method)"
        " through the hub (pstats FILE; a profiler about doubles the CPU: read shares, not"
        " figures)",
    )
    parser.add_argument(
        "--cprofile-method",
        choices=("GET", "PUT"),
        default="GET",
        help="the case --cprofile profiles: GET list (the default) or PUT location",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="instead of the timed runs: the gateway under valgrind's callgrind, the machine "
        "instructions it executes per forward (N GETs, then N PUTs, one at a time): a figure "
        "that does not move with the machine's load",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (gateway log)")
    args = parser.parse_args()
    if args.redis:
        import redis

        try:
            redis.Redis.from_url(args.redis_url, socket_timeout=5).ping()
        except redis.RedisError as exc:
            print(f"--redis: no Redis answers at {args.redis_url}: {exc}", file=sys.stderr)
            return 2

    if args.nice:
        try:  # inherited by the gateway, the platforms and ab
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as exc:
            print(f"--nice {args.nice}: {exc}", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    extra_env = gateway_env(args)
    wrapper = None
    if args.instructions:
        wrapper = callgrind_command(tmp / "callgrind.out")
        if wrapper is None:
            print(
                "--instructions: valgrind (with callgrind_control) is not installed",
                file=sys.stderr,
            )
            return 2
    gateway = Gateway(
        tmp, args.redis_url if args.redis else None, extra_env, args.cprofile, wrapper
    )
    ctx = multiprocessing.get_context("spawn")
    tokens = {role: f"bench-{role.lower()}-{uuid.uuid4().hex}" for role in ("CPO", "EMSP")}
    urls_out: Any = ctx.Queue()
    platforms = ctx.Process(target=serve_platforms, args=(tokens, urls_out), daemon=True)
    try:
        platforms.start()
        gateway.start()
        try:
            urls = urls_out.get(timeout=30)
        except Exception:
            raise BenchError("the platforms did not start within 30 s") from None
        storage = (
            f"redis {args.redis_url} prefix {gateway.redis_prefix}" if args.redis else "sqlite"
        )
        print(
            f"gateway {gateway.url} (pid {gateway.pid}, {storage}); "
            f"CPO {'*'.join(CPO)} {urls['CPO']}, eMSP {'*'.join(EMSP)} {urls['EMSP']};"
            f" {os.cpu_count()} CPUs"
        )
        ours = (gateway.pid, platforms.pid, os.getpid())
        began, busy0 = time.monotonic(), machine_busy_seconds()
        cpu0 = sum(proc_cpu_seconds(pid) for pid in ours if pid is not None)
        assert platforms.pid is not None
        run_loop(bench(gateway, urls, tokens, args, platforms.pid, tmp))
        gateway.check()
        cpu = sum(proc_cpu_seconds(pid) for pid in ours if pid is not None) - cpu0
        other = machine_busy_seconds() - busy0 - cpu
        elapsed = time.monotonic() - began
        print(
            f"other processes used about {max(other, 0) / elapsed:.0%} of one core meanwhile"
            + (" (busy machine: take the figures with care)" if other > 0.2 * elapsed else "")
        )
        report_log(gateway)
        return 0
    except BenchError as exc:
        print(f"bench_hub: {exc}{gateway.log_tail()}", file=sys.stderr)
        return 1
    finally:
        gateway.stop()
        if platforms.is_alive():
            platforms.terminate()
        platforms.join(5)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
