"""The domain's exception tree; translated to protocol errors only at the edges."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises."""


class NotFound(DomainError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(DomainError):
    """The request contradicts the current state."""


class ChargerNotConnected(Conflict):
    def __init__(self, charger_id: str) -> None:
        super().__init__(f"charger {charger_id!r} is not connected")
        self.charger_id = charger_id


class CommandNotSupported(DomainError):
    """The charger's OCPP version has no equivalent for the command."""


class ChargerTimeout(DomainError):
    """The charger did not answer a call in time."""


class ChargerRejected(DomainError):
    """The charger answered with a CALLERROR."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class Unavailable(Exception):
    """Something the domain depends on (its storage) is out for a while: an outage, not
    a bug. Whoever catches it logs one line, without a traceback; the work is retried."""
