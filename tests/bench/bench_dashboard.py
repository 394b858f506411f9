"""The dashboard's first paint with 10,000 chargers registered (issue 12: under a second).

Starts the gateway on SQLite (or Redis with ``--redis``) in this process, registers the
chargers straight into the store, signs in with headless Chromium (the system's, as the
tests do), then loads the chargers page ``--runs`` times and prints, per run, the
browser's first contentful paint and the time until the first page of 50 chargers and the
total count are shown (navigation start to the table filled), with the median.

    .venv/bin/python tests/bench/bench_dashboard.py [--chargers 10000] [--runs 5] [--redis]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.domain.models import Charger
from tests.conftest import ADMIN_TOKEN, GatewayFactory
from tests.dashboard.conftest import CHROMIUM_ARGS, chromium_path


async def main(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright, expect

    with tempfile.TemporaryDirectory() as tmp:
        factory = GatewayFactory(Path(tmp), "redis" if args.redis else "sqlite")
        gw = await factory.start()
        try:
            now = datetime.now(UTC)
            for start in range(0, args.chargers, 500):
                await asyncio.gather(
                    *(
                        gw.store.chargers.put(Charger(id=f"CP{i:06d}", created_at=now))
                        for i in range(start, min(start + 500, args.chargers))
                    )
                )
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=chromium_path(), args=CHROMIUM_ARGS
                )
                page = await browser.new_page()
                await page.goto(f"{gw.url}/dashboard/sign-in")
                await page.fill("#token", ADMIN_TOKEN)
                await page.click("#sign-in")
                await expect(page.locator("#count")).to_have_text(
                    f"{args.chargers:,} chargers".replace(",", "")
                )
                fcp, shown = [], []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    await page.goto(f"{gw.url}/dashboard/#/chargers", wait_until="commit")
                    await page.reload(wait_until="commit")
                    await expect(page.locator("tr[data-charger]")).to_have_count(50)
                    shown.append((time.perf_counter() - t0) * 1000)
                    fcp.append(
                        await page.evaluate(
                            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                        )
                    )
                await browser.close()
        finally:
            await factory.close()
    backend = "redis" if args.redis else "sqlite"
    print(f"{args.chargers} chargers ({backend}), {args.runs} loads of the chargers page:")
    print("  first contentful paint ms: " + " ".join(f"{v:.0f}" for v in fcp))
    print("  first 50 chargers shown ms: " + " ".join(f"{v:.0f}" for v in shown))
    print(
        f"  median: paint {statistics.median(fcp):.0f} ms, table {statistics.median(shown):.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--redis", action="store_true")
    asyncio.run(main(parser.parse_args()))
