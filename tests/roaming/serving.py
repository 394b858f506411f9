"""What the test OCPI platforms of tests/roaming share: serving their aiohttp app on
loopback (:class:`Served`), OCPI responses, the Authorization header in either form,
the endpoints an eMSP offers."""

from __future__ import annotations

import base64
from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import web

from ocpi.transport import envelope, json_dumps

# What an eMSP platform offers (module, its interface), credentials included.
EMSP_ENDPOINTS = [
    ("credentials", "SENDER"),
    ("credentials", "RECEIVER"),
    ("locations", "RECEIVER"),
    ("tariffs", "RECEIVER"),
    ("sessions", "RECEIVER"),
    ("cdrs", "RECEIVER"),
    ("tokens", "SENDER"),
    ("commands", "SENDER"),
]


def token_header(token: str, *, encoded: bool = True) -> dict[str, str]:
    """The Authorization header: the token Base64-encoded (2.2 and later), or as it is
    (2.1.1, ``encoded=False``)."""
    value = base64.b64encode(token.encode()).decode() if encoded else token
    return {"Authorization": f"Token {value}"}


def token_of(request: web.Request, *, encoded: bool = True) -> str | None:
    """The token of a request's Authorization header in that form (None: no token, or
    not Base64 where it must be)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Token "):
        return None
    value = header[6:]
    if not encoded:
        return value
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:
        return None


def ocpi_response(
    data: Any = None,
    *,
    http: int = 200,
    code: int = 1000,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OCPI response envelope (``data``, status code and message) as JSON."""
    body = envelope(data, status_code=code, status_message=message)
    return web.Response(
        text=json_dumps(body), status=http, content_type="application/json", headers=headers
    )


def not_found() -> web.Response:
    """What any URL the platform does not serve gets: an HTML 404, not OCPI."""
    return web.Response(status=404, text="<html>no such page</html>", content_type="text/html")


async def serve(app: web.Application, **runner: Any) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on 127.0.0.1 (a free port): its runner (``cleanup()`` stops it) and
    base URL. ``runner``: AppRunner options (``access_log=None``...)."""
    app_runner = web.AppRunner(app, **runner)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    return app_runner, f"http://127.0.0.1:{app_runner.addresses[0][1]}"


class Served:
    """``start()``/``stop()``, and ``async with``, for a test platform (a dataclass with
    ``url`` and ``_runner`` fields) that builds its aiohttp app in ``app()``: served on
    127.0.0.1, ``url`` set to where it listens."""

    url: str
    _runner: web.AppRunner | None
    runner_options: ClassVar[dict[str, Any]] = {}  # AppRunner options

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        self._runner, self.url = await serve(self.app(), **self.runner_options)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
