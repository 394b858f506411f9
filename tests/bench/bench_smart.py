#!/usr/bin/env python
"""Benchmark of site load management (issue 11, section 6): how fast a rebalance reaches
the chargers, what it costs the server, and how fast a demand-response event is applied.

Run from the repository root (not collected by pytest)::

    .venv/bin/python tests/bench/bench_smart.py            # 1,000 chargers on 50 sites
    .venv/bin/python tests/bench/bench_smart.py --quick    # 100 chargers on 5 sites
    .venv/bin/python tests/bench/bench_smart.py --redis    # Redis storage (db 14)

The real gateway (``ocpi-gateway serve``, as ``bench_ocpp.py`` starts it) and the load
generator of ``loadgen.py`` (OCPP 1.6J chargers that answer every CALL Accepted and note
when each SetChargingProfile reached them, on the monotonic clock the coordinator shares).
The chargers are registered (``PUT /admin/chargers/{id}``), put on ``--sites`` sites
(``PUT /admin/sites/{id}``: ``--capacity`` A behind chargers rated ``--rated`` A, policy
``equal``), connected and booted; once every charger holds its initial station maximum:

1. session starts: ``--sessions-per-site`` StartTransactions per site, one at a time,
   round robin over the sites. What each one changes is computed with the gateway's own
   allocator (``gateway.smart.allocator.allocate``, pure); the time is from the
   StartTransaction sent to the last charger whose limit changed having received it
   (p50/p99), with the SetChargingProfile calls per rebalance and the server CPU per
   rebalance (the phase's CPU minus the idle CPU over as long, divided by the starts).
   Baseline: the same chargers sent a SetChargingProfile each by hand, all at once
   (``PUT /admin/chargers/{id}/charging-profiles/{pid}``, a TxDefaultProfile), replayed
   for every start: time to the last one received, and server CPU per replay.
2. demand response, scheduled: ``POST /admin/sites/{id}/limits`` on every site
   (``--dr-limit`` A, from ``--dr-lead`` s ahead for ``--dr-hold`` s); time from the
   limit's start to every affected charger holding its lower limit (per site p50, and the
   last of all sites), and from its end to every one holding its old limit again.
3. demand response, now: the same limit starting now, one request per site, then lifted
   (``DELETE``): time from the first request to the last charger served.
   Baseline of both: the same chargers each sent a SetChargingProfile by hand, all at once.
4. session stops: the sessions end one at a time, measured as the starts.

At the end the live view of every site (``GET /admin/sites/{id}``) is checked against what
the chargers received. Every wait is bounded; the gateway, the load generators, the temp
dir and (``--redis``) the keys are removed at the end, also on error.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_ocpp import Bench as OcppBench
from loadgen import ADMIN_TOKEN, HOST, BenchError, percentile

from gateway.smart.allocator import ChargerLimit, Session, Site, allocate
from gateway.smart.manager import SITE_PROFILE_ID
from gateway.smart.sites import site_from_data

BASELINE_PROFILE_ID = 77  # the hand-sent TxDefaultProfile of the baselines
TOKEN = "BENCHTAG1"


@dataclass
class SiteModel:
    """What the bench expects of one site: its sessions and its chargers' limits."""

    site: Site
    client: int  # the load generator holding its chargers
    chargers: list[str]
    sessions: dict[str, Session] = field(default_factory=dict)
    targets: dict[str, Decimal] = field(default_factory=dict)
    tx_ids: dict[str, int] = field(default_factory=dict)  # session id -> OCPP transactionId

    def allocate(self, capacity: Decimal | None = None) -> dict[str, Decimal]:
        online = {cid: ChargerLimit(online=True) for cid in self.chargers}
        return allocate(self.site, self.sessions.values(), online, capacity).targets

    def changes(
        self, new: dict[str, Decimal], old: dict[str, Decimal] | None = None
    ) -> dict[str, Decimal]:
        old = self.targets if old is None else old
        return {cid: limit for cid, limit in new.items() if old.get(cid) != limit}


@dataclass
class Step:
    """One measured rebalance: a session start or stop."""

    site: str
    changed: int
    sent: float = 0.0
    answered: float = 0.0
    done: float | None = None  # the last affected charger served
    missing: int = 0
    calls: int = 0  # SetChargingProfile calls of the site profile it caused
    chargers: list[str] = field(default_factory=list)  # those whose limit changed

    @property
    def latency(self) -> float | None:
        return None if self.done is None else self.done - self.sent


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"


def _p(values: list[float], q: float) -> float | None:
    value: float | None = percentile(sorted(values), q)
    return value


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SmartBench(OcppBench):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.loop = asyncio.new_event_loop()
        self.session: Any = None
        run = uuid.uuid4().hex[:6]
        per_site = args.chargers // args.sites
        self.models: dict[str, SiteModel] = {}
        for s in range(args.sites):
            site_id = f"site-{run}-{s:02d}"
            chargers = [f"smart-{run}-{s:02d}-{i:02d}" for i in range(per_site)]
            data = self.site_body(chargers)
            self.models[site_id] = SiteModel(
                site_from_data(site_id, data), s % args.clients, chargers
            )
        self.site_of = {cid: sid for sid, m in self.models.items() for cid in m.chargers}
        self.idle_rate = 0.0  # server CPU seconds per second, idle

    def site_body(self, chargers: list[str]) -> dict[str, Any]:
        return {
            "capacity": self.args.capacity,
            "phases": 3,
            "policy": "equal",
            "evses": [
                {"charger_id": cid, "evse_id": 1, "max_current": self.args.rated}
                for cid in chargers
            ],
        }

    # -- HTTP (admin API), on the coordinator's own event loop -----------------------------

    def run_async(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _request(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, Any, float, float]:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=aiohttp.ClientTimeout(total=120),
            )
        sent = time.monotonic()
        async with self.session.request(
            method, f"http://{HOST}:{self.port}/admin{path}", json=body
        ) as response:
            text = await response.text()
        done = time.monotonic()
        return response.status, json.loads(text) if text else None, sent, done

    async def _many(
        self, requests: list[tuple[str, str, Any]], concurrency: int
    ) -> list[tuple[int, Any, float, float]]:
        sem = asyncio.Semaphore(concurrency)

        async def one(method: str, path: str, body: Any) -> tuple[int, Any, float, float]:
            async with sem:
                return await self._request(method, path, body)

        return list(await asyncio.gather(*(one(*r) for r in requests)))

    def http(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 204)
    ) -> Any:
        status, answer, _, _ = self.run_async(self._request(method, path, body))
        if status not in ok:
            raise BenchError(f"{method} {path}: {status} {answer}")
        return answer

    def http_many(
        self, requests: list[tuple[str, str, Any]], concurrency: int = 0
    ) -> list[tuple[int, Any, float, float]]:
        answers = self.run_async(self._many(requests, concurrency or len(requests) or 1))
        bad = [(r, a[:2]) for r, a in zip(requests, answers, strict=True) if a[0] >= 300]
        if bad:
            raise BenchError(f"{len(bad)} admin requests failed, e.g. {bad[0]}")
        return list(answers)

    # -- load generators ----------------------------------------------------------------

    def start_clients(self) -> None:
        self.gens.start([f"ws://{HOST}:{self.port}/ocpp"] * self.args.clients, answer_calls=True)

    def ask_one(self, client: int, cmd: str, arg: Any, timeout: float) -> dict[str, Any]:
        answer: dict[str, Any] = self.gens.subset([client]).ask(cmd, [arg], timeout)[0]
        return answer

    def await_all(
        self, expect: dict[str, tuple[int, Decimal | None]], since: float, timeout: float
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Each charger of ``expect`` holding its (profile id, limit): when it got it."""
        per_client: list[dict[str, list[Any]]] = [{} for _ in range(self.args.clients)]
        for cid, (pid, limit) in expect.items():
            per_client[self.models[self.site_of[cid]].client][cid] = [
                pid,
                None if limit is None else float(limit),
            ]
        answers = self.gens.ask(
            "await_profiles",
            [{"expect": e, "since": since, "timeout": timeout} for e in per_client],
            timeout + 30,
        )
        got: dict[str, float] = {}
        missing: dict[str, Any] = {}
        for a in answers:
            got.update(a["got"])
            missing.update(a["missing"])
        return got, missing

    def site_records(self) -> list[float]:
        """When each charger received the site's profile, all chargers, sorted."""
        times: list[float] = []
        for answer in self.gens.ask("profiles", [None] * self.args.clients, 60):
            for records in answer["profiles"].values():
                times.extend(t for t, pid, _ in records if pid == SITE_PROFILE_ID)
        return sorted(times)

    # -- setup --------------------------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        args = self.args
        out: dict[str, Any] = {}
        self.http("PUT", f"/tokens/{TOKEN}", {"valid": True})
        t0 = time.monotonic()
        self.http_many([("PUT", f"/chargers/{cid}", {}) for cid in self.site_of], 32)
        self.http_many(
            [
                ("PUT", f"/sites/{sid}", self.site_body(m.chargers))
                for sid, m in self.models.items()
            ],
            4,
        )
        out["register_s"] = time.monotonic() - t0
        ids: list[list[str]] = [[] for _ in range(args.clients)]
        for m in self.models.values():
            ids[m.client].extend(m.chargers)
        t0 = time.monotonic()
        answers = self.gens.ask(
            "connect",
            [{"ids": chunk, "concurrency": 32, "timeout": 300} for chunk in ids],
            360,
        )
        failed = sum(a["failed"] for a in answers)
        if failed:
            raise BenchError(f"{failed} chargers did not connect: {answers[0]['failures']}")
        out["connect_s"] = time.monotonic() - t0
        expect: dict[str, tuple[int, Decimal | None]] = {}
        for m in self.models.values():
            m.targets = m.allocate()
            expect.update({cid: (SITE_PROFILE_ID, t) for cid, t in m.targets.items()})
        got, missing = self.await_all(expect, t0, 120)
        if missing:
            raise BenchError(
                f"{len(missing)} chargers without their initial limit within 120 s, e.g. "
                f"{sorted(missing.items())[:3]}" + self.log_tail()
            )
        out["initial_limits_s"] = max(got.values()) - t0
        status = self.gens.ask("status", [None] * args.clients, 30)
        out["calls_before_boot_answer"] = sum(a.get("calls_before_boot", 0) for a in status)
        out["site_profiles_at_boot"] = len(self.site_records())
        return out

    def measure_idle(self, seconds: float) -> dict[str, Any]:
        cpu0, _ = self.cpu()
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu1, _ = self.cpu()
        wall = time.monotonic() - t0
        self.idle_rate = (cpu1 - cpu0) / wall
        return {
            "seconds": wall,
            "server_cpu_s": cpu1 - cpu0,
            "percent_of_core": self.idle_rate * 100,
        }

    # -- sessions -----------------------------------------------------------------------

    def session_order(self) -> list[tuple[str, str]]:
        """(site, charger) of each start: round robin over the sites, spread over each."""
        order = []
        per_site = len(next(iter(self.models.values())).chargers)
        for k in range(self.args.sessions_per_site):
            for sid, m in self.models.items():
                order.append((sid, m.chargers[(k * 7) % per_site]))
        return order

    def rebalances(
        self, kind: str, items: list[tuple[str, str]]
    ) -> tuple[list[Step], float, float]:
        """Start (``kind`` start) or stop a session on each (site, charger), one at a time;
        the steps, the wall time and the server CPU of the phase."""
        steps: list[Step] = []
        cpu0, _ = self.cpu()
        t0 = time.monotonic()
        for n, (sid, cid) in enumerate(items):
            m = self.models[sid]
            now = datetime.now(UTC)
            if kind == "start":
                session = Session(f"{cid}-{n}", cid, 1, now)
                m.sessions[session.id] = session
                payload: dict[str, Any] = {
                    "connectorId": 1,
                    "idTag": TOKEN,
                    "meterStart": 0,
                    "timestamp": _iso(now),
                }
                action = "StartTransaction"
            else:
                session = next(s for s in m.sessions.values() if s.charger_id == cid)
                del m.sessions[session.id]
                payload = {
                    "transactionId": m.tx_ids.pop(session.id),
                    "idTag": TOKEN,
                    "meterStop": 1000,
                    "timestamp": _iso(now),
                }
                action = "StopTransaction"
            new = m.allocate()
            changes = m.changes(new)
            step = Step(sid, len(changes), chargers=sorted(changes))
            answer = self.ask_one(
                m.client,
                "call",
                {
                    "cp_id": cid,
                    "action": action,
                    "payload": payload,
                    "expect": {c: [SITE_PROFILE_ID, float(v)] for c, v in changes.items()},
                    "timeout": self.args.step_timeout,
                },
                self.args.step_timeout + 30,
            )
            if not answer["answer"].startswith("[3,"):
                raise BenchError(f"{action} of {cid} answered {answer['answer'][:200]}")
            if kind == "start":
                m.tx_ids[session.id] = int(json.loads(answer["answer"])[2]["transactionId"])
            step.sent, step.answered = answer["sent"], answer["answered"]
            got: dict[str, float] = answer["got"]
            step.missing = len(answer["missing"])
            if step.missing:
                print(
                    f"  {kind} on {cid}: {step.missing} of {len(changes)} chargers without "
                    f"their new limit within {self.args.step_timeout:.0f} s, e.g. "
                    f"{sorted(answer['missing'].items())[:2]}",
                    file=sys.stderr,
                    flush=True,
                )
            step.done = max(got.values(), default=step.answered) if not step.missing else None
            m.targets = new
            steps.append(step)
            if self.args.gap:
                time.sleep(self.args.gap)
        time.sleep(0.3)  # the last rebalance's answers and stored state
        cpu1, _ = self.cpu()
        wall = time.monotonic() - t0
        records = self.site_records()
        ends = [s.sent for s in steps[1:]] + [time.monotonic()]
        for step, end in zip(steps, ends, strict=True):
            step.calls = bisect.bisect_left(records, end) - bisect.bisect_left(records, step.sent)
        return steps, wall, cpu1 - cpu0

    def baseline_fanout(
        self, groups: list[list[str]], label: int
    ) -> tuple[list[float], list[float], float, float]:
        """Each group of chargers sent a SetChargingProfile each by hand, all at once (the
        admin API), group after group: the time to the last of a group served, the admin
        round trips, the wall time and the server CPU."""
        latencies: list[float] = []
        round_trips: list[float] = []
        cpu0, _ = self.cpu()
        t0 = time.monotonic()
        for n, group in enumerate(groups):
            if not group:
                continue
            limit = Decimal(label + n % 100) / 10 + 6  # a new value each time: matched exactly
            body = {
                "evse_id": 0,
                "purpose": "TxDefaultProfile",
                "kind": "Relative",
                "schedule": {"unit": "A", "periods": [{"start_period": 0, "limit": str(limit)}]},
            }
            since = time.monotonic()
            answers = self.http_many(
                [
                    ("PUT", f"/chargers/{cid}/charging-profiles/{BASELINE_PROFILE_ID}", body)
                    for cid in group
                ]
            )
            got, missing = self.await_all(
                {cid: (BASELINE_PROFILE_ID, limit) for cid in group}, since, self.args.step_timeout
            )
            if missing:
                raise BenchError(f"baseline: {len(missing)} chargers without the profile")
            first = min(a[2] for a in answers)
            latencies.append(max(got.values()) - first)
            round_trips.extend(a[3] - a[2] for a in answers)
            if self.args.gap:
                time.sleep(self.args.gap)
        time.sleep(0.3)
        cpu1, _ = self.cpu()
        return latencies, round_trips, time.monotonic() - t0, cpu1 - cpu0

    # -- demand response ----------------------------------------------------------------

    def dr_expect(
        self, capacity: Decimal | None
    ) -> tuple[dict[str, dict[str, Decimal]], dict[str, tuple[int, Decimal | None]]]:
        """Per site the chargers that change at ``capacity`` (None: the site's own), and
        the flat expectation for await_all; the models take the new targets."""
        per_site: dict[str, dict[str, Decimal]] = {}
        flat: dict[str, tuple[int, Decimal | None]] = {}
        for sid, m in self.models.items():
            new = m.allocate(capacity)
            per_site[sid] = m.changes(new)
            flat.update({cid: (SITE_PROFILE_ID, v) for cid, v in per_site[sid].items()})
            m.targets = new
        return per_site, flat

    def per_site_times(
        self,
        per_site: dict[str, dict[str, Decimal]],
        got: dict[str, float],
        origin: dict[str, float] | float,
    ) -> list[float]:
        out = []
        for sid, changes in per_site.items():
            if changes:
                start = origin if isinstance(origin, float) else origin[sid]
                out.append(max(got[cid] for cid in changes) - start)
        return out

    def demand_response(self) -> dict[str, Any]:
        args = self.args
        cap = Decimal(str(args.dr_limit))
        out: dict[str, Any] = {}
        # Scheduled: starts --dr-lead s ahead, lasts --dr-hold s.
        wall_start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=args.dr_lead + 1)
        wall_end = wall_start + timedelta(seconds=args.dr_hold)
        body = {"start": _iso(wall_start), "end": _iso(wall_end), "limit": str(cap), "unit": "A"}
        posted = self.http_many([("POST", f"/sites/{sid}/limits", body) for sid in self.models])
        offset = time.time() - time.monotonic()
        mono_start = wall_start.timestamp() - offset
        mono_end = wall_end.timestamp() - offset
        per_site, flat = self.dr_expect(cap)
        got, missing = self.await_all(flat, min(a[2] for a in posted), mono_end - time.monotonic())
        if missing:
            raise BenchError(f"demand response: {len(missing)} chargers without their lower limit")
        early = [t for t in got.values() if t < mono_start]
        applied = self.per_site_times(per_site, got, mono_start)
        out["scheduled"] = {
            "chargers": len(flat),
            "post_ms_p50": (_p([a[3] - a[2] for a in posted], 50) or 0) * 1000,
            "post_ms_max": max(a[3] - a[2] for a in posted) * 1000,
            "start_to_all_s": max(applied),
            "start_to_site_s_p50": _p(applied, 50),
            "served_before_start": len(early),
        }
        per_site, flat = self.dr_expect(None)
        got, missing = self.await_all(flat, mono_end - 0.5, mono_end - time.monotonic() + 60)
        if missing:
            raise BenchError(f"demand response end: {len(missing)} chargers not restored")
        lifted = self.per_site_times(per_site, got, mono_end)
        out["scheduled"] |= {"end_to_all_s": max(lifted), "end_to_site_s_p50": _p(lifted, 50)}
        time.sleep(1.0)
        # Now: one request per site, in force at once, then lifted (DELETE).
        body = {
            "start": _iso(datetime.now(UTC) - timedelta(seconds=1)),
            "end": _iso(datetime.now(UTC) + timedelta(hours=1)),
            "limit": str(cap),
            "unit": "A",
        }
        posted = self.http_many([("POST", f"/sites/{sid}/limits", body) for sid in self.models])
        first = min(a[2] for a in posted)
        per_site, flat = self.dr_expect(cap)
        got, missing = self.await_all(flat, first, args.step_timeout * 2)
        if missing:
            raise BenchError(f"demand response now: {len(missing)} chargers without their limit")
        sent_at = {sid: a[2] for sid, a in zip(self.models, posted, strict=True)}
        applied = self.per_site_times(per_site, got, sent_at)
        out["now"] = {
            "chargers": len(flat),
            "post_ms_p50": (_p([a[3] - a[2] for a in posted], 50) or 0) * 1000,
            "post_ms_max": max(a[3] - a[2] for a in posted) * 1000,
            "first_request_to_all_s": max(got.values()) - first,
            "request_to_site_s_p50": _p(applied, 50),
        }
        deleted = self.http_many(
            [
                ("DELETE", f"/sites/{sid}/limits/{a[1]['id']}", None)
                for sid, a in zip(self.models, posted, strict=True)
            ]
        )
        first = min(a[2] for a in deleted)
        per_site, flat = self.dr_expect(None)
        got, missing = self.await_all(flat, first, args.step_timeout * 2)
        if missing:
            raise BenchError(f"demand response lifted: {len(missing)} chargers not restored")
        out["now"]["lift_first_request_to_all_s"] = max(got.values()) - first
        # Baseline: the same chargers, one SetChargingProfile each by hand, all at once.
        groups = [sorted(flat)]
        lat, rtt, _, _ = self.baseline_fanout(groups * 3, 500)
        out["baseline"] = {
            "chargers": len(flat),
            "all_served_s_median_of_3": _p(lat, 50),
            "admin_round_trip_ms_p50": (_p(rtt, 50) or 0) * 1000,
            "admin_round_trip_ms_p99": (_p(rtt, 99) or 0) * 1000,
        }
        return out

    # -- checks -------------------------------------------------------------------------

    def check_views(self) -> dict[str, Any]:
        """Each site's live view against the model and what the chargers last received."""
        last: dict[str, float | None] = {}
        for answer in self.gens.ask("profiles", [None] * self.args.clients, 60):
            for cid, records in answer["profiles"].items():
                site = [r for r in records if r[1] == SITE_PROFILE_ID]
                last[cid] = site[-1][2] if site else None
        answers = self.http_many([("GET", f"/sites/{sid}", None) for sid in self.models], 8)
        problems: Counter[str] = Counter()
        for m, (_, view, _, _) in zip(self.models.values(), answers, strict=True):
            chargers = {c["charger_id"]: c for c in view["allocation"]["chargers"]}
            for cid in m.chargers:
                c = chargers.get(cid, {})
                held = c.get("limit_in_force")
                if held is None or Decimal(str(held)) != m.targets[cid]:
                    problems["view limit_in_force differs from the allocator's target"] += 1
                if (
                    last.get(cid) is None
                    or abs(float(last[cid] or 0) - float(m.targets[cid])) > 0.05
                ):
                    problems["charger's last limit differs from the target"] += 1
                if c.get("pending") is not None:
                    problems["pending"] += 1
        return dict(problems)

    def log_problems(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        try:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if "generated the secret key" in line:  # a fresh data dir, as expected
                    continue
                for level in ("WARNING", "ERROR", "Traceback"):
                    if level in line:
                        counts[level] += 1
        except OSError:
            pass
        return dict(counts)

    # -- the run ------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args = self.args
        self.start_server()
        print(
            f"server pid {self.pid} on ws://{HOST}:{self.port}/ocpp (storage: "
            f"{self.storage_name}); {args.chargers} chargers on {args.sites} sites",
            flush=True,
        )
        self.start_clients()
        results: dict[str, Any] = {"setup": self.setup()}
        s = results["setup"]
        print(
            f"registered in {s['register_s']:.1f} s, connected in {s['connect_s']:.1f} s, every "
            f"initial limit held {s['initial_limits_s']:.1f} s after the first connection",
            flush=True,
        )
        time.sleep(1.0)
        order = self.session_order()
        # Idle over about as long as the session phase will take (at least --idle s).
        results["idle"] = self.measure_idle(args.idle)
        print(f"idle: {results['idle']['percent_of_core']:.1f} % of a core", flush=True)
        steps, wall, cpu = self.rebalances("start", order)
        results["starts"] = (steps, wall, cpu)
        print(f"{len(steps)} session starts in {wall:.1f} s", flush=True)
        results["baseline_starts"] = self.baseline_fanout([st.chargers for st in steps], 0)
        print("baseline replayed", flush=True)
        results["dr"] = self.demand_response()
        print("demand response done", flush=True)
        stop_order = list(reversed(order))
        results["stops"] = self.rebalances("stop", stop_order)
        print(f"{len(stop_order)} session stops done", flush=True)
        results["check"] = self.check_views()
        results["log"] = self.log_problems()
        return results


# -- report ---------------------------------------------------------------------------------


def _steps_summary(steps: list[Step], wall: float, cpu: float, idle_rate: float) -> dict[str, Any]:
    lat = [s.latency for s in steps if s.latency is not None]
    answered = [s.answered - s.sent for s in steps]
    rebalances = [s for s in steps if s.changed]
    net = cpu - idle_rate * wall
    return {
        "count": len(steps),
        "missing_limits": sum(s.missing for s in steps),
        "changed_mean": sum(s.changed for s in steps) / len(steps) if steps else 0,
        "changed_max": max((s.changed for s in steps), default=0),
        "p50_ms": (_p(lat, 50) or 0) * 1000,
        "p99_ms": (_p(lat, 99) or 0) * 1000,
        "max_ms": max(lat, default=0) * 1000,
        "ocpp_answer_p50_ms": (_p(answered, 50) or 0) * 1000,
        "ocpp_answer_p99_ms": (_p(answered, 99) or 0) * 1000,
        "set_profile_calls_mean": sum(s.calls for s in steps) / len(steps) if steps else 0,
        "set_profile_calls_max": max((s.calls for s in steps), default=0),
        "extra_calls": sum(max(0, s.calls - s.changed) for s in steps),
        "seconds": wall,
        "server_cpu_s": cpu,
        "server_cpu_ms_per_rebalance": net / len(rebalances) * 1000 if rebalances else None,
        "server_cpu_ms_per_rebalance_gross": cpu / len(steps) * 1000 if steps else None,
    }


def report(args: argparse.Namespace, bench: SmartBench, results: dict[str, Any]) -> dict[str, Any]:
    setup, idle = results["setup"], results["idle"]
    idle_rate = idle["server_cpu_s"] / idle["seconds"]
    steps, wall, cpu = results["starts"]
    starts = _steps_summary(steps, wall, cpu, idle_rate)
    steps, wall, cpu = results["stops"]
    stops = _steps_summary(steps, wall, cpu, idle_rate)
    b_lat, b_rtt, b_wall, b_cpu = results["baseline_starts"]
    profiles = sum(len(st.chargers) for st in results["starts"][0])
    b_net = b_cpu - idle_rate * b_wall
    baseline: dict[str, Any] = {
        "fanouts": len(b_lat),
        "p50_ms": (_p(b_lat, 50) or 0) * 1000,
        "p99_ms": (_p(b_lat, 99) or 0) * 1000,
        "admin_round_trip_p50_ms": (_p(b_rtt, 50) or 0) * 1000,
        "admin_round_trip_p99_ms": (_p(b_rtt, 99) or 0) * 1000,
        "server_cpu_ms_per_fanout": b_net / len(b_lat) * 1000 if b_lat else None,
        "server_cpu_ms_per_profile": b_net / profiles * 1000 if profiles else None,
    }
    dr = results["dr"]
    per_site = args.chargers // args.sites
    lines = [
        "",
        f"Site load management benchmark: gateway ({bench.storage_name}), OCPP 1.6J, "
        f"{os.cpu_count()} cores; {args.sites} sites x {per_site} chargers ({args.rated} A rated, "
        f"{args.capacity} A per site, policy equal), {args.clients} load generators",
        "",
        "setup",
        f"  PUT chargers + sites            {setup['register_s']:.1f} s",
        f"  connect + BootNotification      {setup['connect_s']:.1f} s",
        f"  every initial limit held        {setup['initial_limits_s']:.1f} s after the first "
        "connection",
        f"  site limits sent while booting  {setup['site_profiles_at_boot']} SetChargingProfile "
        f"for {args.chargers} chargers; {setup['calls_before_boot_answer']} of them before the "
        "charger had the answer to its BootNotification",
        f"  idle server CPU                 {idle['percent_of_core']:.1f} % of a core "
        f"(over {idle['seconds']:.0f} s; subtracted below)",
    ]
    base_cpu = baseline["server_cpu_ms_per_fanout"]
    for name, s in (("session starts", starts), ("session stops", stops)):
        lines += [
            "",
            f"{name}: {s['count']}, one at a time, round robin over the sites "
            f"({s['seconds']:.1f} s)      rebalance       | baseline: the same chargers sent a "
            "SetChargingProfile each by hand, all at once (admin API)",
            f"  chargers whose limit changed    mean {s['changed_mean']:.1f}, max "
            f"{s['changed_max']}",
            f"  {'StartTransaction' if name == 'session starts' else 'StopTransaction '} to the "
            f"last one served p50 / p99   {_ms(s['p50_ms'] / 1000)} / {_ms(s['p99_ms'] / 1000)}"
            f"  | {_ms(baseline['p50_ms'] / 1000)} / {_ms(baseline['p99_ms'] / 1000)}"
            f"  (max {_ms(s['max_ms'] / 1000)})",
            f"  the CALL's own answer p50 / p99 {_ms(s['ocpp_answer_p50_ms'] / 1000)} / "
            f"{_ms(s['ocpp_answer_p99_ms'] / 1000)}  | admin round trip "
            f"{_ms(baseline['admin_round_trip_p50_ms'] / 1000)} / "
            f"{_ms(baseline['admin_round_trip_p99_ms'] / 1000)}",
            f"  SetChargingProfile per rebalance mean {s['set_profile_calls_mean']:.1f}, max "
            f"{s['set_profile_calls_max']} ({s['extra_calls']} beyond the chargers that changed)",
            "  server CPU per rebalance        "
            + (
                "n/a"
                if s["server_cpu_ms_per_rebalance"] is None
                else f"{s['server_cpu_ms_per_rebalance']:.2f} ms (the OCPP CALL included; gross "
                f"{s['server_cpu_ms_per_rebalance_gross']:.2f} ms)"
            )
            + "  | "
            + ("n/a" if base_cpu is None else f"{base_cpu:.2f} ms per fan-out")
            + (
                ""
                if baseline["server_cpu_ms_per_profile"] is None
                else f", {baseline['server_cpu_ms_per_profile']:.2f} ms per profile"
            ),
        ]
        if s["missing_limits"]:
            lines.append(f"  LIMITS NEVER RECEIVED           {s['missing_limits']}")
    sch, now, dbase = dr["scheduled"], dr["now"], dr["baseline"]
    lines += [
        "",
        f"demand response: {args.dr_limit} A on all {args.sites} sites; "
        f"{sch['chargers']} chargers change      | baseline: the same {dbase['chargers']} "
        "chargers sent a SetChargingProfile each by hand, all at once",
        f"  scheduled ({args.dr_lead:.0f} s ahead): start to the last charger of all sites "
        f"{sch['start_to_all_s']:.2f} s (per site p50 {sch['start_to_site_s_p50']:.2f} s)"
        f"  | {dbase['all_served_s_median_of_3']:.2f} s",
        f"  scheduled: its end to the last charger restored       {sch['end_to_all_s']:.2f} s "
        f"(per site p50 {sch['end_to_site_s_p50']:.2f} s)",
        f"  now (one POST per site): first request to the last charger {now['first_request_to_all_s']:.2f} s"
        f" (per site, from its request, p50 {now['request_to_site_s_p50']:.2f} s)"
        f"  | {dbase['all_served_s_median_of_3']:.2f} s",
        f"  lifted (one DELETE per site): first request to the last charger "
        f"{now['lift_first_request_to_all_s']:.2f} s",
        f"  POST /limits round trip, {args.sites} at once: scheduled p50 {sch['post_ms_p50']:.0f} ms "
        f"max {sch['post_ms_max']:.0f} ms; now p50 {now['post_ms_p50']:.0f} ms max "
        f"{now['post_ms_max']:.0f} ms  | admin SetChargingProfile round trip p50 "
        f"{dbase['admin_round_trip_ms_p50']:.0f} ms, p99 {dbase['admin_round_trip_ms_p99']:.0f} ms",
        "  (a scheduled limit is applied at the site manager's next tick: within 1 s of its start)",
        "",
        "check: live views against what the chargers hold  "
        + (", ".join(f"{k}: {v}" for k, v in results["check"].items()) or "all match"),
        "server log: "
        + (", ".join(f"{k} {v}" for k, v in results["log"].items()) or "no warning, no error"),
    ]
    if sch["served_before_start"]:
        lines.append(f"  {sch['served_before_start']} chargers were served before the start")
    print("\n".join(lines), flush=True)
    return {
        "storage": bench.storage_name,
        "chargers": args.chargers,
        "sites": args.sites,
        "setup": setup,
        "idle": idle,
        "session_starts": starts,
        "session_stops": stops,
        "baseline_fanout": baseline,
        "demand_response": dr,
        "check": results["check"],
        "server_log": results["log"],
    }


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark site load management (see the module docstring)."
    )
    parser.add_argument("--chargers", type=int, default=1000, help="chargers (1000)")
    parser.add_argument("--sites", type=int, default=50, help="sites, as many chargers each (50)")
    parser.add_argument("--capacity", type=int, default=100, help="A per phase per site (100)")
    parser.add_argument("--rated", type=int, default=32, help="A per charger (32)")
    parser.add_argument(
        "--sessions-per-site", type=int, default=8, help="sessions started per site (8)"
    )
    parser.add_argument("--dr-limit", type=int, default=50, help="demand response, A (50)")
    parser.add_argument("--dr-lead", type=float, default=3.0, help="seconds ahead (3)")
    parser.add_argument("--dr-hold", type=float, default=15.0, help="seconds it lasts (15)")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between starts (0.05)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU (5)")
    parser.add_argument(
        "--step-timeout", type=float, default=30.0, help="seconds a rebalance may take (30)"
    )
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes (2)")
    parser.add_argument("--redis", action="store_true", help="use Redis storage")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14", help="with --redis (db 14)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 100 chargers on 5 sites, 4 sessions each"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    args = parser.parse_args(argv)
    if args.quick:
        args.chargers, args.sites, args.sessions_per_site = 100, 5, 4
        args.dr_hold, args.idle = 6.0, 2.0
    if args.sites < 1 or args.chargers < args.sites or args.chargers % args.sites:
        parser.error("--chargers must be a positive multiple of --sites")
    if not 1 <= args.sessions_per_site <= args.chargers // args.sites:
        parser.error("--sessions-per-site: 1 to the chargers per site")
    if args.dr_limit >= args.capacity or args.dr_hold < 5:
        parser.error("--dr-limit below --capacity, --dr-hold at least 5 s")
    # What bench_ocpp.Bench reads to start the gateway.
    args.server, args.profile = "gateway", None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = SmartBench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
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
        if bench.session is not None:
            bench.run_async(bench.session.close())
        bench.loop.close()
        bench.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
