"""The dashboard's routes: ``/`` and ``/dashboard`` redirect to ``/dashboard/``, the
sign-in and sign-out, the session's CSRF token for the page, and the static files.

Every answer carries a Content-Security-Policy allowing this origin only (no inline
script or style, no framing), ``X-Content-Type-Options: nosniff`` and no referrer to
other sites; the pages are never cached. The admin token is only ever read from a POSTed
form body (never a URL, so it reaches no log, history or Referer), and answered with the
session cookie of :mod:`gateway.admin.session`: ``HttpOnly``, ``SameSite=Strict``,
``Path=/``, ``Secure`` when served over TLS (or behind an ``https`` public URL),
``Max-Age`` its lifetime.
"""

from __future__ import annotations

import html
import importlib.resources
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from gateway.admin import session as sessions
from gateway.admin.events import close_readers, events_ctx
from gateway.dashboard.svg import small_multiples
from gateway.keys import ADMIN_TOKEN, CLOCK, SETTINGS, STORE
from gateway.reports.compute import GROUP_COLUMNS, METRIC_COLUMNS
from gateway.reports.request import ReportInputError, parse_request
from gateway.reports.source import report_rows

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Files a browser may fetch under /dashboard/static/ (the pages themselves are routes).
_PUBLIC = ("app.js", "app.css")


@dataclass(frozen=True)
class Assets:
    files: dict[str, bytes]


ASSETS = web.AppKey("dashboard_assets", Assets)


def _load_assets() -> Assets:
    folder = importlib.resources.files("gateway.dashboard") / "static"
    names = (*_PUBLIC, "index.html", "sign-in.html")
    return Assets({name: (folder / name).read_bytes() for name in names})


def _headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def _current(request: web.Request) -> sessions.Session | None:
    return sessions.read_session(
        request.cookies.get(sessions.SESSION_COOKIE),
        request.config_dict[ADMIN_TOKEN],
        request.config_dict[CLOCK].now(),
    )


def _secure(request: web.Request) -> bool:
    return request.secure or request.config_dict[SETTINGS].base_url.startswith("https:")


def _same_origin(request: web.Request) -> bool:
    """A browser's POST names the page's origin (Fetch standard); it must be ours (the
    host asked, or the public URL's). A client that sends no Origin (curl) is not a
    browser that another site could drive."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = urlsplit(request.config_dict[SETTINGS].base_url).netloc
    return urlsplit(origin).netloc in (request.host, public)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


async def index(request: web.Request) -> web.Response:
    if _current(request) is None:
        return _see_other("/dashboard/sign-in")
    body = request.config_dict[ASSETS].files["index.html"]
    return web.Response(body=body, headers=_headers(_TYPES[".html"]))


def _sign_in_page(request: web.Request, message: str | None, status: int = 200) -> web.Response:
    page = request.config_dict[ASSETS].files["sign-in.html"].decode()
    notice = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return web.Response(
        text=page.replace("<!--notice-->", notice),
        status=status,
        headers=_headers(_TYPES[".html"]),
    )


async def sign_in_form(request: web.Request) -> web.Response:
    if _current(request) is not None:
        return _see_other("/dashboard/")
    return _sign_in_page(request, None)


async def sign_in(request: web.Request) -> web.Response:
    if not _same_origin(request):
        return _sign_in_page(request, "Sign-in refused: it did not come from this page.", 403)
    if request.content_type != "application/x-www-form-urlencoded":
        return _sign_in_page(request, "Sign in with the form below.", 400)
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not sessions.token_ok(
        token.strip(), request.config_dict[ADMIN_TOKEN]
    ):
        log.warning("dashboard: failed sign-in from %s", request.remote)
        return _sign_in_page(request, "That is not the admin token.", 401)
    _, cookie = sessions.new_session(
        request.config_dict[ADMIN_TOKEN], request.config_dict[CLOCK].now()
    )
    response = _see_other("/dashboard/")
    response.set_cookie(
        sessions.SESSION_COOKIE,
        cookie,
        max_age=sessions.SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    return response


async def sign_out(request: web.Request) -> web.Response:
    current = _current(request)
    if current is None:
        return _see_other("/dashboard/sign-in")
    presented = request.headers.get(sessions.CSRF_HEADER)
    if presented is None and request.content_type == "application/x-www-form-urlencoded":
        field = (await request.post()).get("csrf_token")
        presented = field if isinstance(field, str) else None
    if not _same_origin(request) or not sessions.csrf_ok(
        current, request.config_dict[ADMIN_TOKEN], presented
    ):
        raise web.HTTPForbidden(text="sign-out needs the page's CSRF token")
    response = _see_other("/dashboard/sign-in")
    response.del_cookie(
        sessions.SESSION_COOKIE, path="/", secure=_secure(request), samesite="Strict"
    )
    return response


async def session_info(request: web.Request) -> web.Response:
    """What the page needs to make changes: the CSRF token and when the session ends."""
    current = _current(request)
    if current is None:
        return web.json_response({"error": "not signed in"}, status=401, headers=_no_store())
    token = current.csrf_token(request.config_dict[ADMIN_TOKEN])
    return web.json_response({"csrf_token": token, "expires": current.expires}, headers=_no_store())


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _PUBLIC:
        raise web.HTTPNotFound()
    suffix = name[name.rfind(".") :]
    return web.Response(
        body=request.config_dict[ASSETS].files[name], headers=_headers(_TYPES[suffix])
    )


# What each plottable report column is measured in, and its axis top when it is a share.
_PLOT_UNITS: dict[str, tuple[str, float | None]] = {
    "energy_kwh": ("kWh", None),
    "sessions": ("", None),
    "utilization": ("", 1.0),
    "uptime": ("", 1.0),
    "revenue_incl_vat": ("", None),
    "revenue_excl_vat": ("", None),
    "faults": ("", None),
}
# Panels in one picture at most (the first groups, in the report's order).
MAX_PANELS = 12


def _plain(request: web.Request, status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers=_headers("text/plain; charset=utf-8"))


async def plot(request: web.Request) -> web.Response:
    """``GET /dashboard/plot.svg?kind=&metric=&from=&to=&by=&period=&tz=``: one report
    column as bars per period, a panel per group (the report of ``GET
    /admin/reports/{kind}``, made once and drawn by :mod:`gateway.dashboard.svg`)."""
    if _current(request) is None:
        return _plain(request, 401, "not signed in")
    q = request.query
    kind, metric = q.get("kind", "usage"), q.get("metric", "energy_kwh")
    try:
        spec = parse_request(
            kind,
            {k: q[k] for k in ("from", "to", "by", "period", "tz") if k in q},
        )
    except ReportInputError as exc:
        return _plain(request, 400, str(exc))
    if metric not in METRIC_COLUMNS[spec.kind] or metric not in _PLOT_UNITS:
        return _plain(request, 400, f"metric: {metric[:40]!r} is not a number of this report")
    panels: dict[str, list[tuple[str, float]]] = {}
    store, now = request.config_dict[STORE], request.config_dict[CLOCK].now()
    async for row in report_rows(store, spec, now):
        group = " / ".join(str(row.get(c)) for c in GROUP_COLUMNS[spec.by])
        if group not in panels and len(panels) >= MAX_PANELS:
            continue
        value = row.get(metric)
        label = str(row.get("period_start"))[:10]
        points = panels.setdefault(group, [])
        amount = float(value) if isinstance(value, int | float | str) and value != "" else 0.0
        if points and points[-1][0] == label:  # e.g. revenue rows per currency: summed
            points[-1] = (label, points[-1][1] + amount)
        else:
            points.append((label, amount))
    unit, top = _PLOT_UNITS[metric]
    svg = small_multiples(
        [(f"{metric} · {group}", points) for group, points in panels.items()],
        unit=unit,
        maximum=top,
    )
    return web.Response(text=svg, headers=_headers(_TYPES[".svg"]))


def add_dashboard(app: web.Application) -> None:
    """Adds the routes and the admin API's event feed (``GET /admin/events``)."""
    app[ASSETS] = _load_assets()
    app.cleanup_ctx.append(events_ctx)
    app.on_shutdown.append(close_readers)
    r = app.router
    r.add_get("/", root)
    r.add_get("/dashboard", root)
    r.add_get("/dashboard/", index)
    r.add_get("/dashboard/sign-in", sign_in_form)
    r.add_post("/dashboard/sign-in", sign_in)
    r.add_post("/dashboard/sign-out", sign_out)
    r.add_get("/dashboard/session", session_info)
    r.add_get("/dashboard/static/{name}", static)
    r.add_get("/dashboard/plot.svg", plot)
