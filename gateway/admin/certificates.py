"""Admin API for the charger certificates the gateway had issued (security profile 3).

``GET /certificates?charger_id=&expiring_within_days=&limit=`` lists them: a charger's,
newest first (revoked ones too), or those not revoked expiring within N days, soonest
first (both filters: that charger's among those); neither: every certificate not
revoked, soonest expiry first. ``GET /certificates/{serial}`` is one with its PEM;
``POST /certificates/{serial}/revoke`` revokes it: the charger's next TLS connection
with it is refused (403), a connection open now stays until it ends. Root certificates
on chargers are commands (``install-certificate``, ``get-installed-certificate-ids``,
``delete-certificate``, ``renew-certificate``: ``POST /chargers/{id}/commands/{name}``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NotRequired

from aiohttp import web
from pydantic import Field
from typing_extensions import TypedDict

from gateway.admin import openapi as api
from gateway.admin.http import ApiError, read_query, respond
from gateway.admin.schemas import _Body
from gateway.domain.certificates import CertificateKind, CertificateStatus, IssuedCertificate
from gateway.keys import CLOCK, ROUTER, STORE
from gateway.pki import CERTIFICATES

# "Every certificate": whatever expires before this many days from now.
_FOREVER_DAYS = 100 * 366


class CertificateView(TypedDict):
    serial: str
    charger_id: str
    kind: CertificateKind
    status: CertificateStatus
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint: str
    issued_at: datetime
    answer: str | None
    answered_at: datetime | None
    revoked_at: datetime | None
    renewal_requested_at: datetime | None
    pem: NotRequired[str]


class CertificateQuery(_Body):
    charger_id: str | None = Field(default=None, min_length=1, max_length=48)
    expiring_within_days: float | None = Field(default=None, ge=0, le=36500)
    limit: int = Field(default=1000, ge=1, le=10000)


def certificate_view(cert: IssuedCertificate, *, pem: bool = False) -> CertificateView:
    view: CertificateView = {
        "serial": cert.serial,
        "charger_id": cert.charger_id,
        "kind": cert.kind,
        "status": cert.status,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "fingerprint": cert.fingerprint,
        "issued_at": cert.issued_at,
        "answer": cert.answer,
        "answered_at": cert.answered_at,
        "revoked_at": cert.revoked_at,
        "renewal_requested_at": cert.renewal_requested_at,
    }
    if pem:
        view["pem"] = cert.pem
    return view


def _serial(request: web.Request) -> str:
    serial = request.match_info["serial"].lower()
    if not 1 <= len(serial) <= 40 or any(c not in "0123456789abcdef" for c in serial):
        raise ApiError(400, "a serial number is 1 to 40 hex digits", "serial")
    return serial.lstrip("0") or "0"


async def list_certificates(request: web.Request) -> web.Response:
    q: CertificateQuery = read_query(request, CertificateQuery)
    certificates = request.config_dict[STORE].certificates
    if q.expiring_within_days is None and q.charger_id is not None:
        found = await certificates.for_charger(q.charger_id)
    else:
        days = q.expiring_within_days if q.expiring_within_days is not None else _FOREVER_DAYS
        before = request.config_dict[CLOCK].now() + timedelta(days=days)
        # A charger's among all those expiring: read them all (there are few per charger).
        limit = q.limit if q.charger_id is None else 1_000_000
        found = await certificates.expiring(before, limit=limit)
        if q.charger_id is not None:
            found = [c for c in found if c.charger_id == q.charger_id]
    return respond([certificate_view(c) for c in found[: q.limit]])


async def get_certificate(request: web.Request) -> web.Response:
    serial = _serial(request)
    cert = await request.config_dict[STORE].certificates.get(serial)
    if cert is None:
        raise ApiError(404, f"no certificate with serial {serial!r} was issued here")
    return respond(certificate_view(cert, pem=True))


async def revoke_certificate(request: web.Request) -> web.Response:
    serial = _serial(request)
    revoked = await request.config_dict[CERTIFICATES].revoke(serial)
    if revoked is None:
        raise ApiError(404, f"no certificate with serial {serial!r} was issued here")
    # A charger connected with it is cut off now, wherever it is connected, not at its
    # next handshake (which the endpoint refuses). Again on a repeated revocation: the
    # first one's message to the process holding the charger may have been lost.
    await request.config_dict[ROUTER].certificate_revoked(revoked.charger_id, revoked.fingerprint)
    return respond(certificate_view(revoked))


def certificate_routes() -> list[api.Operation]:
    serial = {"serial": "the certificate's serial number, hex"}
    return [
        api.get(
            "/certificates",
            list_certificates,
            "Charger certificates issued: a charger's, or those expiring soon",
            description="`charger_id`: that charger's, newest first (revoked ones too);"
            " `expiring_within_days`: those not revoked expiring within that many days,"
            " soonest first; neither: every one not revoked, soonest expiry first.",
            query=CertificateQuery,
            response=list[CertificateView],
        ),
        api.get(
            "/certificates/{serial}",
            get_certificate,
            "One issued certificate, with its PEM",
            path_params=serial,
            response=CertificateView,
            errors={404: "no such certificate"},
        ),
        api.post(
            "/certificates/{serial}/revoke",
            revoke_certificate,
            "Revoke a certificate: a connection made with it is closed, the next refused",
            description="The charger's connection made with this certificate, if one is"
            " open on any process, is recorded offline and closed (WebSocket code 1008);"
            " its next TLS connection with it is refused (403). A connection made with"
            " another certificate stays.",
            path_params=serial,
            response=CertificateView,
            errors={404: "no such certificate"},
        ),
    ]
