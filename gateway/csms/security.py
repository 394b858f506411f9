"""OCPP security profiles 1-3: Basic auth passwords, TLS contexts, client certificates.

Profile 1 (OCPP 1.6 security whitepaper section 2.1 / 2.0.1 A00.FR.2xx): HTTP
Basic auth with user = charge point id. The password is compared as bytes:
1.6 AuthorizationKeys may be binary. Profile 2 adds server TLS (1.2 or higher);
profile 3 adds a client certificate whose CN identifies the charger (2.0.1
A00.FR.404: the serial number).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

# PBKDF2 rounds. Charger passwords are long random secrets (2.0.1 BasicAuthPassword
# is 16-40 characters), so the hash needs a salt more than work; a low count keeps
# a reconnect storm of 10,000 chargers from costing minutes of CPU.
PBKDF2_ROUNDS = 2_000
_SCHEME = "pbkdf2-sha256"


def hash_password(password: bytes, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password, salt, PBKDF2_ROUNDS)
    return "$".join(
        (
            _SCHEME,
            str(PBKDF2_ROUNDS),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def verify_password(password: bytes, stored: str) -> bool:
    try:
        scheme, rounds, salt_b64, digest_b64 = stored.split("$")
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        if scheme != _SCHEME:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password, salt, int(rounds))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(digest, expected)


def parse_basic_auth(header: str | None) -> tuple[bytes, bytes] | None:
    """``Authorization: Basic ...`` into (user, password) bytes; None when absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user, password


def server_ssl_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        # OPTIONAL, not REQUIRED: the admin API and OCPI share the port and use
        # bearer tokens. The OCPP endpoint refuses a charger without a valid one.
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def certificate_cn(der: bytes) -> str | None:
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode(errors="replace")
