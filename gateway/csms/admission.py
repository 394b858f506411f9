"""Bounds on unauthenticated WebSocket upgrades per source address.

An upgrade is *authenticated* when the charger proved its identity: the right
Basic auth password (security profiles 1 and 2) or an accepted client
certificate (profile 3). Everything else (a charger configured without a
password, an auto-registered id, an unknown id, a wrong password or a refused
certificate) is unauthenticated and, per source address, bounded twice:

- ``per_minute``: a token bucket of attempts (burst ``per_minute``, refilled at
  ``per_minute`` a minute); refusals, which cost the attacker nothing, count too;
- ``max_open``: connections open at the same time.

Authenticated chargers never take from either bound, so hundreds of chargers
behind one NAT that authenticate are never refused, whatever an unauthenticated
client on the same address does. 0 disables a bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.domain.clock import Clock

# Entries kept at most; idle ones with a full bucket are forgotten first.
_MAX_ADDRESSES = 10_000


@dataclass(slots=True)
class _Entry:
    tokens: float
    at: datetime
    open: int = 0


class UnauthenticatedLimiter:
    def __init__(self, clock: Clock, *, per_minute: int, max_open: int) -> None:
        self._clock = clock
        self.per_minute = per_minute
        self.max_open = max_open
        self._entries: dict[str, _Entry] = {}

    def _entry(self, address: str) -> _Entry:
        now = self._clock.now()
        entry = self._entries.get(address)
        if entry is None:
            if len(self._entries) >= _MAX_ADDRESSES:
                self._prune(now)
            entry = self._entries[address] = _Entry(float(self.per_minute), now)
        elif self.per_minute:
            elapsed = max(0.0, (now - entry.at).total_seconds())
            refill = elapsed * self.per_minute / 60
            entry.tokens = min(float(self.per_minute), entry.tokens + refill)
            entry.at = now
        return entry

    def _prune(self, now: datetime) -> None:
        for address, entry in list(self._entries.items()):
            refilled = entry.tokens + (now - entry.at).total_seconds() * self.per_minute / 60
            if entry.open == 0 and refilled >= self.per_minute:
                del self._entries[address]
        if len(self._entries) >= _MAX_ADDRESSES:
            idle = sorted((e.at, a) for a, e in self._entries.items() if e.open == 0)
            for _, address in idle[: len(self._entries) - _MAX_ADDRESSES + 1]:
                del self._entries[address]

    def attempt(self, address: str) -> bool:
        """Take one unauthenticated attempt for ``address``; False when none is left."""
        if not self.per_minute:
            return True
        entry = self._entry(address)
        if entry.tokens < 1:
            return False
        entry.tokens -= 1
        return True

    def retry_after(self, address: str) -> int:
        """Whole seconds until ``address`` has an attempt again."""
        if not self.per_minute:
            return 0
        entry = self._entry(address)
        missing = max(0.0, 1 - entry.tokens)
        return max(1, int(missing * 60 / self.per_minute + 0.999))

    def open(self, address: str) -> bool:
        """Count one more open unauthenticated connection; False when at the bound."""
        entry = self._entry(address)
        if self.max_open and entry.open >= self.max_open:
            return False
        entry.open += 1
        return True

    def closed(self, address: str) -> None:
        entry = self._entries.get(address)
        if entry is not None and entry.open > 0:
            entry.open -= 1
