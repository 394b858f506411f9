"""The issued certificates contract (``CertificateStore``), on both backends: round trip,
replace by serial, per charger newest first, expiring soonest first without the revoked
ones, reopen, and records no reader could use refused before anything is written."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain.certificates import (
    CertificateKind,
    CertificateStatus,
    IssuedCertificate,
    serial_hex,
)
from gateway.storage.base import Store
from gateway.storage.codec import NaiveDatetimeError
from tests.storage.conftest import StoreFactory

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def cert(
    serial: int, charger: str = "CP-1", *, issued: float = 0, days: float = 365
) -> IssuedCertificate:
    return IssuedCertificate(
        serial=serial_hex(serial),
        charger_id=charger,
        subject=f"CN=SN-{charger},O=Example CPO",
        issuer="CN=Example CA",
        not_before=T0 + timedelta(days=issued),
        not_after=T0 + timedelta(days=issued + days),
        fingerprint=f"{serial:064x}",
        issued_at=T0 + timedelta(days=issued),
        pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )


async def test_round_trip_and_replace_by_serial(store: Store) -> None:
    first = cert(0xABC)
    await store.certificates.put(first)
    assert await store.certificates.get("abc") == first
    assert await store.certificates.get("abd") is None
    answered = replace(
        first,
        status=CertificateStatus.ACCEPTED,
        answer="Accepted",
        answered_at=T0 + timedelta(seconds=3),
        renewal_requested_at=T0 + timedelta(days=300),
        kind=CertificateKind.V2G,
    )
    await store.certificates.put(answered)
    got = await store.certificates.get("abc")
    assert got == answered
    assert got is not None and got.answered_at is not None and got.answered_at.tzinfo is not None
    assert await store.certificates.for_charger("CP-1") == [answered]


async def test_for_charger_newest_first_ties_by_serial(store: Store) -> None:
    older, tie_b, tie_a = cert(0x10, issued=0), cert(0xB, issued=5), cert(0xA, issued=5)
    await store.certificates.put(older)
    await store.certificates.put(tie_b)
    await store.certificates.put(tie_a)
    await store.certificates.put(cert(0x99, "CP-2", issued=9))
    assert await store.certificates.for_charger("CP-1") == [tie_a, tie_b, older]
    assert [c.serial for c in await store.certificates.for_charger("CP-2")] == ["99"]
    assert await store.certificates.for_charger("CP-3") == []


async def test_expiring_soonest_first_without_the_revoked(store: Store) -> None:
    soon, later, far = cert(1, days=10), cert(2, "CP-2", days=20), cert(3, days=400)
    tie = cert(0x20, "CP-3", days=20)
    for c in (far, later, soon, tie):
        await store.certificates.put(c)
    certs = store.certificates
    # Equal times by serial as text: "2" before "20".
    assert await certs.expiring(T0 + timedelta(days=30)) == [soon, later, tie]
    # not_after < before: one expiring at the bound is not in.
    assert await certs.expiring(T0 + timedelta(days=10)) == []
    assert await certs.expiring(T0 + timedelta(days=30), limit=1) == [soon]
    assert await certs.expiring(T0 + timedelta(days=30), limit=0) == []
    revoked = replace(soon, status=CertificateStatus.REVOKED, revoked_at=T0)
    await certs.put(revoked)
    assert await certs.expiring(T0 + timedelta(days=30)) == [later, tie]
    assert await certs.get(soon.serial) == revoked  # kept, revoked
    # Put back (an operator's mistake undone by a new record): in the index again.
    await certs.put(replace(revoked, status=CertificateStatus.ACCEPTED))
    assert [c.serial for c in await certs.expiring(T0 + timedelta(days=30))] == ["1", "2", "20"]
    with pytest.raises(ValueError, match="limit"):
        await certs.expiring(T0, limit=-1)


async def test_kept_across_reopen(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.certificates.put(cert(7))
    await store.close()
    again = await store_factory()
    assert await again.certificates.get("7") == cert(7)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"serial": "0ab"}, ValueError),
        ({"serial": "AB"}, ValueError),
        ({"serial": "xyz"}, ValueError),
        ({"serial": ""}, ValueError),
        ({"charger_id": ""}, ValueError),
        ({"status": "lost"}, ValueError),
        ({"not_after": datetime(2027, 1, 1)}, NaiveDatetimeError),
        ({"answered_at": datetime(2027, 1, 1)}, NaiveDatetimeError),
    ],
)
async def test_unusable_records_are_refused(
    store: Store, change: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.certificates.put(replace(cert(5), **change))  # type: ignore[arg-type]
    assert await store.certificates.get("5") is None
    assert await store.certificates.get(str(change.get("serial", "5"))) is None
