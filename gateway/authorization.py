"""The operator's local token list as an :class:`~gateway.domain.authorization.Authorizer`."""

from __future__ import annotations

from gateway.domain.clock import Clock
from gateway.domain.models import AuthorizationResult, AuthorizationStatus, IdToken
from gateway.storage.base import TokenStore


class LocalListAuthorizer:
    def __init__(self, tokens: TokenStore, clock: Clock) -> None:
        self._tokens = tokens
        self._clock = clock

    async def authorize(
        self, token: IdToken, *, charger_id: str, evse_id: int | None
    ) -> AuthorizationResult:
        local = await self._tokens.get(token.uid)
        if local is None:
            return AuthorizationResult(AuthorizationStatus.UNKNOWN, source="local")
        if not local.valid:
            status = AuthorizationStatus.BLOCKED
        elif local.expiry is not None and local.expiry <= self._clock.now():
            status = AuthorizationStatus.EXPIRED
        else:
            status = AuthorizationStatus.ACCEPTED
        return AuthorizationResult(
            status, expiry=local.expiry, parent_id=local.parent_id, source="local"
        )
