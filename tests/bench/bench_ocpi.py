"""Benchmark of OCPI serving: an eMSP pulling location pages from the gateway's CPO.

Run: ``python tests/bench/bench_ocpi.py [--redis] [--locations N] [--seconds S]``. Not
collected by pytest.

The real gateway (``python -m gateway.cli serve``, its own process, SQLite or ``--redis``)
gets ``--locations`` (5,000) locations with ``--chargers-per-location`` (2) chargers of two
EVSEs each (10,000 chargers, 20,000 EVSEs), registered through the admin API; an eMSP (a
real OCPI 2.2.1 server, ``tests/roaming/emsp.py``) registers through the credentials
handshake and takes the initial push of every location. Then ``--clients`` (2) load
generator processes GET ``/ocpi/2.2.1/locations?offset=...&limit=10`` with the eMSP's
token, cycling over every page, ``--concurrency`` (16) requests in flight in all, for
``--seconds`` (5), after one pass over every page: requests/s, p50/p99 latency and the
gateway's CPU per request (``/proc/PID/stat``). Then again while ``--churn`` (50) status
changes per second reach the gateway from real OCPP 1.6 chargers (StatusNotification), so
that pages are served while the locations they show change.

Baseline, same run, same load generators: a bare aiohttp server answering every request
with the bytes of one real page (the gateway's answer to offset 0, headers included), which
is the HTTP and JSON-free floor of serving a page.

Load generator (``--client``): ``ab`` (ApacheBench, apache2-utils; the default when it is on
PATH), a C client that costs little CPU, or ``python`` (aiohttp client processes, the
fallback). With ab, ``--clients`` ab processes run at once, ``--concurrency`` requests in
flight in all, keep-alive, each on one fixed page: their offsets are spread evenly over
the pages (``--ab-offsets`` to choose them); the bare server is measured by the same ab
processes with the same URLs.

In one process (``--in-process ROUNDS``, ``tests/bench/inprocess.py``): the gateway process
stopped, its application is built again here on the same data and fed the same request
bytes as a bare application, with no socket, in turn: CPU per request, steadier than end
to end on a shared machine. ``--instructions N`` counts that part's machine instructions
per request under valgrind's callgrind instead (the same from run to run within about
0.5 %); ``--keep`` and ``--reuse DIR`` run it again on kept data (for comparing two trees).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from aiohttp import web
from bench_hub import (
    ADMIN_TOKEN,
    HOST,
    BenchError,
    Gateway,
    add_gateway_env_option,
    callgrind_command,
    callgrind_total,
    fetch,
    free_port,
    gateway_env,
    pct,
    proc_cpu_seconds,
    token_header,
)
from inprocess import Served, compare, serve

from tests.roaming.emsp import EmspPlatform

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PAGE = 10


def location_body(i: int) -> dict[str, Any]:
    return {
        "country_code": "ZZ",
        "party_id": "GWY",
        "publish": True,
        "name": f"Bench location {i}",
        "address": f"Stationsplein {i}",
        "city": "Amsterdam",
        "postal_code": "1012AB",
        "country": "NLD",
        "coordinates": {"latitude": "52.378900", "longitude": "4.900100"},
        "time_zone": "Europe/Amsterdam",
        "connectors": [
            {
                "id": "1",
                "standard": "IEC_62196_T2",
                "format": "SOCKET",
                "power_type": "AC_3_PHASE",
                "max_voltage": 230,
                "max_amperage": 32,
            }
        ],
    }


def charger_body(location: int, charger: int) -> dict[str, Any]:
    cid = f"B{location:04d}-{charger:02d}"
    return {
        "location_id": f"L{location:04d}",
        "evses": [
            {"ocpp_id": e, "evse_uid": f"{cid}-{e}", "evse_id": f"NL*GWY*E{cid}{e}"} for e in (1, 2)
        ],
    }


async def _admin_puts(gateway: str, paths: list[tuple[str, dict[str, Any]]]) -> None:
    queue = list(reversed(paths))

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            path, body = queue.pop()
            status, _, reply = await fetch(session, "PUT", f"{gateway}/admin{path}", ADMIN, body)
            if status not in (200, 201):
                raise BenchError(f"PUT {path}: HTTP {status}: {reply}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(16)))


async def setup(gateway: str, args: argparse.Namespace, emsp: EmspPlatform) -> dict[str, Any]:
    began = time.perf_counter()
    await _admin_puts(
        gateway, [(f"/locations/L{i:04d}", location_body(i)) for i in range(args.locations)]
    )
    await _admin_puts(
        gateway,
        [
            (f"/chargers/B{i:04d}-{c:02d}", charger_body(i, c))
            for i in range(args.locations)
            for c in range(args.chargers_per_location)
        ],
    )
    registered = time.perf_counter() - began
    async with aiohttp.ClientSession() as session:
        status, _, partner = await fetch(
            session, "POST", f"{gateway}/admin/partners", ADMIN, {"name": "bench eMSP"}
        )
        if status != 201:
            raise BenchError(f"POST /admin/partners: HTTP {status}: {partner}")
        began_push = time.perf_counter()
        status, _, reply = await fetch(
            session,
            "POST",
            f"{gateway}/admin/partners/{partner['id']}/register",
            ADMIN,
            {"versions_url": f"{emsp.url}/ocpi/versions", "token": emsp.token_a},
        )
        if status != 200:
            raise BenchError(f"registration: HTTP {status}: {reply}")
        deadline = time.monotonic() + 600
        while True:
            _, _, pending = await fetch(
                session, "GET", f"{gateway}/admin/outbox?status=pending&limit=1", ADMIN
            )
            if not pending:
                break
            if time.monotonic() > deadline:
                raise BenchError("the initial push did not finish in 600 s")
            await asyncio.sleep(0.2)
        pushed = time.perf_counter() - began_push
    assert emsp.cpo_token is not None
    auth = {"Authorization": token_header(emsp.cpo_token)}
    async with aiohttp.ClientSession() as session:
        _, _, versions = await fetch(session, "GET", f"{gateway}/ocpi/versions", auth)
        url = next(v["url"] for v in versions["data"] if v["version"] == "2.2.1")
        _, _, details = await fetch(session, "GET", url, auth)
        endpoint = next(
            e["url"]
            for e in details["data"]["endpoints"]
            if e["identifier"] == "locations" and e["role"] == "SENDER"
        )
        async with session.get(f"{endpoint}?offset=0&limit={PAGE}", headers=auth) as r:
            body = await r.read()
            headers = {
                k: v
                for k, v in r.headers.items()
                if k.lower() in ("content-type", "x-total-count", "x-limit", "link")
            }
            if r.status != 200:
                raise BenchError(f"GET {endpoint}: HTTP {r.status}: {body[:300]!r}")
    page = json.loads(body)
    if page.get("status_code") != 1000 or len(page["data"]) != min(PAGE, args.locations):
        raise BenchError(f"unexpected first page: {body[:300]!r}")
    evses = sum(len(loc.get("evses") or []) for loc in page["data"])
    return {
        "endpoint": endpoint,
        "auth": auth,
        "body": body,
        "headers": headers,
        "registered": registered,
        "pushed": pushed,
        "evses_per_page": evses,
    }


# ------------------------------------------------------------------ the bare baseline


def serve_bytes(port: int, body: bytes, headers: dict[str, str]) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    web.run_app(app, host=HOST, port=port, print=None, handle_signals=True, access_log=None)


# ------------------------------------------------------------------ in one process


def in_process(
    environment: dict[str, str], info: dict[str, Any], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """The stopped gateway's application built again in this process on the same data
    (its ``environment``; ``inprocess``), beside a bare application answering the page's
    bytes; both driven by the same request bytes, in turn (``--in-process-only``: one)."""
    from urllib.parse import urlsplit

    os.environ.update(environment)
    from gateway.app import _event_loop, _on_startup, build_app
    from gateway.settings import Settings

    url = urlsplit(info["endpoint"])
    target = f"{url.path}?offset=0&limit={PAGE}"
    head = [f"GET {target} HTTP/1.1", f"Host: {url.netloc}"]
    head += [f"{name}: {value}" for name, value in info["auth"].items()]
    head += ["User-Agent: ApacheBench/2.3", "Accept: */*", "Connection: Keep-Alive"]
    request = ("\r\n".join(head) + "\r\n\r\n").encode()

    def page_check(answer: bytes) -> None:
        head, _, body = answer.partition(b"\r\n\r\n")
        page = json.loads(body)
        if not head.startswith(b"HTTP/1.1 200") or page.get("status_code") != 1000:
            raise BenchError(f"in-process answer: {answer[:300]!r}")
        if len(page["data"]) != min(PAGE, args.locations):
            raise BenchError(f"in-process page of {len(page['data'])} locations")

    async def bare_answer(_: web.Request) -> web.Response:
        return web.Response(body=info["body"], headers=info["headers"])

    async def main() -> dict[str, dict[str, float]]:
        app = build_app(Settings(), admin_token=ADMIN_TOKEN)
        app.on_startup.append(_on_startup)
        bare = web.Application()
        bare.router.add_get("/{tail:.*}", bare_answer)
        runners = [await serve(bare), await serve(app)]
        apps = [
            Served("bare", runners[0], request, page_check),
            Served("gateway", runners[1], request, page_check),
        ]
        try:
            return await compare(
                [a for a in apps if args.in_process_only in (None, a.name)],
                args.in_process,
                args.concurrency,
                args.in_process_requests or args.in_process_seconds,
                args.in_process_pause,
                args.in_process_profile,
            )
        finally:
            for runner in reversed(runners):
                await runner.cleanup()

    with asyncio.Runner(loop_factory=_event_loop) as runner:
        return runner.run(main())


# ------------------------------------------------------------------ load generators


def client(
    urls: list[str], headers: dict[str, str], concurrency: int, seconds: float, out: Any
) -> None:
    async def main() -> tuple[int, list[float], int]:
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds
        rng = random.Random(os.getpid())
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < deadline:
                    url = urls[rng.randrange(len(urls))]
                    start = time.perf_counter()
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                    latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(latencies), latencies, errors

    out.send(asyncio.run(main()))


def load(
    urls: list[str], headers: dict[str, str], args: argparse.Namespace, server_pid: int
) -> dict[str, float]:
    per_client = max(1, args.concurrency // args.clients)
    pipes = []
    procs = []
    for _ in range(args.clients):
        receive, send = multiprocessing.Pipe(duplex=False)
        proc = multiprocessing.Process(
            target=client, args=(urls, headers, per_client, args.seconds, send)
        )
        pipes.append(receive)
        procs.append(proc)
    cpu_before = proc_cpu_seconds(server_pid)
    began = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [pipe.recv() for pipe in pipes]
    elapsed = time.perf_counter() - began
    cpu = proc_cpu_seconds(server_pid) - cpu_before
    for proc in procs:
        proc.join()
    count = sum(r[0] for r in results)
    latencies = [x for r in results for x in r[1]]
    errors = sum(r[2] for r in results)
    if errors:
        raise BenchError(f"{errors} requests failed")
    return {
        "rps": count / elapsed,
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
        "cpu_ms": cpu / count * 1000,
        "count": count,
    }


def ab_offsets(args: argparse.Namespace, pages: int) -> list[int]:
    """The page offset of each ab process: ``--ab-offsets``, else spread evenly."""
    if args.ab_offsets:
        return [int(x) for x in args.ab_offsets.split(",")]
    return [(pages * i // args.clients) * PAGE for i in range(args.clients)]


def _ab_figures(output: str, csv_path: Path) -> tuple[int, float, float, int]:
    """(completed requests, p50 ms, p99 ms, failures) of one ab run."""

    def field(name: str) -> int:
        found = re.search(rf"^{name}:\s+(\d+)", output, re.MULTILINE)
        return int(found.group(1)) if found else 0

    # "Failed requests" counts answers whose length differs from the first one's too (the
    # envelope's timestamp varies); only exceptions and non-2xx answers are failures.
    failures = field("Non-2xx responses")
    for kind in ("Connect", "Receive", "Exceptions"):
        found = re.search(rf"{kind}: (\d+)", output)
        failures += int(found.group(1)) if found else 0
    percent: dict[int, float] = {}
    for line in csv_path.read_text().splitlines()[1:]:
        pc, ms = line.split(",")
        percent[int(float(pc))] = float(ms)
    return field("Complete requests"), percent.get(50, 0.0), percent.get(99, 0.0), failures


def load_ab(
    urls: list[str], headers: dict[str, str], args: argparse.Namespace, server_pid: int
) -> dict[str, float]:
    """``len(urls)`` ab processes at once (keep-alive, ``--concurrency`` split between
    them), each GETting its URL for ``--seconds``: requests/s over the run, p50/p99 (the
    request-weighted mean of each process's p50, the highest p99) and the server's CPU
    per request."""
    per_process = max(1, args.concurrency // len(urls))
    header_args = [x for name, value in headers.items() for x in ("-H", f"{name}: {value}")]
    with tempfile.TemporaryDirectory(prefix="bench-ocpi-ab-") as scratch:
        csvs = [Path(scratch) / f"ab{i}.csv" for i in range(len(urls))]
        commands = [
            [
                "ab", "-k", "-l", "-q", "-S",
                "-c", str(per_process),
                "-t", str(max(1, round(args.seconds))),
                # After -t (which sets 50,000): enough that the time limit ends the run.
                "-n", str(int(args.seconds * 40_000) + 1000),
                "-e", str(csv), *header_args, url,
            ]
            for url, csv in zip(urls, csvs, strict=True)
        ]  # fmt: skip
        cpu_before = proc_cpu_seconds(server_pid)
        began = time.perf_counter()
        procs = [
            subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for c in commands
        ]
        outputs = [proc.communicate()[0] for proc in procs]
        elapsed = time.perf_counter() - began
        cpu = proc_cpu_seconds(server_pid) - cpu_before
        for proc, output in zip(procs, outputs, strict=True):
            if proc.returncode != 0:
                raise BenchError(f"ab exited with {proc.returncode}: {output[-2000:]}")
        figures = [_ab_figures(o, c) for o, c in zip(outputs, csvs, strict=True)]
    count = sum(f[0] for f in figures)
    failures = sum(f[3] for f in figures)
    if failures or not count:
        raise BenchError(f"{failures} of {count} requests failed: {outputs[0][-2000:]}")
    return {
        "rps": count / elapsed,
        "p50": sum(f[0] * f[1] for f in figures) / count,
        "p99": max(f[2] for f in figures),
        "cpu_ms": cpu / count * 1000,
        "count": count,
    }


async def warm_up(urls: list[str], headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session:
        for url in urls:
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise BenchError(f"GET {url}: HTTP {response.status}")


# ------------------------------------------------------------------ status churn


def churn(ws_url: str, ids: list[str], per_second: float, seconds: float) -> None:
    """Real OCPP 1.6 chargers: each boots, then StatusNotifications go round them,
    ``per_second`` in all, alternating Available and Charging."""

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            sockets = []
            for cid in ids:
                ws = await session.ws_connect(f"{ws_url}/{cid}", protocols=("ocpp1.6",))
                boot = {"chargePointVendor": "bench", "chargePointModel": "churn"}
                await ws.send_str(json.dumps([2, f"b-{cid}", "BootNotification", boot]))
                await ws.receive(timeout=30)
                sockets.append(ws)
            deadline = time.perf_counter() + seconds
            n = 0
            while time.perf_counter() < deadline:
                ws = sockets[n % len(sockets)]
                status = "Charging" if (n // len(sockets)) % 2 == 0 else "Available"
                payload = {
                    "connectorId": 1 + n % 2,
                    "errorCode": "NoError",
                    "status": status,
                }
                await ws.send_str(json.dumps([2, f"s-{n}", "StatusNotification", payload]))
                await ws.receive(timeout=30)
                n += 1
                await asyncio.sleep(1 / per_second)
            for ws in sockets:
                await ws.close()

    asyncio.run(main())


# ------------------------------------------------------------------ main


def end_to_end(gateway: Gateway, info: dict[str, Any], args: argparse.Namespace) -> None:
    """The load generators' runs against the bare server, then the gateway (quiet, then
    with status churn); prints the figures."""
    pages = max(1, args.locations // PAGE)
    urls = [f"{info['endpoint']}?offset={p * PAGE}&limit={PAGE}" for p in range(pages)]
    run_load = load_ab if args.client == "ab" else load
    offsets: list[int] = []
    if args.client == "ab":
        # One fixed page per ab process (ab repeats one URL).
        offsets = ab_offsets(args, pages)
        load_urls = [f"{info['endpoint']}?offset={o}&limit={PAGE}" for o in offsets]
        bare_urls = [
            f"http://{HOST}:{{port}}/ocpi/2.2.1/locations?offset={o}&limit={PAGE}" for o in offsets
        ]
    else:
        load_urls = urls
        bare_urls = [f"http://{HOST}:{{port}}/ocpi/2.2.1/locations?offset=0&limit={PAGE}"]

    port = free_port()
    baseline_proc = multiprocessing.Process(
        target=serve_bytes, args=(port, info["body"], info["headers"])
    )
    baseline_proc.start()
    with contextlib.suppress(Exception):
        for _ in range(100):
            try:
                with __import__("socket").create_connection((HOST, port), 1):
                    break
            except OSError:
                time.sleep(0.05)
    assert baseline_proc.pid is not None
    bare = run_load([u.format(port=port) for u in bare_urls], info["auth"], args, baseline_proc.pid)
    baseline_proc.terminate()
    baseline_proc.join()

    # Every page once (the gateway builds each location the first time it is shown),
    # then the measured runs.
    asyncio.run(warm_up(urls, info["auth"]))
    spy = None
    if args.py_spy:
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(gateway.pid),
                "--duration",
                str(int(args.seconds)),
                "--format",
                "raw",
                "--output",
                args.py_spy,
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    quiet = run_load(load_urls, info["auth"], args, gateway.pid)
    if spy is not None:
        spy.wait(timeout=60)
    churner = None
    if args.churn > 0:
        ids = [f"B{i:04d}-00" for i in range(0, args.locations, max(1, args.locations // 50))]
        ws_url = gateway.url.replace("http://", "ws://") + "/ocpp"
        churner = multiprocessing.Process(
            target=churn, args=(ws_url, ids, args.churn, args.seconds + 8)
        )
        churner.start()
        time.sleep(4)  # connected and booted
    busy = run_load(load_urls, info["auth"], args, gateway.pid) if churner else None
    if churner is not None:
        churner.join()
    gateway.check()

    backend = f"redis {args.redis_url}" if args.redis else "sqlite"
    print(
        f"\nOCPI serving benchmark: gateway ({backend}), {args.locations} locations x "
        f"{args.chargers_per_location} chargers x 2 EVSEs, pages of {PAGE} "
        f"({info['evses_per_page']} EVSEs, {len(info['body'])} bytes); "
        f"{args.clients} load generators ({args.client}"
        + (f", offsets {','.join(str(o) for o in offsets)}" if args.client == "ab" else "")
        + f"), {args.concurrency} requests in flight, "
        f"{args.seconds:g} s each; {os.cpu_count()} cores"
    )
    print(
        f"setup: registered in {info['registered']:.1f} s; "
        f"initial push to the eMSP {info['pushed']:.1f} s"
    )
    print(f"{'':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU/req':>10}")
    rows = [("baseline: bare aiohttp, same bytes", bare), ("gateway GET page", quiet)]
    if busy is not None:
        rows.append((f"gateway GET page, {args.churn:g} status/s", busy))
    for name, r in rows:
        print(f"{name:40} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['cpu_ms']:8.3f} ms")
    print(
        f"gateway / baseline: {quiet['rps'] / bare['rps']:.2f} of the requests/s, "
        f"{quiet['cpu_ms'] / bare['cpu_ms']:.2f}x the CPU per request "
        f"({quiet['cpu_ms'] * 1000:.0f} against {bare['cpu_ms'] * 1000:.0f} µs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=5000)
    parser.add_argument("--chargers-per-location", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--client",
        choices=("ab", "python"),
        default="ab" if shutil.which("ab") else "python",
        help="the load generator: ab (ApacheBench; default when on PATH) or python",
    )
    parser.add_argument(
        "--ab-offsets",
        metavar="N,N",
        help="with ab: the page offset of each ab process (default: spread evenly)",
    )
    parser.add_argument("--churn", type=float, default=50.0, help="status changes per second")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    add_gateway_env_option(parser)
    parser.add_argument(
        "--py-spy", metavar="FILE", help="profile the gateway during the quiet run (raw stacks)"
    )
    parser.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="then, the gateway stopped, its application in this process on the same data "
        "beside a bare one answering the same bytes, ROUNDS rounds each in turn, no sockets "
        "(tests/bench/inprocess.py): CPU per request, steadier than end to end",
    )
    parser.add_argument("--in-process-seconds", type=float, default=2.0, metavar="S")
    parser.add_argument(
        "--in-process-pause",
        type=float,
        default=0.0003,
        metavar="S",
        help="each connection's pause between an answer and its next request "
        "(tests/bench/inprocess.py: why)",
    )
    parser.add_argument(
        "--in-process-profile",
        metavar="PREFIX",
        help="cProfile of one in-process round of each application, not counted: "
        "PREFIX-bare.pstats, PREFIX-gateway.pstats",
    )
    parser.add_argument(
        "--in-process-requests",
        type=int,
        default=0,
        metavar="N",
        help="rounds of N requests instead of --in-process-seconds (for valgrind)",
    )
    parser.add_argument("--in-process-only", choices=("bare", "gateway"))
    parser.add_argument(
        "--reuse",
        metavar="DIR",
        help="the in-process figures only, on the data a run with --keep left in DIR",
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="instead of the timed runs: the in-process figures as machine instructions per "
        "request (valgrind's callgrind; runs of N // 5 and N requests, gateway and bare)",
    )
    parser.add_argument(
        "--no-end-to-end",
        action="store_true",
        help="skip the load generators' runs (with --in-process)",
    )
    args = parser.parse_args()

    if args.reuse:
        # The data of a run kept with --keep: the in-process figures only, no gateway
        # process (for a profiler or valgrind around this one).
        if args.instructions:  # the same data for both sides of a comparison
            count_instructions(Path(args.reuse), args)
            return 0
        saved = json.loads((Path(args.reuse) / "info.json").read_text())
        info = saved["info"] | {"body": saved["info"]["body"].encode("latin-1")}
        print_in_process(in_process(saved["environment"], info, args), args)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-ocpi-"))
    # The churn chargers are the registered ones (no password needed).
    gateway = Gateway(tmp, args.redis_url if args.redis else None, gateway_env(args))
    try:
        gateway.start()
        emsp = EmspPlatform()

        async def prepare() -> dict[str, Any]:
            await emsp.start()
            try:
                return await setup(gateway.url, args, emsp)
            finally:
                await emsp.stop()

        info = asyncio.run(prepare())
        if args.keep or args.instructions:
            saved_info = info | {"body": info["body"].decode("latin-1")}
            (tmp / "info.json").write_text(
                json.dumps({"environment": gateway.environment(), "info": saved_info})
            )
            if args.keep:
                print(f"kept in {tmp} (--reuse {tmp})")
        if args.instructions:
            gateway.stop()
            count_instructions(tmp, args)
            return 0
        if not args.no_end_to_end:
            end_to_end(gateway, info, args)
        if args.in_process:
            gateway.stop()
            print_in_process(in_process(gateway.environment(), info, args), args)
        return 0
    except BenchError as exc:
        print(f"bench_ocpi: {exc}{gateway.log_tail()}", file=sys.stderr)
        return 1
    finally:
        gateway.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def count_instructions(tmp: Path, args: argparse.Namespace) -> None:
    """``--instructions N``: the in-process figures under valgrind's callgrind, which
    counts the machine instructions executed (every thread), for the gateway and the
    bare application, each twice (N // 5 and N requests, every run on a fresh copy of
    the data): the difference over the difference of requests is the instructions per
    request, start-up and warm-up left out. Unlike CPU time on a shared machine, the
    figure is the same from run to run (within about 0.5 %)."""
    if callgrind_command(tmp / "probe") is None:
        raise BenchError("--instructions: valgrind is not installed")
    small, large = max(1, args.instructions // 5), args.instructions
    runs = [(app, n) for app in ("bare", "gateway") for n in (small, large)]

    def start(app: str, n: int) -> tuple[subprocess.Popen[bytes], Path]:
        copy = Path(tempfile.mkdtemp(prefix=f"run-{app}-{n}-", dir=tmp))
        shutil.copytree(tmp / "data", copy / "data")
        saved = json.loads((tmp / "info.json").read_text())
        saved["environment"]["GATEWAY_DATA_DIR"] = str(copy / "data")
        (copy / "info.json").write_text(json.dumps(saved))
        out = copy / "callgrind.out"
        wrapper = callgrind_command(out)
        assert wrapper is not None  # checked above
        command = [
            *wrapper,
            sys.executable, __file__, "--reuse", str(copy), "--in-process", "1",
            "--in-process-requests", str(n), "--in-process-only", app,
            "--concurrency", str(args.concurrency),
            "--in-process-pause", str(args.in_process_pause),
        ]  # fmt: skip
        log = (copy / "log.txt").open("wb")
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), out

    counts: dict[tuple[str, int], int] = {}
    for pair in (runs[:2], runs[2:]):  # two at a time: one per core
        started = [(key, *start(*key)) for key in pair]
        for key, proc, out in started:
            if proc.wait() != 0:
                log = (out.parent / "log.txt").read_text(errors="replace")
                raise BenchError(f"the {key} run under valgrind failed: {log[-2000:]}")
            # The process's file and its children's (the trail's writer process).
            counts[key] = sum(map(callgrind_total, out.parent.glob(f"{out.name}.*")))
            shutil.rmtree(out.parent, ignore_errors=True)
    # Each run answers n requests and a tenth as many first (inprocess.compare's warm-up).
    requests = (large - small) * 1.1
    per = {
        app: (counts[(app, large)] - counts[(app, small)]) / requests for app in ("bare", "gateway")
    }
    print(
        f"\ninstructions per request in one process (callgrind, every thread; {small} and "
        f"{large} requests, {args.concurrency} connections):"
    )
    print(f"  bare aiohttp, same bytes     {per['bare']:12,.0f}")
    print(f"  gateway GET page             {per['gateway']:12,.0f}")
    print(
        f"  gateway / bare: {per['gateway'] / per['bare']:.2f}x; "
        f"the gateway's own: {per['gateway'] - per['bare']:,.0f}"
    )


def print_in_process(figures: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    size = (
        f"{args.in_process_requests} requests"
        if args.in_process_requests
        else f"{args.in_process_seconds:g} s"
    )
    print(
        f"\nin one process, no sockets ({args.in_process} rounds of {size} each in turn, "
        f"{args.concurrency} connections, each pausing {args.in_process_pause * 1000:g} ms "
        "between requests; medians, µs of CPU per request):"
    )
    names = {"bare": "bare aiohttp, same bytes", "gateway": "gateway GET page"}
    for key, f in figures.items():
        print(
            f"  {names[key]:28} process {f['cpu_us']:7.1f} ({f['cpu_min']:.1f} to "
            f"{f['cpu_max']:.1f})   event-loop thread {f['loop_us']:7.1f}"
        )
    if len(figures) == 2:
        bare, gw = figures["bare"], figures["gateway"]
        print(
            f"  gateway / bare: {gw['cpu_us'] / bare['cpu_us']:.2f}x the CPU per request; "
            f"the gateway's own: {gw['cpu_us'] - bare['cpu_us']:.1f} µs"
        )


if __name__ == "__main__":
    raise SystemExit(main())
