"""``KeptValue``: what the composition root opens once, read by a URL space at every
request, found in the request's applications once and then kept; not kept while absent."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.roaming.server import KeptValue

SERVICE = web.AppKey("service", str)


def _request(app: web.Application) -> web.Request:
    return make_mocked_request("GET", "/", app=app)


def test_found_once_then_kept() -> None:
    app = web.Application()
    kept = KeptValue(SERVICE)
    # Not opened yet: None for get, a KeyError naming the key for a call; nothing kept.
    assert kept.get(_request(app)) is None
    with pytest.raises(KeyError, match="service"):
        kept(_request(app))
    app[SERVICE] = "first"
    assert kept(_request(app)) == "first"
    # Kept: a later request of another application (or the key replaced) reads the same.
    assert kept(_request(web.Application())) == "first"
    assert kept.get(_request(web.Application())) == "first"
