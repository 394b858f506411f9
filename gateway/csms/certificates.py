"""Charger certificates for security profile 3: the checks of a charger's CSR, the CA
that signs it, the record of what was issued, renewal before expiry and revocation.

OCPP 1.6 security whitepaper (edition 3) A02/A03 and OCPP 2.0.1 A02/A03: the charger
sends SignCertificate with a CSR (RFC 2986, PEM); the central system answers Accepted
when it can process it, has it signed, and sends the chain (PEM, leaf first, sub-CA
certificates after it) in CertificateSigned; the charger answers whether it took it.

A CSR is accepted when it parses, its signature verifies with its own key, the key is
RSA of 2048 bits or more or EC on P-256 or P-384, it is signed with SHA-256 or better,
its subject CN is the charger's expected identity (the serial number configured for it,
2.0.1 A00.FR.404; or the charge point id with ``GATEWAY_TLS_CN_IS_CHARGER_ID``: the same
rule the profile-3 TLS check applies, so the certificate issued is one the gateway then
accepts) and, when the operator set one, its O is the operator's organization (2.0.1
A00.FR.403 OrganizationName; 1.6: the CpoName configuration key). ISO 15118 (V2G)
certificates chain to a V2G root the operator's own CA is not: they go to the external
CA only.

Signing: the operator's CA (certificate and key files) with ``cryptography``, or an
external CA over HTTP (:class:`ExternalCa`: POST the CSR as JSON, the chain back).

Imports: ``gateway.domain``, ``gateway.storage``, ``cryptography``, ``aiohttp`` (the
external CA's client).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.domain.certificates import (
    CertificateKind,
    CertificateStatus,
    IssuedCertificate,
    serial_hex,
)
from gateway.domain.clock import Clock
from gateway.domain.commands import CertificateSigned, CommandSender, TriggerCertificateSigning
from gateway.domain.errors import ChargerNotConnected, DomainError
from gateway.domain.models import Charger
from gateway.storage.base import CertificateStore, StorageError, Store

log = logging.getLogger(__name__)

# RSA keys below this many bits are refused (NIST SP 800-57: 2048 until 2030).
MIN_RSA_BITS = 2048
# The curves 2.0.1 A00 names for the charger's key (secp256r1, secp384r1).
CURVES = frozenset({"secp256r1", "secp384r1"})
_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
# A certificate starts this long before it is issued: a charger whose clock is a little
# behind would otherwise refuse it as not yet valid.
BACKDATE = timedelta(hours=1)
# CertificateSigned certificateChain: string(10000) in both versions.
MAX_CHAIN = 10_000
# A charger asked to renew that sent no CSR is asked again after this long.
RENEWAL_RETRY = timedelta(hours=24)


class CsrRefused(Exception):
    """The CSR is not one the gateway has signed: the reason, for the log and the answer."""


class IssueFailed(Exception):
    """The CA did not issue a certificate (unreachable, refused, or a chain that does not
    fit the CSR)."""


def expected_cn(charger: Charger | None, cn_is_charger_id: bool) -> str | None:
    """The CN a charger's certificate must carry (profile 3): its configured serial number,
    or its id with ``GATEWAY_TLS_CN_IS_CHARGER_ID``; None: it cannot be identified."""
    if charger is None:
        return None
    return charger.certificate_cn or (charger.id if cn_is_charger_id else None)


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None  # none, or several (which one would a TLS peer trust?)
    value = values[0].value
    return value if isinstance(value, str) else value.decode(errors="replace")


def check_csr(
    pem: str, *, expected: str | None, organization: str | None
) -> x509.CertificateSigningRequest:
    """The parsed CSR when it passes every check (module docstring); :class:`CsrRefused`
    with the reason otherwise. ``expected``: the CN it must carry, None to skip that check
    (V2G certificates: the external CA checks them)."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise CsrRefused("not a PEM certificate signing request") from None
    try:
        key = csr.public_key()
        signed_ok = csr.is_signature_valid
        digest = csr.signature_hash_algorithm
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType) as exc:
        raise CsrRefused(f"unreadable CSR: {exc}") from None
    except InvalidSignature:
        signed_ok = False
    if not signed_ok:
        raise CsrRefused("the CSR's signature does not verify with its key")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRefused(f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS})")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in CURVES:
            raise CsrRefused(f"EC key on {key.curve.name} (P-256 or P-384 only)")
    else:
        raise CsrRefused(f"{type(key).__name__.removeprefix('_')} keys are not accepted")
    if not isinstance(digest, _HASHES):
        name = digest.name if digest is not None else "none"
        raise CsrRefused(f"CSR signed with {name} (SHA-256 or better)")
    cn = _attribute(csr.subject, NameOID.COMMON_NAME)
    if cn is None:
        raise CsrRefused("the subject has no single CN")
    if expected is not None and cn != expected:
        raise CsrRefused(f"subject CN {cn[:64]!r} is not this charger's identity")
    if organization is not None:
        org = _attribute(csr.subject, NameOID.ORGANIZATION_NAME)
        if org != organization:
            raise CsrRefused(f"subject O {(org or '')[:64]!r} is not {organization!r}")
    return csr


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _spki(key: Any) -> bytes:
    """A public key as DER SubjectPublicKeyInfo (to compare two keys of any type)."""
    data: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def record_of(
    leaf: x509.Certificate, charger_id: str, kind: CertificateKind, now: datetime
) -> IssuedCertificate:
    return IssuedCertificate(
        serial=serial_hex(leaf.serial_number),
        charger_id=charger_id,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint=fingerprint(leaf),
        issued_at=now,
        kind=kind,
        pem=leaf.public_bytes(serialization.Encoding.PEM).decode(),
    )


def chain_pem(chain: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)


# -- certificate authorities -------------------------------------------------------------


class CertificateIssuer(Protocol):
    """Signs a checked CSR: the chain, leaf first (no self-signed root)."""

    def handles(self, kind: CertificateKind) -> bool: ...

    async def issue(
        self, csr: x509.CertificateSigningRequest, charger_id: str, kind: CertificateKind
    ) -> list[x509.Certificate]: ...

    async def close(self) -> None: ...


CaKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class LocalCa:
    """The operator's CA: its certificate (followed by its own chain, if it is a sub-CA)
    and key, in PEM files. Signs charging station certificates only."""

    def __init__(
        self, chain: list[x509.Certificate], key: CaKey, validity: timedelta, clock: Clock
    ) -> None:
        self.chain = chain
        self.key = key
        self.validity = validity
        self.clock = clock

    @classmethod
    def load(cls, cert: Path, key: Path, validity_days: int, clock: Clock) -> LocalCa:
        """``ValueError`` with what is wrong (unreadable, not a CA, key and certificate
        that do not belong together)."""
        try:
            chain = x509.load_pem_x509_certificates(cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{cert}: not a PEM certificate: {exc}") from None
        try:
            private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{key}: not an unencrypted PEM private key: {exc}") from None
        if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key}: an RSA or EC key is needed")
        ca = chain[0]
        if _spki(private.public_key()) != _spki(ca.public_key()):
            raise ValueError(f"{key} is not the key of {cert}")
        try:
            constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise ValueError(f"{cert} is not a CA certificate (basicConstraints CA:TRUE)")
        return cls(chain, private, timedelta(days=validity_days), clock)

    def handles(self, kind: CertificateKind) -> bool:
        return kind is CertificateKind.CHARGING_STATION

    def sign(self, csr: x509.CertificateSigningRequest) -> list[x509.Certificate]:
        ca = self.chain[0]
        now = self.clock.now()
        not_after = min(now + self.validity, ca.not_valid_after_utc)
        public = csr.public_key()
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise IssueFailed("unsupported key type")  # check_csr refused it already
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            # TLS with an RSA key may encipher the pre-master secret; ECDHE uses the EC
            # key for key agreement.
            key_encipherment=isinstance(public, rsa.RSAPublicKey),
            data_encipherment=False,
            key_agreement=isinstance(public, ec.EllipticCurvePublicKey),
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        digest: hashes.SHA256 | hashes.SHA384 = hashes.SHA256()
        if isinstance(self.key, ec.EllipticCurvePrivateKey) and self.key.curve.key_size > 256:
            digest = hashes.SHA384()
        leaf = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, digest)
        )
        return [leaf, *(c for c in self.chain if not _self_signed(c))]

    async def issue(
        self, csr: x509.CertificateSigningRequest, charger_id: str, kind: CertificateKind
    ) -> list[x509.Certificate]:
        # Off the event loop: an RSA-4096 CA key takes a few milliseconds per signature.
        return await asyncio.to_thread(self.sign, csr)

    async def close(self) -> None:
        return None


class ExternalCa:
    """An external CA behind a small HTTP interface (README "Certificates").

    ``POST {url}`` with ``{"csr": PEM, "charger_id": ..., "certificate_type": ...}`` (and
    ``Authorization: Bearer {token}`` when one is set); a 200 answer is
    ``{"certificate_chain": PEM}``, leaf first. Anything else is a failure. The chain is
    checked: its leaf carries the CSR's key and subject CN."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def handles(self, kind: CertificateKind) -> bool:
        return True

    async def issue(
        self, csr: x509.CertificateSigningRequest, charger_id: str, kind: CertificateKind
    ) -> list[x509.Certificate]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = {
            "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
            "charger_id": charger_id,
            "certificate_type": kind.value,
        }
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self._session.post(self.url, json=body, headers=headers) as resp:
                if resp.status != 200:
                    raise IssueFailed(f"the external CA answered HTTP {resp.status}")
                answer = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise IssueFailed(f"the external CA failed: {exc or type(exc).__name__}") from None
        text = answer.get("certificate_chain") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise IssueFailed("the external CA's answer has no certificate_chain")
        try:
            chain = x509.load_pem_x509_certificates(text.encode())
        except ValueError:
            raise IssueFailed("the external CA's certificate_chain is not PEM") from None
        leaf = chain[0]
        if _spki(leaf.public_key()) != _spki(csr.public_key()):
            raise IssueFailed("the external CA's certificate is not for the CSR's key")
        if _attribute(leaf.subject, NameOID.COMMON_NAME) != _attribute(
            csr.subject, NameOID.COMMON_NAME
        ):
            raise IssueFailed("the external CA's certificate has another CN than the CSR")
        return [c for c in chain if not _self_signed(c) or c is leaf]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# -- the service ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignAnswer:
    """The answer to a SignCertificate: accepted, or the reason it was not."""

    accepted: bool
    reason: str | None = None
    code: str | None = None  # 2.0.1 statusInfo reasonCode (at most 20 characters)


class CertificateService:
    """SignCertificate, CertificateSigned and its answer, renewal and revocation.

    ``issuers``: the operator's CA and/or the external one, asked in that order (the first
    that handles the certificate's kind signs it). ``sender``: how CertificateSigned
    reaches the charger (the central system: the charger is connected to this process,
    it just sent its CSR here)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        issuers: list[CertificateIssuer],
        *,
        organization: str | None,
        cn_is_charger_id: bool,
        renew_before: timedelta,
    ) -> None:
        self.store = store
        self.certificates: CertificateStore = store.certificates
        self.clock = clock
        self.issuers = issuers
        self.organization = organization
        self.cn_is_charger_id = cn_is_charger_id
        self.renew_before = renew_before
        self.sender: CommandSender | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _issuer(self, kind: CertificateKind) -> CertificateIssuer | None:
        return next((i for i in self.issuers if i.handles(kind)), None)

    async def sign_request(self, charger_id: str, pem: str, kind: CertificateKind) -> SignAnswer:
        """Check a charger's CSR; when accepted, have it signed and the chain sent (in the
        background, after the answer: the connection holds its CALLs until then)."""
        issuer = self._issuer(kind)
        if issuer is None:
            reason = f"no certificate authority configured for {kind.value}"
            log.warning("charger %s: SignCertificate rejected: %s", charger_id, reason)
            return SignAnswer(False, reason, "NotConfigured")
        expected = None
        if kind is CertificateKind.CHARGING_STATION:
            charger = await self.store.chargers.get(charger_id)
            expected = expected_cn(charger, self.cn_is_charger_id)
            if expected is None:
                reason = "no serial number configured for this charger (its certificate's CN)"
                log.warning("charger %s: SignCertificate rejected: %s", charger_id, reason)
                return SignAnswer(False, reason, "InvalidCSR")
        try:
            csr = check_csr(pem, expected=expected, organization=self.organization)
        except CsrRefused as exc:
            log.warning("charger %s: SignCertificate rejected: %s", charger_id, exc)
            return SignAnswer(False, str(exc), "InvalidCSR")
        log.info("charger %s: CSR for a %s accepted", charger_id, kind.value)
        task = asyncio.create_task(self._issue_and_send(issuer, csr, charger_id, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return SignAnswer(True)

    async def _issue_and_send(
        self,
        issuer: CertificateIssuer,
        csr: x509.CertificateSigningRequest,
        charger_id: str,
        kind: CertificateKind,
    ) -> None:
        try:
            chain = await issuer.issue(csr, charger_id, kind)
        except IssueFailed as exc:
            log.warning("charger %s: no certificate issued: %s", charger_id, exc)
            return
        except Exception:
            log.exception("charger %s: the certificate authority failed", charger_id)
            return
        record = record_of(chain[0], charger_id, kind, self.clock.now())
        text = chain_pem(chain)
        try:
            await self.certificates.put(record)
            if len(text) > MAX_CHAIN:
                raise IssueFailed(f"the chain is {len(text)} characters (at most {MAX_CHAIN})")
            if self.sender is None:
                raise IssueFailed("no way to reach chargers")
            result = await self.sender.send(charger_id, CertificateSigned(text, kind))
        except (DomainError, IssueFailed, StorageError) as exc:
            log.warning(
                "charger %s: certificate %s not delivered: %s", charger_id, record.serial, exc
            )
            await self._answered(replace(record, answer=f"not delivered: {exc}"[:200]))
            return
        status = result.data.get("status")
        info = result.data.get("statusInfo")
        answer = str(status)
        if isinstance(info, dict) and info.get("reasonCode"):
            answer += f" ({info['reasonCode']})"
        accepted = status == "Accepted"
        log.info(
            "charger %s: certificate %s %s",
            charger_id,
            record.serial,
            "installed" if accepted else f"refused: {answer}",
        )
        await self._answered(
            replace(
                record,
                status=CertificateStatus.ACCEPTED if accepted else CertificateStatus.REJECTED,
                answer=answer,
                answered_at=self.clock.now(),
            )
        )

    async def _answered(self, record: IssuedCertificate) -> None:
        try:
            await self.certificates.put(record)
        except StorageError as exc:
            log.warning("certificate %s: answer not recorded: %s", record.serial, exc)

    # -- revocation ---------------------------------------------------------------------

    async def revoke(self, serial: str) -> IssuedCertificate | None:
        """Revoke a certificate the gateway issued (again: no change); None when unknown."""
        cert = await self.certificates.get(serial)
        if cert is None or cert.status is CertificateStatus.REVOKED:
            return cert
        revoked = replace(cert, status=CertificateStatus.REVOKED, revoked_at=self.clock.now())
        await self.certificates.put(revoked)
        log.warning("certificate %s of charger %s revoked", serial, cert.charger_id)
        return revoked

    # -- renewal ------------------------------------------------------------------------

    async def renew_due(self, sender: CommandSender) -> list[str]:
        """One round: each charger whose certificate in use expires within
        ``renew_before`` (and has no newer one) is asked for a new CSR, unless it was
        asked within RENEWAL_RETRY. Answers the charger ids asked."""
        now = self.clock.now()
        asked: list[str] = []
        for cert in await self.certificates.expiring(now + self.renew_before):
            if cert.status not in (CertificateStatus.ACCEPTED, CertificateStatus.ISSUED):
                continue
            last = cert.renewal_requested_at
            if last is not None and now - last < RENEWAL_RETRY:
                continue
            if await self._superseded(cert):
                continue
            try:
                result = await sender.send(cert.charger_id, TriggerCertificateSigning(cert.kind))
            except ChargerNotConnected:
                continue  # asked when it is back (the next round after it reconnects)
            except DomainError as exc:
                log.info("charger %s: renewal not asked: %s", cert.charger_id, exc)
                continue
            log.info(
                "charger %s: certificate %s expires %s; renewal asked (%s)",
                cert.charger_id,
                cert.serial,
                cert.not_after.isoformat(),
                result.data.get("status"),
            )
            await self.certificates.put(replace(cert, renewal_requested_at=now))
            asked.append(cert.charger_id)
        return asked

    async def _superseded(self, cert: IssuedCertificate) -> bool:
        """A newer certificate of the same kind was issued to the charger (and neither
        refused nor revoked): that one is in use, or about to be."""
        for other in await self.certificates.for_charger(cert.charger_id):
            if (
                other.serial != cert.serial
                and other.kind is cert.kind
                and other.not_after > cert.not_after
                and other.status not in (CertificateStatus.REJECTED, CertificateStatus.REVOKED)
            ):
                return True
        return False

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for issuer in self.issuers:
            await issuer.close()


async def renew_forever(service: CertificateService, sender: CommandSender, every: float) -> None:
    """The "certificates" lease's job: a renewal round now, then every ``every`` seconds."""
    while True:
        try:
            await service.renew_due(sender)
        except StorageError as exc:
            log.warning("certificate renewal round skipped: %s", exc)
        await asyncio.sleep(every)


async def revocation_of(certificates: CertificateStore, der: bytes) -> IssuedCertificate | None:
    """The stored record of a TLS peer's certificate when the gateway issued it and it is
    revoked; None otherwise (another CA's, or not revoked)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    record = await certificates.get(serial_hex(cert.serial_number))
    if record is None or record.fingerprint != fingerprint(cert):
        return None  # a certificate of another CA with the same serial number
    return record if record.status is CertificateStatus.REVOKED else None
