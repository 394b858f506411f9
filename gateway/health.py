"""Health endpoints for load balancers, container engines and orchestrators.

- ``GET /health/live``: 200 ``{"status": "ok"}`` while the process runs and its event
  loop answers (a liveness probe restarts a hung process, nothing else).
- ``GET /health/ready``: 200 ``{"status": "ready"}`` when the app has started (the
  listeners are bound once start-up is done), is not shutting down, and the store
  answers a ping within :data:`PING_TIMEOUT`; else 503 ``{"status": "unavailable",
  "reason": ...}``, so that a load balancer sends no new chargers or requests here.

Unauthenticated (probes carry no token; the answers reveal nothing but up or down), no
request body read. The state lives in the app under :data:`HEALTH` (no module state).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from gateway.keys import STORE
from gateway.storage.base import StorageError

log = logging.getLogger(__name__)

# Longer than a healthy ping takes under load, shorter than the usual probe timeouts
# (Kubernetes' default is 1 s, deploy/ sets 3 s): a Redis outage answers 503 within it
# rather than after GATEWAY_STORAGE_RETRY_SECONDS.
PING_TIMEOUT = 2.0

# Probes must not be answered from a cache.
_HEADERS = {"Cache-Control": "no-store"}


@dataclass
class HealthState:
    started: bool = False
    stopping: bool = False


HEALTH = web.AppKey("health", HealthState)


def add_health(app: web.Application) -> None:
    """Adds the two routes and the state flags. Call before the other on_shutdown
    handlers are added, so that readiness turns 503 before chargers are closed."""
    app[HEALTH] = HealthState()
    app.on_startup.append(_started)
    app.on_shutdown.append(_stopping)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)


async def _started(app: web.Application) -> None:
    # on_startup runs after every cleanup_ctx has opened (the store among them), and
    # the sites bind right after it: a request can only arrive once they have.
    app[HEALTH].started = True


async def _stopping(app: web.Application) -> None:
    app[HEALTH].stopping = True


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers=_HEADERS)


async def ready(request: web.Request) -> web.Response:
    reason = await _unready_reason(request.app)
    if reason is None:
        return web.json_response({"status": "ready"}, headers=_HEADERS)
    return web.json_response(
        {"status": "unavailable", "reason": reason}, status=503, headers=_HEADERS
    )


async def _unready_reason(app: web.Application) -> str | None:
    state = app[HEALTH]
    if state.stopping:
        return "shutting down"
    if not state.started or STORE not in app:
        return "starting"
    try:
        async with asyncio.timeout(PING_TIMEOUT):
            await app[STORE].ping()
    except TimeoutError:
        return f"storage did not answer within {PING_TIMEOUT:g} s"
    except StorageError as exc:
        # The details (paths, addresses) are not for an unauthenticated caller; the
        # store logs an outage itself, once, so a probe every few seconds adds nothing.
        log.debug("readiness: storage unavailable: %s", exc)
        return "storage unavailable"
    return None
