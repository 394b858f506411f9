"""The dashboard in a real browser (headless Chromium): sign in, a charger appearing and
changing status live, a command and its answer, every page with data, sign out.

The gateway is the real app on a loopback port, the charger the ``ocpp`` library's
charge point over a real WebSocket (tests/sim.py). One gateway and one browser for the
module; the tests run in order and share the signed-in page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from ocpp.v16 import call as call16

from tests.conftest import ADMIN_TOKEN, Gateway, GatewayFactory
from tests.sim import boot, connect

pytestmark = pytest.mark.asyncio(loop_scope="module")

# "within 2 seconds of its BootNotification" (issue 12): a wait with that timeout.
LIVE_TIMEOUT_MS = 2000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    factory = GatewayFactory(tmp_path_factory.mktemp("dashboard"), "sqlite")
    try:
        # Auto-registration: a charger's first boot is what makes it appear.
        yield await factory.start(auto_register=True)
    finally:
        await factory.close()


class Page:
    """The browser page, with what it logged and requested."""

    def __init__(self, page: Any, context: Any) -> None:
        self.page = page
        self.context = context
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.urls.append(r.url))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ui(browser: Any) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield Page(await context.new_page(), context)
    finally:
        await context.close()


async def _shot(ui: Page, artifacts: Path, name: str) -> None:
    path = artifacts / f"dashboard-{name}.png"
    await ui.page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _expect() -> Any:
    from playwright.async_api import expect

    return expect


async def test_sign_in(ui: Page, gw: Gateway, artifacts: Path) -> None:
    expect = _expect()
    page = ui.page
    await page.goto(f"{gw.url}/")
    await expect(page).to_have_url(f"{gw.url}/dashboard/sign-in")
    await page.fill("#token", "not-the-admin-token")
    await page.click("#sign-in")
    await expect(page.locator(".error")).to_have_text("That is not the admin token.")
    await _shot(ui, artifacts, "sign-in")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("#sign-in")
    await expect(page).to_have_url(f"{gw.url}/dashboard/#/chargers")
    await expect(page.locator("#main h1")).to_have_text("Chargers")
    await expect(page.locator("#live")).to_have_text("live")
    [cookie] = [c for c in await ui.context.cookies() if c["name"] == "gw_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["expires"] > 0  # not a browser-session cookie: it has its expiry
    assert "gw_session" not in await page.evaluate("document.cookie")  # HttpOnly
    assert not any(ADMIN_TOKEN in url for url in ui.urls)  # never in a URL


async def test_a_charger_appears_changes_status_and_answers_a_command(
    ui: Page, gw: Gateway, artifacts: Path
) -> None:
    expect = _expect()
    page = ui.page
    await page.goto(f"{gw.url}/dashboard/#/chargers")
    await expect(page.locator("#count")).to_have_text("0 chargers")
    # A marker that a reload would lose: every change below must arrive without one.
    await page.evaluate("window.__sameDocument = true")
    row = page.locator('tr[data-charger="DASH-1"]')
    async with connect(gw.ws_url, "DASH-1", "1.6") as cp:
        await boot(cp, "1.6")
        await expect(row.locator(".c-connected")).to_have_text("online", timeout=LIVE_TIMEOUT_MS)
        await expect(row.locator(".c-version")).to_have_text("1.6")
        await expect(row.locator(".c-model")).to_have_text("Acme S1")
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        )
        await expect(row.locator(".c-connectors")).to_have_text(
            "1/1 Available", timeout=LIVE_TIMEOUT_MS
        )
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
        )
        await expect(row.locator(".c-connectors")).to_have_text(
            "1/1 Charging", timeout=LIVE_TIMEOUT_MS
        )
        assert await page.evaluate("window.__sameDocument") is True
        await _shot(ui, artifacts, "chargers")

        # Search narrows the list.
        await page.fill("#search", "nothing-like-it")
        await expect(page.locator("#count")).to_have_text("0 chargers")
        await page.fill("#search", "dash")
        await expect(page.locator("#count")).to_have_text("1 charger")

        # The charger's page: a command and the charger's answer.
        await row.locator(".c-id a").click()
        await expect(page.locator("#main h1")).to_have_text("Charger DASH-1")
        await page.select_option("#command", "reset")
        await page.fill("#command-body", '{"type": "hard"}')
        await page.click("#send-command")
        answer = page.locator(".command-answer .answer").first
        await expect(answer).to_have_attribute("data-status", "200")
        await expect(answer).to_contain_text("Accepted")
        assert cp.received[-1] == ("Reset", {"type": "Hard"})
        # Live on this page too.
        await cp.call(
            call16.StatusNotification(connector_id=1, error_code="NoError", status="Faulted")
        )
        await expect(page.locator('[data-connector="1/1"] .c-status')).to_have_text(
            "Faulted", timeout=LIVE_TIMEOUT_MS
        )
        # The message trail of the charger (GET /admin/trail), read again after changes.
        trail = page.locator("#charger-trail")
        await expect(trail).to_contain_text("BootNotification")
        await expect(trail).to_contain_text("Reset")
        await _shot(ui, artifacts, "charger")
    # Disconnected: the page says so, and a command gets the API's refusal.
    await expect(page.locator("#charger-info")).to_have_attribute(
        "data-connected", "false", timeout=LIVE_TIMEOUT_MS
    )
    await page.click("#send-command")
    refused = page.locator(".command-answer .answer").first
    await expect(refused).to_have_attribute("data-status", "409")
    assert await page.evaluate("window.__sameDocument") is True


async def test_every_page_shows_its_data(ui: Page, gw: Gateway, artifacts: Path) -> None:
    expect = _expect()
    page = ui.page
    tariff = {
        "currency": "EUR",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": 0.35, "step_size": 1, "vat": 21}]}
        ],
    }
    assert (await gw.admin("PUT", "/tariffs/T-DASH", tariff))[0] == 201
    location = {
        "publish": True,
        "name": "Dash Street",
        "address": "Main 1",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
        "time_zone": "Europe/Amsterdam",
        "connectors": [
            {
                "id": "1",
                "standard": "IEC_62196_T2",
                "format": "SOCKET",
                "power_type": "AC_3_PHASE",
                "max_voltage": 230,
                "max_amperage": 16,
                "tariff_ids": ["T-DASH"],
            }
        ],
    }
    status, body = await gw.admin("PUT", "/locations/LOC-DASH", location)
    assert status == 201, body
    assert (await gw.admin("POST", "/partners", {"name": "Dash eMSP"}))[0] == 201
    status, body = await gw.admin(
        "POST", "/hub/rules", {"action": "deny", "party": "NL*EM1", "counterpart": "BE*CPX"}
    )
    assert status == 201, body
    site = {"capacity": 32, "evses": [{"charger_id": "DASH-1", "evse_id": 1, "max_current": 16}]}
    status, body = await gw.admin("PUT", "/sites/SITE-DASH", site)
    assert status == 201, body

    await page.click('nav a[href="#/sessions"]')
    await expect(page.locator("#main h1")).to_have_text("Sessions and CDRs")
    await expect(page.locator("#transactions")).to_contain_text("active among the latest")
    await page.click('nav a[href="#/catalog"]')
    await expect(page.locator("#locations")).to_contain_text("Dash Street")
    await expect(page.locator("#tariffs")).to_contain_text("ENERGY 0.35")
    await _shot(ui, artifacts, "catalog")
    await page.click('nav a[href="#/roaming"]')
    await expect(page.locator("#partners")).to_contain_text("Dash eMSP")
    await expect(page.locator("#outbox")).to_contain_text("Waiting")
    await page.click('nav a[href="#/hub"]')
    await expect(page.locator("#hub-rules")).to_contain_text("BE*CPX")
    # A rule added from the page, through the admin API with the CSRF token.
    await page.fill("#rule-party", "DE*EM2")
    await page.fill("#rule-counterpart", "NL*CP1")
    await page.click("#rule-add")
    await expect(page.locator("#hub-rules")).to_contain_text("DE*EM2")
    await page.click('nav a[href="#/smart"]')
    await expect(page.locator("#site")).to_contain_text("Site SITE-DASH: live allocation")
    await _shot(ui, artifacts, "smart")
    # No script error and no CSP violation ("Refused to ..."); the browser's own lines about
    # HTTP errors (the 409 above, the trail's 404) are answers the page showed.
    assert [e for e in ui.errors if not e.startswith("Failed to load resource")] == []


async def test_a_report_plot_with_data_and_its_csv(ui: Page, gw: Gateway, artifacts: Path) -> None:
    expect = _expect()
    page = ui.page
    assert (await gw.admin("PUT", "/tokens/TAG-DASH", {"valid": True}))[0] in (200, 201)
    # Yesterday at noon, within the report's range whatever the time of day the test runs
    # (30 minutes before "now" crossed midnight in the first half hour of a day).
    day = datetime.now(UTC).date()
    noon = datetime.combine(day - timedelta(days=1), time(12), UTC)
    start, stop = noon.isoformat(), (noon + timedelta(minutes=25)).isoformat()
    async with connect(gw.ws_url, "DASH-1", "1.6") as cp:
        await boot(cp, "1.6")
        tx = await cp.call(
            call16.StartTransaction(
                connector_id=1, id_tag="TAG-DASH", meter_start=1000, timestamp=start
            )
        )
        await cp.call(
            call16.StopTransaction(
                transaction_id=tx.transaction_id,
                meter_stop=13500,
                timestamp=stop,
                id_tag="TAG-DASH",
            )
        )
    query = f"kind=usage&by=charger&period=day&from={day - timedelta(days=1)}&to={day + timedelta(days=1)}&tz=UTC"
    await page.goto(f"{gw.url}/dashboard/#/reports?{query}")
    await expect(page.locator("#report-rows")).to_contain_text("DASH-1")
    await expect(page.locator("#report-rows")).to_contain_text("12.5")
    plot = page.locator('img[data-metric="energy_kwh"]')
    await expect(plot).to_have_js_property("complete", True)
    assert await plot.evaluate("img => img.naturalWidth") > 0  # the browser drew it
    # The picture has data: a bar of 12.5 kWh for the charger's day.
    svg = await (await page.request.get(f"{gw.url}{await plot.get_attribute('src')}")).text()
    assert 'class="bar"' in svg and "12.5 kWh" in svg
    await _shot(ui, artifacts, "report")
    async with page.expect_download() as info:
        await page.click("#report-csv")
    download = await info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    lines = text.splitlines()
    header = lines[0].split(",")
    # A row per day of the range (``to`` exclusive: yesterday and today); the charge is
    # yesterday's, today's row has none.
    rows = {
        r[header.index("period_start")][:10]: r
        for r in (line.split(",") for line in lines[1:])
        if "DASH-1" in r
    }
    assert sorted(rows) == [(day - timedelta(days=1)).isoformat(), day.isoformat()]
    yesterday, today = rows[(day - timedelta(days=1)).isoformat()], rows[day.isoformat()]
    assert Decimal(yesterday[header.index("energy_kwh")]) == Decimal("12.5")
    assert yesterday[header.index("sessions")] == "1"
    assert Decimal(today[header.index("energy_kwh")]) == 0
    assert today[header.index("sessions")] == "0"


async def test_sign_out(ui: Page, gw: Gateway) -> None:
    expect = _expect()
    page = ui.page
    await page.goto(f"{gw.url}/dashboard/#/chargers")
    await page.click("#sign-out")
    await expect(page).to_have_url(f"{gw.url}/dashboard/sign-in")
    assert [c for c in await ui.context.cookies() if c["name"] == "gw_session"] == []
    await page.goto(f"{gw.url}/dashboard/")
    await expect(page).to_have_url(f"{gw.url}/dashboard/sign-in")
