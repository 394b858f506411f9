"""Charger certificates (issue 13 point 2): SignCertificate with a CSR the test makes,
signed by the operator's CA or an external one, CertificateSigned back, the chain
verified and used for a profile-3 TLS connection; revocation closing the connection
made with the certificate and refusing the next one; renewal before expiry; root certificates and signed firmware as commands.
Real chargers (the ``ocpp`` library's 2.0.1 and 1.6 charge points) over real WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from gateway.csms.certificates import (
    CsrRefused,
    ExternalCa,
    IssueFailed,
    LocalCa,
    check_csr,
)
from gateway.csms.security import server_ssl_context
from gateway.domain.certificates import CertificateKind
from gateway.pki import CERTIFICATES, certificate_issuers
from gateway.settings import ConfigError, Settings
from tests.certs import CertificateAuthority, Pem
from tests.conftest import FakeClock, Gateway, GatewayFactory
from tests.sim import Charger16, Charger201, WsAdapter, boot

ORG = "Example CPO"
WAIT = 10.0

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def make_csr(cn: str, org: str | None = ORG, key: Key | None = None) -> tuple[Key, str]:
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org is not None:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names)).sign(key, digest)
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def tampered(pem: str) -> str:
    """The CSR with one bit of its signature flipped."""
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


# -- the checks of a CSR --------------------------------------------------------------------


def test_a_good_csr_passes() -> None:
    for key in (ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)):
        _, pem = make_csr("SN-1", key=key)
        assert check_csr(pem, expected="SN-1", organization=ORG).subject.rfc4514_string() == (
            f"O={ORG},CN=SN-1"
        )
    _, pem = make_csr("SN-1", org=None)
    check_csr(pem, expected="SN-1", organization=None)  # no organization configured


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        ("not a CSR", "not a PEM"),
        (tampered(make_csr("SN-1")[1]), "signature does not verify"),
        (make_csr("SN-1", key=rsa.generate_private_key(65537, 1024))[1], "1024 bits"),
        (make_csr("SN-1", key=ec.generate_private_key(ec.SECP521R1()))[1], "secp521r1"),
        (make_csr("SN-1", key=ed25519.Ed25519PrivateKey.generate())[1], "Ed25519"),
        (make_csr("SN-2")[1], "is not this charger's identity"),
        (make_csr("SN-1", org="Someone Else")[1], "subject O 'Someone Else'"),
        (make_csr("SN-1", org=None)[1], "subject O ''"),
    ],
)
def test_bad_csrs_are_refused_with_the_reason(pem: str, reason: str) -> None:
    with pytest.raises(CsrRefused, match=reason):
        check_csr(pem, expected="SN-1", organization=ORG)


def test_certificate_settings_that_cannot_work_stop_the_start(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path, "Operator CA")
    leaf = ca.issue("not-a-ca")
    clock = FakeClock()

    def issuers(**kwargs: Any) -> Any:
        return certificate_issuers(Settings(data_dir=tmp_path, **kwargs), clock)

    with pytest.raises(ConfigError, match="certificate_ca_key"):
        issuers(certificate_ca_cert=ca.pem.cert)
    with pytest.raises(ConfigError, match="not the key of"):
        issuers(certificate_ca_cert=ca.pem.cert, certificate_ca_key=leaf.key)
    with pytest.raises(ConfigError, match="not a CA certificate"):
        issuers(certificate_ca_cert=leaf.cert, certificate_ca_key=leaf.key)
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        issuers(certificate_ca_cert=ca.pem.key, certificate_ca_key=ca.pem.key)
    with pytest.raises(ConfigError, match="http"):
        issuers(certificate_external_ca_url="ftp://ca.example")
    with pytest.raises(ConfigError, match="certificate_external_ca_url"):
        issuers(certificate_external_ca_token="secret")
    assert issuers() == []
    both = issuers(
        certificate_ca_cert=ca.pem.cert,
        certificate_ca_key=ca.pem.key,
        certificate_external_ca_url="https://ca.example/sign",
    )
    assert [type(i) for i in both] == [LocalCa, ExternalCa]


# -- chargers that take certificates ----------------------------------------------------------


class CertCharger201(Charger201):
    """A 2.0.1 charger that keeps the chains it is sent and its root certificates."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn)
        self.chains: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        self.answer = "Accepted"
        self.roots: dict[str, str] = {}

    @on("CertificateSigned")
    def on_certificate_signed(self, certificate_chain: str, **kwargs: Any) -> Any:
        return result201.CertificateSigned(status=self.answer)

    @after("CertificateSigned")
    def after_certificate_signed(self, certificate_chain: str, **kwargs: Any) -> None:
        # Once the answer went out: a test that goes on may close the connection.
        self.chains.put_nowait((certificate_chain, kwargs.get("certificate_type")))

    @on("TriggerMessage")
    def on_trigger_message(self, **kwargs: Any) -> Any:
        self.received.append(("TriggerMessage", kwargs))
        return result201.TriggerMessage(status="Accepted")

    @on("InstallCertificate")
    def on_install_certificate(self, certificate_type: str, certificate: str, **_: Any) -> Any:
        self.roots[certificate_type] = certificate
        return result201.InstallCertificate(status="Accepted")

    @on("GetInstalledCertificateIds")
    def on_get_installed(self, **kwargs: Any) -> Any:
        wanted = kwargs.get("certificate_type") or list(self.roots)
        chains = [
            {"certificate_type": kind, "certificate_hash_data": hash_data(self.roots[kind])}
            for kind in wanted
            if kind in self.roots
        ]
        if not chains:
            return result201.GetInstalledCertificateIds(status="NotFound")
        return result201.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data_chain=chains
        )

    @on("DeleteCertificate")
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any], **_: Any) -> Any:
        # One certificate installed as several types is deleted as all of them.
        doomed = [
            kind
            for kind, pem in self.roots.items()
            if hash_data(pem)["serial_number"] == certificate_hash_data["serial_number"]
        ]
        for kind in doomed:
            del self.roots[kind]
        return result201.DeleteCertificate(status="Accepted" if doomed else "NotFound")


class CertCharger16(Charger16):
    """A 1.6 charger of the security whitepaper: CertificateSigned, ExtendedTriggerMessage,
    InstallCertificate, SignedUpdateFirmware."""

    def __init__(self, cp_id: str, conn: WsAdapter) -> None:
        super().__init__(cp_id, conn)
        self.chains: asyncio.Queue[str] = asyncio.Queue()

    @on("CertificateSigned")
    def on_certificate_signed(self, certificate_chain: str) -> Any:
        return result16.CertificateSigned(status="Accepted")

    @after("CertificateSigned")
    def after_certificate_signed(self, certificate_chain: str) -> None:
        self.chains.put_nowait(certificate_chain)

    @on("ExtendedTriggerMessage")
    def on_extended_trigger(self, **kwargs: Any) -> Any:
        self.received.append(("ExtendedTriggerMessage", kwargs))
        return result16.ExtendedTriggerMessage(status="Accepted")

    @on("InstallCertificate")
    def on_install_certificate(self, **kwargs: Any) -> Any:
        self.received.append(("InstallCertificate", kwargs))
        return result16.InstallCertificate(status="Accepted")

    @on("GetInstalledCertificateIds")
    def on_get_installed(self, **kwargs: Any) -> Any:
        self.received.append(("GetInstalledCertificateIds", kwargs))
        return result16.GetInstalledCertificateIds(status="NotFound")

    @on("DeleteCertificate")
    def on_delete_certificate(self, **kwargs: Any) -> Any:
        self.received.append(("DeleteCertificate", kwargs))
        return result16.DeleteCertificate(status="NotFound")

    @on("SignedUpdateFirmware")
    def on_signed_update_firmware(self, **kwargs: Any) -> Any:
        self.received.append(("SignedUpdateFirmware", kwargs))
        return result16.SignedUpdateFirmware(status="Accepted")


def hash_data(pem: str) -> dict[str, str]:
    """CertificateHashDataType of a certificate (2.0.1 M03: hashes of the issuer's name and
    key, the serial number in hex)."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    digest = hashes.Hash(hashes.SHA256())
    digest.update(cert.issuer.public_bytes())
    name_hash = digest.finalize().hex()
    return {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": name_hash,
        "issuer_key_hash": "00" * 32,  # the issuer's key is not in the certificate
        "serial_number": format(cert.serial_number, "x"),
    }


@contextlib.asynccontextmanager
async def attach(
    url: str, cp_id: str, cls: type[Any], *, ssl_context: Any = True
) -> AsyncIterator[Any]:
    protocol = "ocpp1.6" if issubclass(cls, Charger16) else "ocpp2.0.1"
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{url}/ocpp/{cp_id}", protocols=(protocol,), ssl=ssl_context)
        cp = cls(cp_id, WsAdapter(ws))
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            await ws.close()


async def handshake(url: str, cp_id: str, ctx: ssl.SSLContext) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(f"{url}/ocpp/{cp_id}", protocols=("ocpp2.0.1",), ssl=ctx)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


def client_ctx(ca: CertificateAuthority, pem: Pem | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.pem.cert))
    if pem is not None:
        ctx.load_cert_chain(pem.cert, pem.key)
    return ctx


def save(directory: Path, stem: str, chain: str, key: Key) -> Pem:
    pem = Pem(directory / f"{stem}.crt", directory / f"{stem}.key")
    pem.cert.write_text(chain)
    pem.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem


async def wait_for(predicate: Any, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def listed(gw: Gateway, query: str, **kwargs: Any) -> list[dict[str, Any]]:
    status, body = await gw.admin("GET", f"/certificates?{query}", **kwargs)
    assert status == 200, body
    assert isinstance(body, list)
    return body


# -- profile 3 end to end -----------------------------------------------------------------


@pytest.fixture
def operator_ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path, "Operator CA")


async def start_tls(
    gateways: GatewayFactory, ca: CertificateAuthority, **overrides: Any
) -> tuple[Gateway, ssl.SSLContext]:
    server = ca.issue("localhost", server=True)
    gw = await gateways.start(
        ssl_context=server_ssl_context(server.cert, server.key, ca.pem.cert),
        tls_cert=server.cert,
        tls_key=server.key,
        tls_client_ca=ca.pem.cert,
        certificate_ca_cert=ca.pem.cert,
        certificate_ca_key=ca.pem.key,
        certificate_organization=ORG,
        **overrides,
    )
    return gw, client_ctx(ca, None)


async def start_tls_with_charger(
    gateways: GatewayFactory, ca: CertificateAuthority, cp_id: str, serial: str
) -> tuple[Gateway, ssl.SSLContext, ssl.SSLContext]:
    """A TLS gateway with ``cp_id`` registered by its ``serial`` number: the gateway, the
    operator's client context and the charger's, with the certificate it left the
    factory with (issued for ``serial``)."""
    gw, plain = await start_tls(gateways, ca)
    status, _ = await gw.admin("PUT", f"/chargers/{cp_id}", {"serial_number": serial}, ssl=plain)
    assert status == 201
    return gw, plain, client_ctx(ca, ca.issue(serial))


async def sign_round(cp: CertCharger201, cn: str, org: str = ORG) -> tuple[Key, str, Any]:
    """A SignCertificate with a fresh key; the answer and, when accepted, the chain."""
    key, csr = make_csr(cn, org)
    answer = await cp.call(call201.SignCertificate(csr=csr))
    if answer.status != "Accepted":
        return key, "", answer
    chain, kind = await asyncio.wait_for(cp.chains.get(), WAIT)
    assert kind == "ChargingStationCertificate"
    return key, chain, answer


async def test_signing_round_trip_and_revocation_over_profile_3(
    gateways: GatewayFactory, operator_ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca = operator_ca
    gw, plain, factory = await start_tls_with_charger(gateways, ca, "CP-PKI", "SN-77")
    async with attach(gw.ws_url, "CP-PKI", CertCharger201, ssl_context=factory) as cp:
        await boot(cp, "2.0.1")
        # A CSR for someone else's identity, or without the operator's O: refused, with why.
        _, _, refused = await sign_round(cp, "SN-78")
        assert refused.status == "Rejected"
        assert refused.status_info["reason_code"] == "InvalidCSR"
        assert "identity" in refused.status_info["additional_info"]
        _, _, refused = await sign_round(cp, "SN-77", org="Other")
        assert refused.status == "Rejected"

        key, chain, answer = await sign_round(cp, "SN-77")
        assert answer.status == "Accepted"
        certs = x509.load_pem_x509_certificates(chain.encode())
        assert len(certs) == 1  # the CA is a root: the charger has it, it is not sent
        leaf = certs[0]
        leaf.verify_directly_issued_by(ca.cert)
        assert leaf.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
        assert leaf.subject.rfc4514_string() == f"O={ORG},CN=SN-77"
        assert leaf.not_valid_after_utc <= ca.cert.not_valid_after_utc
        assert leaf.not_valid_before_utc < datetime.now(UTC) < leaf.not_valid_after_utc
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usage
        serial = format(leaf.serial_number, "x")

        async def recorded() -> bool:
            found = await listed(gw, "charger_id=CP-PKI", ssl=plain)
            return bool(found) and found[0]["status"] == "accepted"

        await wait_for(recorded)
    [record] = await listed(gw, "charger_id=CP-PKI", ssl=plain)
    assert record["serial"] == serial
    assert record["answer"] == "Accepted"
    assert record["subject"] == f"O={ORG},CN=SN-77"
    assert record["fingerprint"] == leaf.fingerprint(hashes.SHA256()).hex()
    assert record["kind"] == "ChargingStationCertificate"
    status, one = await gw.admin("GET", f"/certificates/{serial.upper()}", ssl=plain)
    assert status == 200
    assert x509.load_pem_x509_certificate(one["pem"].encode()) == leaf

    # The charger switches to its new certificate: a profile-3 connection with it is taken.
    issued = save(tmp_path, "issued", chain, key)
    assert await handshake(gw.ws_url, "CP-PKI", client_ctx(ca, issued)) == 101

    status, revoked = await gw.admin("POST", f"/certificates/{serial}/revoke", ssl=plain)
    assert status == 200
    assert revoked["status"] == "revoked" and revoked["revoked_at"] is not None
    assert await handshake(gw.ws_url, "CP-PKI", client_ctx(ca, issued)) == 403
    # Revoking again changes nothing; it is no longer among those expiring.
    status, again = await gw.admin("POST", f"/certificates/{serial}/revoke", ssl=plain)
    assert (status, again["revoked_at"]) == (200, revoked["revoked_at"])
    assert await listed(gw, "expiring_within_days=3650", ssl=plain) == []

    # A fresh certificate (through the factory one) is accepted; the revoked one still not.
    async with attach(gw.ws_url, "CP-PKI", CertCharger201, ssl_context=factory) as cp:
        key2, chain2, answer = await sign_round(cp, "SN-77")
        assert answer.status == "Accepted"
    fresh = save(tmp_path, "fresh", chain2, key2)
    assert await handshake(gw.ws_url, "CP-PKI", client_ctx(ca, fresh)) == 101
    assert await handshake(gw.ws_url, "CP-PKI", client_ctx(ca, issued)) == 403

    async def both() -> bool:
        listing = await listed(gw, "charger_id=CP-PKI", ssl=plain)
        return [c["status"] for c in listing] == ["accepted", "revoked"]  # newest first

    await wait_for(both)

    assert (await gw.admin("GET", "/certificates/abc", ssl=plain))[0] == 404
    status, body = await gw.admin("GET", "/certificates/xyz", ssl=plain)
    assert (status, body["field"]) == (400, "serial")
    status, body = await gw.admin("POST", "/certificates/abc/revoke", ssl=plain)
    assert status == 404
    status, body = await gw.admin("GET", "/certificates?expiring_within_days=-1", ssl=plain)
    assert (status, body["field"]) == (400, "expiring_within_days")


async def test_revocation_closes_the_connection_made_with_that_certificate(
    gateways: GatewayFactory, operator_ca: CertificateAuthority, tmp_path: Path
) -> None:
    """A revoked certificate cuts off the charger connected with it at once (recorded
    offline, closed with 1008), not at its next handshake; a connection of the same charger
    made with another certificate stays."""
    ca = operator_ca
    gw, plain, factory = await start_tls_with_charger(gateways, ca, "CP-REV", "SN-90")
    async with attach(gw.ws_url, "CP-REV", CertCharger201, ssl_context=factory) as cp:
        await boot(cp, "2.0.1")
        key, chain, answer = await sign_round(cp, "SN-90")
        assert answer.status == "Accepted"
        first = x509.load_pem_x509_certificates(chain.encode())[0]
        # Revoked while the charger is connected with its factory certificate: that
        # connection is not the revoked one's, and stays.
        status, _ = await gw.admin(
            "POST", f"/certificates/{format(first.serial_number, 'x')}/revoke", ssl=plain
        )
        assert status == 200
        answer = await cp.call(call201.Heartbeat())
        assert answer.current_time
        assert not cp._connection.ws.closed
        key, chain, answer = await sign_round(cp, "SN-90")
        assert answer.status == "Accepted"
    second = x509.load_pem_x509_certificates(chain.encode())[0]
    issued = save(tmp_path, "second", chain, key)

    async def connected() -> bool:
        status, view = await gw.admin("GET", "/chargers/CP-REV", ssl=plain)
        assert status == 200
        return bool(view["connected"])

    async with attach(
        gw.ws_url, "CP-REV", CertCharger201, ssl_context=client_ctx(ca, issued)
    ) as cp:
        await boot(cp, "2.0.1")
        assert await connected()
        status, revoked = await gw.admin(
            "POST", f"/certificates/{format(second.serial_number, 'x')}/revoke", ssl=plain
        )
        assert (status, revoked["status"]) == (200, "revoked")
        ws = cp._connection.ws

        async def closed() -> bool:
            return bool(ws.closed)

        await wait_for(closed)
        assert ws.close_code == 1008
        assert not await connected()
    assert await handshake(gw.ws_url, "CP-REV", client_ctx(ca, issued)) == 403
    # The factory certificate still connects.
    assert await handshake(gw.ws_url, "CP-REV", factory) == 101


async def test_a_revocation_between_the_check_and_the_registration_closes_it_too(
    gateways: GatewayFactory,
    operator_ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The certificate is revoked after the handshake's check and before the connection
    is registered (where a revocation finds no connection to close): the endpoint reads
    it again once the connection is registered, and closes it."""
    ca = operator_ca
    gw, plain, factory = await start_tls_with_charger(gateways, ca, "CP-RACE", "SN-91")
    async with attach(gw.ws_url, "CP-RACE", CertCharger201, ssl_context=factory) as cp:
        key, chain, answer = await sign_round(cp, "SN-91")
        assert answer.status == "Accepted"
    serial = format(x509.load_pem_x509_certificates(chain.encode())[0].serial_number, "x")
    issued = save(tmp_path, "issued", chain, key)
    csms = gw.csms
    register = csms.connected

    async def revoked_first(conn: Any) -> None:
        # Stored only, as an operator's revocation on another process is, before the
        # connection is there to be closed.
        await gw.app[CERTIFICATES].revoke(serial)
        await register(conn)

    monkeypatch.setattr(csms, "connected", revoked_first)
    async with attach(
        gw.ws_url, "CP-RACE", CertCharger201, ssl_context=client_ctx(ca, issued)
    ) as cp:
        ws = cp._connection.ws
        await wait_for(lambda: _true(ws.closed))
        assert ws.close_code == 1008
    assert csms.connection("CP-RACE") is None
    status, view = await gw.admin("GET", "/chargers/CP-RACE", ssl=plain)
    assert (status, view["connected"]) == (200, False)


async def _true(value: object) -> bool:
    return bool(value)


async def test_a_charger_that_refuses_the_chain_is_recorded(
    gateways: GatewayFactory, operator_ca: CertificateAuthority
) -> None:
    gw = await gateways.start(
        certificate_ca_cert=operator_ca.pem.cert,
        certificate_ca_key=operator_ca.pem.key,
        tls_cn_is_charger_id=True,
    )
    await gw.admin("PUT", "/chargers/CP-NO", {})
    async with attach(gw.ws_url, "CP-NO", CertCharger201) as cp:
        cp.answer = "Rejected"
        _, chain, answer = await sign_round(cp, "CP-NO", org="Any")  # no O required
        assert answer.status == "Accepted" and chain

        async def answered() -> bool:
            found = await listed(gw, "charger_id=CP-NO")
            return bool(found) and found[0]["status"] == "rejected"

        await wait_for(answered)


async def test_without_a_ca_a_csr_is_rejected(gateway: Gateway) -> None:
    await gateway.admin("PUT", "/chargers/CP-NOCA", {"serial_number": "SN-1"})
    async with attach(gateway.ws_url, "CP-NOCA", CertCharger201) as cp:
        _, csr = make_csr("SN-1")
        answer = await cp.call(call201.SignCertificate(csr=csr))
        assert answer.status == "Rejected"
        assert answer.status_info["reason_code"] == "NotConfigured"
        # V2G certificates need a CA of the V2G PKI (the external one), never the operator's.
        answer = await cp.call(call201.SignCertificate(csr=csr, certificate_type="V2GCertificate"))
        assert answer.status == "Rejected"


# -- OCPP 1.6 (security whitepaper) -------------------------------------------------------------


async def test_v16_signing_renewal_trigger_roots_and_signed_firmware(
    gateways: GatewayFactory, operator_ca: CertificateAuthority
) -> None:
    gw = await gateways.start(
        certificate_ca_cert=operator_ca.pem.cert,
        certificate_ca_key=operator_ca.pem.key,
        tls_cn_is_charger_id=True,  # 1.6 fleets: the CN is the charge point id
    )
    await gw.admin("PUT", "/chargers/CP-16", {})

    async def command(name: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await gw.admin("POST", f"/chargers/CP-16/commands/{name}", body)

    async with attach(gw.ws_url, "CP-16", CertCharger16) as cp:
        await boot(cp, "1.6")
        _, csr = make_csr("CP-16", org=None)
        answer = await cp.call(call16.SignCertificate(csr=csr))
        assert answer.status == "Accepted"
        chain = await asyncio.wait_for(cp.chains.get(), WAIT)
        leaf = x509.load_pem_x509_certificates(chain.encode())[0]
        leaf.verify_directly_issued_by(operator_ca.cert)
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-16"
        _, other = make_csr("CP-99", org=None)
        assert (await cp.call(call16.SignCertificate(csr=other))).status == "Rejected"

        status, body = await command("renew-certificate", {})
        assert (status, body["status"]) == (200, "Accepted")
        assert cp.received[-1] == (
            "ExtendedTriggerMessage",
            {"requested_message": "SignChargePointCertificate"},
        )
        status, body = await command("trigger-message", {"message": "LogStatusNotification"})
        assert status == 200
        assert cp.received[-1][0] == "ExtendedTriggerMessage"
        status, body = await command("renew-certificate", {"certificate_type": "V2GCertificate"})
        assert status == 422

        root = operator_ca.cert.public_bytes(serialization.Encoding.PEM).decode()
        status, body = await command(
            "install-certificate", {"certificate_type": "CSMSRootCertificate", "certificate": root}
        )
        assert (status, body["status"]) == (200, "Accepted")
        assert cp.received[-1] == (
            "InstallCertificate",
            {"certificate_type": "CentralSystemRootCertificate", "certificate": root},
        )
        status, body = await command(
            "install-certificate", {"certificate_type": "V2GRootCertificate", "certificate": root}
        )
        assert status == 422  # no ISO 15118 in 1.6
        status, body = await command(
            "install-certificate", {"certificate_type": "CSMSRootCertificate", "certificate": "x"}
        )
        assert (status, body["field"]) == (422, "certificate")
        status, body = await command("get-installed-certificate-ids", {})
        assert status == 422  # 1.6 asks for one type
        status, body = await command(
            "get-installed-certificate-ids", {"certificate_types": ["ManufacturerRootCertificate"]}
        )
        assert (status, body["data"]) == (200, {"status": "NotFound"})
        assert cp.received[-1][1] == {"certificate_type": "ManufacturerRootCertificate"}
        status, body = await command(
            "delete-certificate",
            {
                "hash_algorithm": "SHA256",
                "issuer_name_hash": "ab",
                "issuer_key_hash": "cd",
                "serial_number": "1f",
            },
        )
        assert (status, body["data"]["status"]) == (200, "NotFound")
        assert cp.received[-1][1]["certificate_hash_data"]["serial_number"] == "1f"

        firmware = {
            "location": "https://fw.example/v2.bin",
            "retrieve_at": "2026-12-01T00:00:00Z",
            "signing_certificate": root,
            "signature": "c2lnbmF0dXJl",
        }
        status, body = await command("update-firmware", firmware)
        assert (status, body["status"]) == (200, "Accepted")
        name, sent = cp.received[-1]
        assert name == "SignedUpdateFirmware"
        assert sent["request_id"] == body["request_id"]
        assert sent["firmware"]["signing_certificate"] == root
        assert sent["firmware"]["signature"] == "c2lnbmF0dXJl"
        await cp.call(
            call16.SignedFirmwareStatusNotification(
                status="Downloading", request_id=body["request_id"]
            )
        )
        status, view = await gw.admin("GET", "/chargers/CP-16")
        [request] = [r for r in view["requests"] if r["request_id"] == body["request_id"]]
        assert request["status"] == "Downloading"
        status, body = await command("update-firmware", {**firmware, "signature": None})
        assert status == 422  # a certificate without its signature

        await cp.call(
            call16.SecurityEventNotification(
                type="FirmwareUpdated", timestamp="2026-12-01T00:00:00Z", tech_info="v2"
            )
        )
        status, view = await gw.admin("GET", "/chargers/CP-16")
        assert view["notifications"]["SecurityEvent"]["type"] == "FirmwareUpdated"

    async def recorded() -> bool:
        found = await listed(gw, "charger_id=CP-16")
        return bool(found) and found[0]["status"] == "accepted"

    await wait_for(recorded)


# -- root certificates on a 2.0.1 charger ------------------------------------------------------


async def test_v201_root_certificates_install_list_delete(
    gateway: Gateway, operator_ca: CertificateAuthority
) -> None:
    await gateway.admin("PUT", "/chargers/CP-ROOT", {})
    root = operator_ca.cert.public_bytes(serialization.Encoding.PEM).decode()

    async def command(name: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await gateway.admin("POST", f"/chargers/CP-ROOT/commands/{name}", body)

    async with attach(gateway.ws_url, "CP-ROOT", CertCharger201) as cp:
        for kind in ("CSMSRootCertificate", "V2GRootCertificate"):
            status, body = await command(
                "install-certificate", {"certificate_type": kind, "certificate": root}
            )
            assert (status, body["status"]) == (200, "Accepted")
        assert set(cp.roots) == {"CSMSRootCertificate", "V2GRootCertificate"}
        status, body = await command(
            "get-installed-certificate-ids", {"certificate_types": ["V2GRootCertificate"]}
        )
        assert status == 200
        [entry] = body["data"]["certificateHashDataChain"]
        assert entry["certificateType"] == "V2GRootCertificate"
        hash_data_sent = entry["certificateHashData"]
        status, body = await command(
            "delete-certificate",
            {
                "hash_algorithm": hash_data_sent["hashAlgorithm"],
                "issuer_name_hash": hash_data_sent["issuerNameHash"],
                "issuer_key_hash": hash_data_sent["issuerKeyHash"],
                "serial_number": hash_data_sent["serialNumber"],
            },
        )
        assert (status, body["status"]) == (200, "Accepted")
        assert cp.roots == {}
        status, body = await command("get-installed-certificate-ids", {})
        assert (status, body["status"], body["data"]["status"]) == (200, "Rejected", "NotFound")
        status, body = await command("renew-certificate", {"certificate_type": "V2GCertificate"})
        assert status == 200
        assert cp.received[-1] == ("TriggerMessage", {"requested_message": "SignV2GCertificate"})


# -- renewal before expiry ----------------------------------------------------------------------


async def test_renewal_is_asked_once_the_certificate_is_due(
    gateways: GatewayFactory, operator_ca: CertificateAuthority
) -> None:
    clock = FakeClock(datetime.now(UTC))
    gw = await gateways.start(
        clock=clock,
        certificate_ca_cert=operator_ca.pem.cert,
        certificate_ca_key=operator_ca.pem.key,
        certificate_validity_days=20,
        certificate_renew_days=10,
        certificate_check_interval=0.1,
        tls_cn_is_charger_id=True,
    )
    await gw.admin("PUT", "/chargers/CP-RENEW", {})
    async with attach(gw.ws_url, "CP-RENEW", CertCharger201) as cp:
        _, _, answer = await sign_round(cp, "CP-RENEW", org="Any")
        assert answer.status == "Accepted"

        async def accepted() -> bool:
            found = await listed(gw, "charger_id=CP-RENEW")
            return bool(found) and found[0]["status"] == "accepted"

        await wait_for(accepted)
        assert await listed(gw, "expiring_within_days=10") == []
        assert len(await listed(gw, "expiring_within_days=21")) == 1

        def triggers() -> list[Any]:
            return [r for r in cp.received if r[0] == "TriggerMessage"]

        await asyncio.sleep(0.5)  # several rounds: not due yet
        assert triggers() == []
        clock.advance(timedelta(days=10, hours=1).total_seconds())

        async def asked() -> bool:
            return bool(triggers())

        await wait_for(asked)
        assert triggers()[0][1] == {"requested_message": "SignChargingStationCertificate"}

        async def noted() -> bool:  # once the charger's answer is in
            found = await listed(gw, "charger_id=CP-RENEW&expiring_within_days=10")
            return len(found) == 1 and found[0]["renewal_requested_at"] is not None

        await wait_for(noted)
        await asyncio.sleep(0.5)  # more rounds: asked once a day at most
        assert len(triggers()) == 1

        # The charger renews: its new certificate supersedes the old, nobody asks again.
        _, _, answer = await sign_round(cp, "CP-RENEW", org="Any")
        assert answer.status == "Accepted"
        clock.advance(timedelta(days=1, hours=1).total_seconds())
        await asyncio.sleep(0.5)
        assert len(triggers()) == 1


# -- an external CA -----------------------------------------------------------------------------


class ExternalCaServer:
    """A real HTTP CA: signs the CSR it is posted with its own key (the test's CA)."""

    def __init__(self, ca: CertificateAuthority, token: str) -> None:
        self.ca = ca
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.mode = "sign"
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def sign(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        self.requests.append(body)
        if self.mode == "fail":
            return web.json_response({"error": "down"}, status=500)
        csr = x509.load_pem_x509_csr(body["csr"].encode())
        key = (
            csr.public_key()
            if self.mode == "sign"
            else ec.generate_private_key(ec.SECP256R1()).public_key()
        )
        now = datetime.now(UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.ca.cert.subject)
            .public_key(key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=7))
            .sign(self.ca.key, hashes.SHA256())
        )
        chain = leaf.public_bytes(serialization.Encoding.PEM).decode()
        return web.json_response({"certificate_chain": chain})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/sign", self.sign)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/sign"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def external_ca(tmp_path: Path) -> AsyncIterator[ExternalCaServer]:
    server = ExternalCaServer(CertificateAuthority(tmp_path, "V2G Sub CA"), "ca-token-1234")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_an_external_ca_signs_v2g_and_station_certificates(
    gateways: GatewayFactory, external_ca: ExternalCaServer
) -> None:
    gw = await gateways.start(
        certificate_external_ca_url=external_ca.url,
        certificate_external_ca_token="ca-token-1234",
        tls_cn_is_charger_id=True,
    )
    await gw.admin("PUT", "/chargers/CP-EXT", {})
    async with attach(gw.ws_url, "CP-EXT", CertCharger201) as cp:
        _, csr = make_csr("SECC-1", org=None)  # a V2G CN: checked by the V2G PKI
        answer = await cp.call(call201.SignCertificate(csr=csr, certificate_type="V2GCertificate"))
        assert answer.status == "Accepted"
        chain, kind = await asyncio.wait_for(cp.chains.get(), WAIT)
        assert kind == "V2GCertificate"
        leaf = x509.load_pem_x509_certificate(chain.encode())
        leaf.verify_directly_issued_by(external_ca.ca.cert)
        assert external_ca.requests[-1]["charger_id"] == "CP-EXT"
        assert external_ca.requests[-1]["certificate_type"] == "V2GCertificate"
        _, _, answer = await sign_round(cp, "CP-EXT", org=None)
        assert answer.status == "Accepted"

    async def both() -> bool:
        found = await listed(gw, "charger_id=CP-EXT")
        return [c["status"] for c in found] == ["accepted", "accepted"]

    await wait_for(both)
    kinds = {c["kind"] for c in await listed(gw, "charger_id=CP-EXT")}
    assert kinds == {"V2GCertificate", "ChargingStationCertificate"}


async def test_external_ca_failures(external_ca: ExternalCaServer) -> None:
    _, pem = make_csr("SN-1")
    csr = x509.load_pem_x509_csr(pem.encode())
    kind = CertificateKind.CHARGING_STATION
    ca = ExternalCa(external_ca.url, "ca-token-1234", 5)
    try:
        [leaf] = await ca.issue(csr, "CP-1", kind)
        assert leaf.public_key() == csr.public_key()
        external_ca.mode = "fail"
        with pytest.raises(IssueFailed, match="HTTP 500"):
            await ca.issue(csr, "CP-1", kind)
        external_ca.mode = "other-key"
        with pytest.raises(IssueFailed, match="not for the CSR's key"):
            await ca.issue(csr, "CP-1", kind)
    finally:
        await ca.close()
    wrong = ExternalCa(external_ca.url, "wrong-token", 5)
    try:
        with pytest.raises(IssueFailed, match="HTTP 401"):
            await wrong.issue(csr, "CP-1", kind)
    finally:
        await wrong.close()
