"""What a charger's status change costs the central system, placed against unplaced.

Run: ``python tests/bench/bench_status.py [--statuses N] [--rounds N] [--in-flight K]``.
Not collected by pytest.

The real gateway app (``gateway.app.build_app``, SQLite in a temp dir, in this process, on
uvloop as ``serve`` runs it) gets, through the admin API, ``--in-flight`` (1) chargers of
two EVSEs each placed at a published location of their own, and as many chargers placed
nowhere (what ``bench_ocpp.py``'s auto-registered chargers are). Then each group's
chargers report ``--statuses`` (1,500) status changes each (Available and Occupied in
turn, EVSE 1), one at a time per charger, ``--in-flight`` chargers at once, straight into
the central system (``CentralSystem.connector_status``, what a StatusNotification's
handler calls after validation): the connector's state is stored, then the event reaches
its consumers, among them the location catalog, which for a placed charger reads its
location, works out the EVSE's OCPI status and stores what it published. No WebSocket and
no JSON: the OCPP side's own cost is ``bench_ocpp.py``'s.

Printed per group and round: CPU per status change (``time.process_time``, every thread of
the process: SQLite's writer and its fsyncs included) and wall time per change. The
unplaced chargers are the baseline of the same run; the ratio placed / unplaced is what a
status change of a charger that roams costs against one that does not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_ocpi import charger_body, location_body

from gateway.domain.models import ConnectorState, ConnectorStatus
from tests.conftest import GatewayFactory


async def _put(gw: Any, path: str, body: dict[str, Any]) -> None:
    status, reply = await gw.admin("PUT", path, body)
    if status not in (200, 201):
        raise SystemExit(f"PUT {path}: HTTP {status}: {reply}")


async def _changes(csms: Any, charger_ids: list[str], count: int) -> None:
    async def one(charger_id: str) -> None:
        for i in range(count):
            status = ConnectorStatus.OCCUPIED if i % 2 == 0 else ConnectorStatus.AVAILABLE
            await csms.connector_status(ConnectorState(charger_id, 1, 1, status, datetime.now(UTC)))

    await asyncio.gather(*(one(c) for c in charger_ids))


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        factory = GatewayFactory(Path(tmp), "sqlite")
        try:
            gw = await factory.start()
            k = args.in_flight
            placed = [f"B{i:04d}-00" for i in range(k)]
            unplaced = [f"U{i:04d}" for i in range(k)]
            for i in range(k):
                await _put(gw, f"/locations/L{i:04d}", location_body(i))
                await _put(gw, f"/chargers/{placed[i]}", charger_body(i, 0))
                await _put(gw, f"/chargers/{unplaced[i]}", {})
            csms = gw.csms
            # Warm-up: statements prepared, the location pages built once.
            await _changes(csms, placed + unplaced, 20)
            figures: dict[str, list[tuple[float, float]]] = {"unplaced": [], "placed": []}
            print(
                f"status changes: {args.statuses} per charger, {k} charger(s) at once, "
                f"SQLite ({tmp})"
            )
            for r in range(args.rounds):
                for name, ids in (("unplaced", unplaced), ("placed", placed)):
                    n = args.statuses * len(ids)
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    await _changes(csms, ids, args.statuses)
                    cpu = (time.process_time() - cpu0) / n * 1e6
                    wall = (time.perf_counter() - wall0) / n * 1e6
                    figures[name].append((cpu, wall))
                    print(
                        f"  round {r + 1} {name:<9} {cpu:6.0f} µs CPU per change, "
                        f"{wall:6.0f} µs wall"
                    )
            cpu_u = statistics.median(c for c, _ in figures["unplaced"])
            cpu_p = statistics.median(c for c, _ in figures["placed"])
            wall_u = statistics.median(w for _, w in figures["unplaced"])
            wall_p = statistics.median(w for _, w in figures["placed"])
            print(
                "summary (medians of the rounds):\n"
                f"  unplaced (baseline)  {cpu_u:6.0f} µs CPU, {wall_u:6.0f} µs wall per change\n"
                f"  placed, published    {cpu_p:6.0f} µs CPU, {wall_p:6.0f} µs wall per change"
                f"  (ratio {cpu_p / cpu_u:.2f} CPU, {wall_p / wall_u:.2f} wall)"
            )
        finally:
            await factory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statuses", type=int, default=1500, help="changes per charger")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--in-flight", type=int, default=1, help="chargers changing at once (one each)"
    )
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args))
    else:
        uvloop.run(run(args))


if __name__ == "__main__":
    main()
