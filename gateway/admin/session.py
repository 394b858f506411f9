"""Dashboard sessions: what a browser holds instead of the admin token.

Signing in (``gateway.dashboard``) exchanges the admin token for a session cookie; the
admin API's middleware then takes that cookie as well as ``Authorization: Bearer``.

The cookie is signed, not stored: ``v1.<expiry>.<nonce>.<mac>`` with the MAC an
HMAC-SHA256 under a key derived from the admin token. So every process of a cluster
(they share the token) accepts it with nothing shared in the store, and changing the
admin token ends every session at once. A copied cookie works until its expiry
(:data:`SESSION_SECONDS`): signing out removes it from the browser, it does not revoke
it elsewhere (there is no server-side list to strike it from).

State-changing requests made with the cookie need ``X-CSRF-Token``, a second MAC of the
session's nonce: the page gets it from ``GET /dashboard/session`` (same origin only, so
another site can neither read it nor, since a custom header needs a CORS preflight the
gateway never grants, send it). The cookie is ``SameSite=Strict`` besides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

SESSION_COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
# A working day: long enough not to sign an operator out mid-shift, short enough that a
# cookie left on a shared machine dies by itself.
SESSION_SECONDS = 8 * 3600
# Methods that change nothing (RFC 9110 9.2.1 "safe"): no CSRF token needed.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires: int  # Unix seconds

    def csrf_token(self, admin_token: str) -> str:
        return _mac(admin_token, f"csrf.{self.nonce}")


def _key(admin_token: str) -> bytes:
    # A key of its own, derived from the token: a MAC never reveals anything of the token,
    # and a new token ends every session.
    return hmac.new(admin_token.encode(), b"ocpi-gateway dashboard session", "sha256").digest()


def _mac(admin_token: str, message: str) -> str:
    digest = hmac.new(_key(admin_token), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_session(admin_token: str, now: datetime) -> tuple[Session, str]:
    """A fresh session and its cookie value."""
    session = Session(secrets.token_urlsafe(18), int(now.timestamp()) + SESSION_SECONDS)
    payload = f"{_VERSION}.{session.expires}.{session.nonce}"
    return session, f"{payload}.{_mac(admin_token, payload)}"


def read_session(value: str | None, admin_token: str, now: datetime) -> Session | None:
    """The session of a cookie value, or None when it is absent, malformed, forged
    (MAC compared in constant time) or expired."""
    if not value or len(value) > 200:
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3].encode(), _mac(admin_token, payload).encode()):
        return None
    expires = int(parts[1])
    if expires <= now.timestamp():
        return None
    return Session(parts[2], expires)


def csrf_ok(session: Session, admin_token: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), session.csrf_token(admin_token).encode())


def token_ok(presented: str, admin_token: str) -> bool:
    """The admin token, compared in constant time."""
    return hmac.compare_digest(presented.encode(), admin_token.encode())
