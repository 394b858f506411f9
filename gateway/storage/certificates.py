"""The at-rest encoding of issued certificates (:class:`IssuedCertificate`), shared by both
backends, and the checks every store applies before writing one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.domain.certificates import CertificateKind, CertificateStatus, IssuedCertificate
from gateway.storage import codec

# What serial_hex writes (a serial number is at most 20 bytes, RFC 5280 4.1.2.2).
_SERIAL = re.compile(r"0|[1-9a-f][0-9a-f]{0,39}")
_TIMES = ("not_before", "not_after", "issued_at", "answered_at", "revoked_at")


def check(cert: IssuedCertificate) -> None:
    """``ValueError`` (a naive time: ``NaiveDatetimeError``) for a record no reader could
    use: an empty serial or charger id, a serial that is not lower-case hex, an unknown
    status or kind."""
    if _SERIAL.fullmatch(cert.serial) is None:
        raise ValueError(f"serial {cert.serial!r}: lower-case hex without leading zeros")
    if not cert.charger_id:
        raise ValueError("a certificate needs its charger id")
    CertificateStatus(cert.status)
    CertificateKind(cert.kind)


def encode(cert: IssuedCertificate) -> dict[str, Any]:
    check(cert)
    data: dict[str, Any] = {
        "serial": cert.serial,
        "charger_id": cert.charger_id,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "fingerprint": cert.fingerprint,
        "kind": CertificateKind(cert.kind).value,
        "status": CertificateStatus(cert.status).value,
        "pem": cert.pem,
    }
    for name in (*_TIMES, "renewal_requested_at"):
        value = getattr(cert, name)
        if value is not None:
            data[name] = codec.encode_time(value, f"IssuedCertificate.{name}")
    if cert.answer is not None:
        data["answer"] = cert.answer
    return data


def decode(data: Mapping[str, Any]) -> IssuedCertificate:
    def when(name: str) -> Any:
        text = data.get(name)
        return None if text is None else codec.decode_time(text)

    return IssuedCertificate(
        serial=data["serial"],
        charger_id=data["charger_id"],
        subject=data["subject"],
        issuer=data["issuer"],
        not_before=codec.decode_time(data["not_before"]),
        not_after=codec.decode_time(data["not_after"]),
        fingerprint=data["fingerprint"],
        issued_at=codec.decode_time(data["issued_at"]),
        kind=CertificateKind(data.get("kind", CertificateKind.CHARGING_STATION.value)),
        status=CertificateStatus(data["status"]),
        answer=data.get("answer"),
        answered_at=when("answered_at"),
        revoked_at=when("revoked_at"),
        renewal_requested_at=when("renewal_requested_at"),
        pem=data.get("pem", ""),
    )
