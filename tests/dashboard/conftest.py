"""The dashboard's browser: the system's headless Chromium (Debian package ``chromium``)
driven by playwright through ``executable_path`` (playwright downloads no browser).

One browser per test module. Without Chromium the browser tests are skipped with the
reason locally, and fail in CI (``CI`` set), where ``.ci/run`` installs it.
Screenshots go to ``GATEWAY_TEST_ARTIFACTS`` (a directory) if set, else under the
test session's temporary directory; their paths are printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# As the machine's notes say: no background connections (the network is closed here),
# no sandbox (CI runs as root), no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    explicit = os.environ.get("GATEWAY_TEST_CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the dashboard's browser tests need Chromium in CI: {reason}")
    pytest.skip(f"no browser for the dashboard tests: {reason}")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("GATEWAY_TEST_ARTIFACTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("dashboard-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    if executable is None:
        _unavailable("no chromium on PATH (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
