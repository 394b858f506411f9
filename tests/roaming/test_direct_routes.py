"""The OCPI URL spaces' routes are also on the root router (``mount_ocpi_app``): a
request one of them takes is resolved once, by the root, and runs the OCPI middleware
as part of its handler; whatever they do not take (an unknown path, a method the path
does not allow, HEAD) goes on to the mounted application, which answers as before (its
404 and 405 are OCPI envelopes, the token checked first: tests/roaming/
test_ocpi_bad_input.py, tests/test_unrouted.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.app import build_app
from gateway.roaming.server import (
    DIRECT,
    build_ocpi_app,
    credentials_endpoints,
    mount_ocpi_app,
)
from gateway.settings import Settings
from ocpi.server import is_configuration_module


def _mounted(app: web.Application) -> dict[str, web.Application]:
    found = {}
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info and str(info.get("prefix", "")).startswith("/ocpi"):
            found[info["prefix"]] = info["app"]
    return found


def _concrete(template: str) -> str:
    # One value per path parameter, whatever its pattern ({tail:.*} too).
    return re.sub(r"\{[^}]*\}", "x1", template)


async def test_each_route_of_an_ocpi_space_is_resolved_by_the_root(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path), admin_token="t" * 32)
    mounted = _mounted(app)
    assert set(mounted) == {"/ocpi", "/ocpi/hub"}
    checked = marked = 0
    for prefix, sub in mounted.items():
        direct = sub[DIRECT]
        assert direct.mount == prefix
        for method, path, handler in direct.routes:
            concrete = _concrete(prefix + path)
            request = make_mocked_request("POST" if method == "*" else method, concrete)
            match = await app.router.resolve(request)
            # Resolved by the root: no application added on the way (a sub-application's
            # resource adds its own), and the same handler behind the middleware.
            assert match.http_exception is None, (method, concrete)
            assert match.apps == (), (method, concrete)
            assert match.handler.__wrapped__ is handler  # type: ignore[attr-defined]
            # The handler's marks stay readable through the wrapper: the versions,
            # version details and credentials are configuration modules (no routing
            # headers), the others not.
            request._match_info = match
            configuration = path.rstrip("/").count("/") == 1 or "credentials" in path
            if prefix == "/ocpi/hub" and path.endswith("/hubclientinfo"):
                configuration = True
            assert is_configuration_module(request) == configuration, (method, concrete)
            marked += configuration
            checked += 1
    assert checked > 50 and 10 < marked < checked


async def test_what_the_root_does_not_take_goes_to_the_ocpi_space(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path), admin_token="t" * 32)
    sub = _mounted(app)["/ocpi"]
    # A method the path does not allow: the OCPI application's 405 (its middleware
    # answers it with an envelope, once the token is checked).
    match = await app.router.resolve(make_mocked_request("DELETE", "/ocpi/2.2.1/locations"))
    assert match.apps == (sub,)
    assert isinstance(match.http_exception, web.HTTPMethodNotAllowed)
    assert match.http_exception.allowed_methods == {"GET"}
    # An unknown path below the mount: the OCPI application's 404.
    match = await app.router.resolve(make_mocked_request("GET", "/ocpi/2.2.1/nowhere"))
    assert match.apps == (sub,)
    assert isinstance(match.http_exception, web.HTTPNotFound)
    # HEAD of a configuration module: answered by the OCPI application's own route.
    match = await app.router.resolve(make_mocked_request("HEAD", "/ocpi/versions"))
    assert match.apps == (sub,) and match.http_exception is None
    assert is_configuration_module(_with(match))


def _with(match: web.UrlMappingMatchInfo) -> web.Request:
    request = make_mocked_request("HEAD", "/ocpi/versions")
    request._match_info = match
    return request


async def test_an_application_with_its_own_response_signal_is_refused(tmp_path: Path) -> None:
    # Its handlers would run on the parent's router, where only the parent's signals run.
    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Stamp"] = "1"

    base = "http://example.test"
    app = build_ocpi_app(base, credentials_endpoints(f"{base}/ocpi/2.2.1"))
    app.on_response_prepare.append(stamp)
    with pytest.raises(ValueError, match="no signals"):
        mount_ocpi_app(web.Application(), app)
