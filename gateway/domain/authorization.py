"""How the central system asks whether a token may charge.

The roaming side adds partner tokens and real-time authorization by providing
another :class:`Authorizer` that the composition root chains in front of or
behind the local list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.domain.models import AuthorizationResult, AuthorizationStatus, IdToken


class Authorizer(Protocol):
    async def authorize(
        self, token: IdToken, *, charger_id: str, evse_id: int | None
    ) -> AuthorizationResult:
        """Decide for ``token``; UNKNOWN means "not mine, ask someone else"."""
        ...


class ChainAuthorizer:
    """Asks each authorizer in turn; the first answer other than UNKNOWN wins."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self._authorizers = list(authorizers)

    def add(self, authorizer: Authorizer) -> None:
        self._authorizers.append(authorizer)

    async def authorize(
        self, token: IdToken, *, charger_id: str, evse_id: int | None
    ) -> AuthorizationResult:
        for authorizer in self._authorizers:
            result = await authorizer.authorize(token, charger_id=charger_id, evse_id=evse_id)
            if result.status is not AuthorizationStatus.UNKNOWN:
                return result
        # Nobody knows the token: to a charger that is Invalid (OCPP has no Unknown).
        return AuthorizationResult(AuthorizationStatus.INVALID, source="none")
