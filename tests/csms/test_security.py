"""OCPP security profiles: Basic auth (1), TLS (2), client certificates (3)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ocpp.v16 import call as call16

from gateway.csms.security import (
    hash_password,
    parse_basic_auth,
    server_ssl_context,
    verify_password,
)
from tests.certs import CertificateAuthority
from tests.conftest import Gateway, GatewayFactory
from tests.sim import basic, connect

PASSWORD = "correct-horse-battery-staple"


async def _handshake_status(url: str, cp_id: str, **kwargs: Any) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(f"{url}/ocpp/{cp_id}", protocols=("ocpp1.6",), **kwargs)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


async def test_basic_auth(gateway: Gateway) -> None:
    status, body = await gateway.admin("PUT", "/chargers/CP-AUTH", {"password": PASSWORD})
    assert status == 201
    assert body["has_password"] is True
    url = gateway.ws_url
    assert await _handshake_status(url, "CP-AUTH") == 401
    assert await _handshake_status(url, "CP-AUTH", headers=basic("CP-AUTH", "wrong-password-123")) == 401
    assert await _handshake_status(url, "CP-AUTH", headers=basic("OTHER", PASSWORD)) == 401
    assert await _handshake_status(url, "CP-AUTH", headers={"Authorization": "Basic !!notbase64"}) == 401
    async with connect(url, "CP-AUTH", "1.6", headers=basic("CP-AUTH", PASSWORD)) as cp:
        assert (await cp.call(call16.Heartbeat())).current_time
    # Omitting the password on update keeps it; null removes it.
    status, body = await gateway.admin("PUT", "/chargers/CP-AUTH", {"evses": [{"ocpp_id": 1, "evse_uid": "CP-AUTH-1"}]})
    assert body["has_password"] is True
    status, body = await gateway.admin("PUT", "/chargers/CP-AUTH", {"password": None})
    assert body["has_password"] is False
    assert await _handshake_status(url, "CP-AUTH") == 101


async def test_binary_authorization_key(gateway: Gateway) -> None:
    # A 1.6 AuthorizationKey may be any 20 bytes, not valid UTF-8.
    key = bytes(range(236, 256))
    status, _ = await gateway.admin("PUT", "/chargers/CP-BIN", {"password_hex": key.hex()})
    assert status == 201
    import base64

    header = "Basic " + base64.b64encode(b"CP-BIN:" + key).decode()
    assert await _handshake_status(gateway.ws_url, "CP-BIN", headers={"Authorization": header}) == 101
    bad = "Basic " + base64.b64encode(b"CP-BIN:" + key[:-1] + b"\x00").decode()
    assert await _handshake_status(gateway.ws_url, "CP-BIN", headers={"Authorization": bad}) == 401


async def test_password_rules(gateway: Gateway) -> None:
    status, body = await gateway.admin("PUT", "/chargers/CP-SHORT", {"password": "short"})
    assert status == 422
    assert body["field"] == "password"
    status, body = await gateway.admin("PUT", "/chargers/CP-SHORT", {"password_hex": "zz"})
    assert status == 422
    assert body["field"] == "password_hex"


def test_password_hashing() -> None:
    stored = hash_password(b"\x00\xffsecret")
    assert verify_password(b"\x00\xffsecret", stored)
    assert not verify_password(b"\x00\xffsecreT", stored)
    assert not verify_password(b"x", "garbage")
    assert hash_password(b"a") != hash_password(b"a")  # salted
    assert parse_basic_auth("Basic " + "Q1A6cDpw") == (b"CP", b"p:p")  # split at the first colon
    assert parse_basic_auth("Bearer abc") is None
    assert parse_basic_auth(None) is None


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca = CertificateAuthority(tmp_path, "Charger CA")
    other = CertificateAuthority(tmp_path, "Rogue CA")
    return {
        "ca": ca,
        "server": ca.issue("localhost", server=True),
        "good": ca.issue("SN-1001"),
        "wrong_cn": ca.issue("SN-9999"),
        "by_id": ca.issue("CP-TLS-ID"),
        "rogue": other.issue("SN-1001"),
    }


def _client_ctx(pki: dict[str, Any], cert: str | None, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem.cert))
    if cert is not None:
        ctx.load_cert_chain(pki[cert].cert, pki[cert].key)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


async def test_tls_profile_2(gateways: GatewayFactory, pki: dict[str, Any]) -> None:
    server = pki["server"]
    gw = await gateways.start(
        ssl_context=server_ssl_context(server.cert, server.key, None),
        tls_cert=server.cert,
        tls_key=server.key,
    )
    await gw.admin("PUT", "/chargers/CP-TLS", {"password": PASSWORD}, ssl=_client_ctx(pki, None))
    auth = basic("CP-TLS", PASSWORD)
    assert await _handshake_status(gw.ws_url, "CP-TLS", headers=auth, ssl=_client_ctx(pki, None)) == 101
    # The server refuses anything below TLS 1.2; a 1.2-only client gets through.
    ctx = server_ssl_context(server.cert, server.key, None)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = _client_ctx(pki, None, max_version=ssl.TLSVersion.TLSv1_2)
    assert await _handshake_status(gw.ws_url, "CP-TLS", headers=auth, ssl=tls12) == 101


async def test_tls_profile_3_client_certificates(gateways: GatewayFactory, pki: dict[str, Any]) -> None:
    server = pki["server"]
    ca = pki["ca"].pem.cert
    gw = await gateways.start(
        ssl_context=server_ssl_context(server.cert, server.key, ca),
        tls_cert=server.cert,
        tls_key=server.key,
        tls_client_ca=ca,
    )
    plain = _client_ctx(pki, None)
    status, _ = await gw.admin("PUT", "/chargers/CP-TLS", {"serial_number": "SN-1001"}, ssl=plain)
    assert status == 201
    assert await _handshake_status(gw.ws_url, "CP-TLS", ssl=_client_ctx(pki, "good")) == 101
    assert await _handshake_status(gw.ws_url, "CP-TLS", ssl=_client_ctx(pki, "wrong_cn")) == 403
    assert await _handshake_status(gw.ws_url, "CP-TLS", ssl=plain) == 403
    # A certificate from another CA fails the TLS handshake itself.
    with pytest.raises(aiohttp.ClientError):
        await _handshake_status(gw.ws_url, "CP-TLS", ssl=_client_ctx(pki, "rogue"))
    # Without a configured serial number the charger cannot be identified.
    await gw.admin("PUT", "/chargers/CP-TLS-ID", {}, ssl=plain)
    assert await _handshake_status(gw.ws_url, "CP-TLS-ID", ssl=_client_ctx(pki, "by_id")) == 403


async def test_tls_profile_3_cn_is_charger_id(gateways: GatewayFactory, pki: dict[str, Any]) -> None:
    server = pki["server"]
    ca = pki["ca"].pem.cert
    gw = await gateways.start(
        ssl_context=server_ssl_context(server.cert, server.key, ca),
        tls_cert=server.cert,
        tls_key=server.key,
        tls_client_ca=ca,
        tls_cn_is_charger_id=True,
    )
    await gw.admin("PUT", "/chargers/CP-TLS-ID", {}, ssl=_client_ctx(pki, None))
    assert await _handshake_status(gw.ws_url, "CP-TLS-ID", ssl=_client_ctx(pki, "by_id")) == 101
    assert await _handshake_status(gw.ws_url, "CP-TLS-ID", ssl=_client_ctx(pki, "good")) == 403
