"""Issued certificates on SQLite: the ``certificates`` table of the main database
(migration 5 in :mod:`gateway.storage.sqlite`), one row per serial with the columns
the listings sort and filter by, and the record as JSON (:mod:`gateway.storage.certificates`)."""

from __future__ import annotations

from datetime import datetime

from gateway.domain.certificates import CertificateStatus, IssuedCertificate
from gateway.storage import certificates, codec
from gateway.storage.sqlite import _Database, _execute, _fetch_all, _fetch_one

_REVOKED = CertificateStatus.REVOKED.value


class SqliteCertificateStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def put(self, cert: IssuedCertificate) -> None:
        data = codec.dumps(certificates.encode(cert))
        row = (
            cert.serial,
            cert.charger_id,
            codec.time_key(cert.issued_at, "issued_at"),
            codec.time_key(cert.not_after, "not_after"),
            CertificateStatus(cert.status).value,
            data,
        )
        await self._db.write(
            _execute(
                "INSERT INTO certificates (serial, charger_id, issued_at, not_after, status, data)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO UPDATE SET"
                " charger_id = excluded.charger_id, issued_at = excluded.issued_at,"
                " not_after = excluded.not_after, status = excluded.status, data = excluded.data",
                row,
            )
        )

    async def get(self, serial: str) -> IssuedCertificate | None:
        data = await self._db.read(
            _fetch_one("SELECT data FROM certificates WHERE serial = ?", (serial,))
        )
        return None if data is None else certificates.decode(codec.loads(data))

    async def for_charger(self, charger_id: str) -> list[IssuedCertificate]:
        rows = await self._db.read(
            _fetch_all(
                "SELECT data FROM certificates WHERE charger_id = ?"
                " ORDER BY issued_at DESC, serial",
                (charger_id,),
            )
        )
        return [certificates.decode(codec.loads(r)) for r in rows]

    async def expiring(self, before: datetime, *, limit: int = 1000) -> list[IssuedCertificate]:
        codec.check_page(limit, 0)
        rows = await self._db.read(
            _fetch_all(
                "SELECT data FROM certificates WHERE not_after < ? AND status <> ?"
                " ORDER BY not_after, serial LIMIT ?",
                (codec.time_key(before, "before"), _REVOKED, limit),
            )
        )
        return [certificates.decode(codec.loads(r)) for r in rows]
