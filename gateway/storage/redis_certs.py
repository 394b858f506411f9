"""Issued certificates on Redis (key names: :mod:`gateway.storage.redis_keys`).

One hash holds every record (serial -> JSON); a sorted set orders the serials of the
certificates not revoked by expiry, and one per charger its serials by issue time. A
put is one script (the record and both indexes at once), safe to send again: a repeat
writes the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from gateway.domain.certificates import CertificateStatus, IssuedCertificate
from gateway.storage import certificates, codec
from gateway.storage.redis_batch import CommandBatcher, Script
from gateway.storage.redis_keys import RedisKeys

# KEYS: certs, certs-by-expiry, certs-charger:{charger}. ARGV: serial, JSON, not_after
# (µs), issued_at (µs), "1" when revoked (out of the expiry index) else "0".
_PUT: Final = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
"""
PUT_CERTIFICATE: Final = Script(_PUT)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCertificateStore:
    def __init__(self, db: CommandBatcher, keys: RedisKeys) -> None:
        self._db = db
        self._keys = keys

    async def put(self, cert: IssuedCertificate) -> None:
        data = codec.dumps(certificates.encode(cert))
        keys = self._keys
        revoked = CertificateStatus(cert.status) is CertificateStatus.REVOKED
        await self._db.evalsha(
            PUT_CERTIFICATE,
            [keys.certificates, keys.certificates_by_expiry, keys.certificates_of(cert.charger_id)],
            [
                cert.serial,
                data,
                codec.time_key(cert.not_after, "not_after"),
                codec.time_key(cert.issued_at, "issued_at"),
                "1" if revoked else "0",
            ],
            retry=True,
            guard=(keys.certificates, cert.serial),
        )

    async def get(self, serial: str) -> IssuedCertificate | None:
        data = await self._db.command("HGET", self._keys.certificates, serial, retry=True)
        return None if data is None else certificates.decode(codec.loads(data))

    async def _many(self, serials: list[str]) -> list[IssuedCertificate]:
        if not serials:
            return []
        rows = await self._db.command("HMGET", self._keys.certificates, *serials, retry=True)
        return [certificates.decode(codec.loads(r)) for r in rows if r is not None]

    async def for_charger(self, charger_id: str) -> list[IssuedCertificate]:
        serials = await self._db.command(
            "ZRANGE", self._keys.certificates_of(charger_id), 0, -1, retry=True
        )
        found = await self._many([_text(s) for s in serials])
        # Newest first, equal times by serial (as SQLite orders them).
        found.sort(key=lambda c: c.serial)
        found.sort(key=lambda c: c.issued_at, reverse=True)
        return found

    async def expiring(self, before: datetime, *, limit: int = 1000) -> list[IssuedCertificate]:
        codec.check_page(limit, 0)
        if limit == 0:
            return []
        high = "(" + str(codec.time_key(before, "before"))
        serials = await self._db.command(
            "ZRANGEBYSCORE",
            self._keys.certificates_by_expiry,
            "-inf",
            high,
            "LIMIT",
            0,
            limit,
            retry=True,
        )
        return await self._many([_text(s) for s in serials])
