"""A certificate revoked through one real ``ocpi-gateway serve`` process cuts off the
charger connected with it to another (security profile 3, both on one real Redis): the
process holding the charger closes the connection (1008) and records it offline, and no
process takes that certificate again. Real chargers (the ``ocpp`` library's 2.0.1 charge
point) over real TLS WebSockets with client certificates."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.certs import CertificateAuthority
from tests.conftest import _redis_available, drop_redis_prefix, require_redis_or_skip
from tests.csms.test_certificates import (
    ORG,
    CertCharger201,
    attach,
    client_ctx,
    handshake,
    save,
    sign_round,
)
from tests.sim import boot
from tests.test_cluster_processes import admin
from tests.test_leases_processes import LoggedGateway, cluster_env

pytestmark = pytest.mark.slow

WAIT = 10.0


class TlsGateway(LoggedGateway):
    """A gateway process serving HTTPS (its admin API and its chargers' WebSockets)."""

    def __init__(self, data_dir: Path, env: dict[str, str], log: Path, ctx: ssl.SSLContext):
        super().__init__(data_dir, env, log)
        self.url = f"https://localhost:{self.port}"
        self.ws_url = f"wss://localhost:{self.port}"
        self.ssl_context = ctx  # trusts the operator's CA, presents no certificate


@pytest.fixture
async def pair(
    tmp_path: Path,
) -> AsyncIterator[tuple[TlsGateway, TlsGateway, CertificateAuthority]]:
    require_redis_or_skip(await _redis_available())
    ca = CertificateAuthority(tmp_path, "Operator CA")
    server = ca.issue("localhost", server=True)
    prefix = f"test:{uuid.uuid4().hex}:"
    env = cluster_env(
        prefix,
        GATEWAY_TLS_CERT=str(server.cert),
        GATEWAY_TLS_KEY=str(server.key),
        GATEWAY_TLS_CLIENT_CA=str(ca.pem.cert),
        GATEWAY_CERTIFICATE_CA_CERT=str(ca.pem.cert),
        GATEWAY_CERTIFICATE_CA_KEY=str(ca.pem.key),
        GATEWAY_CERTIFICATE_ORGANIZATION=ORG,
    )
    a, b = (
        TlsGateway(tmp_path / f"data-{n}", env, tmp_path / f"{n}.log", client_ctx(ca, None))
        for n in "AB"
    )
    try:
        await asyncio.gather(a.start(), b.start())
        yield a, b, ca
    finally:
        for gw in (a, b):
            if gw.proc is not None and gw.proc.poll() is None:
                gw.kill()
        await drop_redis_prefix(prefix)


async def test_a_certificate_revoked_through_b_closes_the_connection_at_a(
    pair: tuple[TlsGateway, TlsGateway, CertificateAuthority], tmp_path: Path
) -> None:
    a, b, ca = pair
    status, _ = await admin(a, "PUT", "/chargers/CP-9", {"serial_number": "SN-99"})
    assert status == 201
    factory = ca.issue("SN-99")
    async with attach(a.ws_url, "CP-9", CertCharger201, ssl_context=client_ctx(ca, factory)) as cp:
        await boot(cp, "2.0.1")
        key, chain, answer = await sign_round(cp, "SN-99")
        assert answer.status == "Accepted"
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    issued = save(tmp_path, "issued", chain, key)

    async def connected(gw: TlsGateway) -> bool:
        status, view = await admin(gw, "GET", "/chargers/CP-9")
        assert status == 200, view
        return bool(view["connected"])

    async with attach(a.ws_url, "CP-9", CertCharger201, ssl_context=client_ctx(ca, issued)) as cp:
        await boot(cp, "2.0.1")
        assert await connected(b)  # every process sees where it is
        status, revoked = await admin(
            b, "POST", f"/certificates/{format(leaf.serial_number, 'x')}/revoke"
        )
        assert (status, revoked["status"]) == (200, "revoked")
        ws = cp._connection.ws
        async with asyncio.timeout(WAIT):
            while not ws.closed:
                await asyncio.sleep(0.05)
        assert ws.close_code == 1008
        async with asyncio.timeout(WAIT):
            while await connected(b):
                await asyncio.sleep(0.05)
    assert a.count("its certificate was revoked") == 1
    # Neither process takes that certificate again; the factory one still connects.
    for gw in (a, b):
        assert await handshake(gw.ws_url, "CP-9", client_ctx(ca, issued)) == 403
    assert await handshake(b.ws_url, "CP-9", client_ctx(ca, factory)) == 101
