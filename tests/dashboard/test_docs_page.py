"""The admin API's documentation page (``GET /admin/docs``, gateway.admin.docs) in a real
browser: it renders every operation of the document under its own Content-Security-Policy
(a blocked script would leave the page empty and log an error), and its "try it" form sends
real requests with the token typed in, in the Authorization header and never in a URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import ADMIN_TOKEN, Gateway, GatewayFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    factory = GatewayFactory(tmp_path_factory.mktemp("docs-page"), "sqlite")
    try:
        yield await factory.start()
    finally:
        await factory.close()


async def test_the_docs_page_renders_the_document_and_tries_requests(
    gw: Gateway, browser: Any, artifacts: Path
) -> None:
    status, doc = await gw.admin("GET", "/openapi.json")
    assert status == 200
    operations = sum(len(item) for item in doc["paths"].values())
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    sent: list[tuple[str, str | None]] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))
    try:
        await page.goto(f"{gw.url}/admin/docs")
        await page.fill("#token", ADMIN_TOKEN)
        await page.click("#signin button")
        await page.wait_for_selector("#ops > details")
        assert await page.locator("#ops > details").count() == operations

        async def try_it(method: str, path: str, fields: dict[str, str], body: str | None) -> str:
            box = page.locator("#ops > details").filter(
                has=page.locator(
                    f"summary:has(span:text-is('{method}')):has(code:text-is('{path}'))"
                )
            )
            assert await box.count() == 1, (method, path)
            await box.locator("summary").first.click()
            for name, value in fields.items():
                await box.locator(f"input[name='{name}']").fill(value)
            if body is not None:
                await box.locator("textarea").fill(body)
            await box.locator(f"button:text-is('Send {method}')").click()
            result = box.locator("pre").last
            await page.wait_for_function(
                "e => e.textContent !== '' && e.textContent !== '...'",
                arg=await result.element_handle(),
            )
            return str(await result.text_content())

        answer = await try_it("PUT", "/tokens/{uid}", {"uid": "DOCS-1"}, '{"parent_id": "FLEET"}')
        assert answer.startswith("201"), answer
        answer = await try_it("GET", "/tokens/{uid}", {"uid": "DOCS-1"}, None)
        assert answer.startswith("200") and '"parent_id": "FLEET"' in answer, answer
        answer = await try_it("GET", "/transactions", {"limit": "0"}, None)
        assert answer.startswith("400") and '"field": "limit"' in answer, answer
        await page.screenshot(path=str(artifacts / "admin-docs.png"))
        print(f"screenshot: {artifacts / 'admin-docs.png'}")
    finally:
        await context.close()
    # The browser logs the 400 asked for above; nothing else (a CSP violation, a script error).
    assert [e for e in errors if "status of 400" not in e] == []
    api_calls = [(url, auth) for url, auth in sent if "/admin/docs" not in url]
    assert len(api_calls) == 4  # the document and the three tries
    assert all(auth == f"Bearer {ADMIN_TOKEN}" for _, auth in api_calls)
    assert all(ADMIN_TOKEN not in url for url, _ in sent)
