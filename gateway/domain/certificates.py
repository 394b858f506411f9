"""Charger certificates the gateway had issued (OCPP 1.6 security whitepaper A02/A03,
OCPP 2.0.1 A02/A03): what is kept of each, for the admin API, renewal and revocation.

A certificate is identified by its serial number (lower-case hex, no leading zeros,
as :func:`serial_hex` writes it); its SHA-256 fingerprint tells two certificates with
the same serial from different CAs apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class CertificateStatus(enum.StrEnum):
    """Where an issued certificate stands.

    ``issued``: signed, CertificateSigned sent or being sent, no answer yet (or the
    charger was gone); ``accepted`` / ``rejected``: the charger's answer to
    CertificateSigned; ``revoked``: by the operator, refused at the next TLS connection.
    """

    ISSUED = "issued"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REVOKED = "revoked"


class CertificateKind(enum.StrEnum):
    """OCPP 2.0.1 CertificateSigningUseEnumType (1.6 knows the first only)."""

    CHARGING_STATION = "ChargingStationCertificate"
    V2G = "V2GCertificate"


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    serial: str
    charger_id: str
    subject: str  # RFC 4514 string, e.g. "CN=SN-1001,O=Example CPO"
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint: str  # SHA-256 of the DER, lower-case hex
    issued_at: datetime
    kind: CertificateKind = CertificateKind.CHARGING_STATION
    status: CertificateStatus = CertificateStatus.ISSUED
    # The charger's CertificateSigned answer (status and statusInfo), when it came.
    answer: str | None = None
    answered_at: datetime | None = None
    revoked_at: datetime | None = None
    # The last time the gateway asked the charger to renew it (before expiry).
    renewal_requested_at: datetime | None = None
    pem: str = ""  # the leaf certificate, PEM


def serial_hex(serial: int) -> str:
    """A certificate serial number as the store keys it."""
    return format(serial, "x")


class RootCertificateKind(enum.StrEnum):
    """Certificates installed on a charger (2.0.1 InstallCertificateUseEnumType and
    GetCertificateIdUseEnumType; 1.6 CertificateUseEnumType knows the first two, the
    CSMS root as CentralSystemRootCertificate)."""

    CSMS_ROOT = "CSMSRootCertificate"
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"
    V2G_ROOT = "V2GRootCertificate"
    MO_ROOT = "MORootCertificate"
    V2G_CHAIN = "V2GCertificateChain"  # GetInstalledCertificateIds only
