"""OCPI 2.1.1 Tokens module objects (mod_tokens.md).

Compared with 2.2.1: ``auth_id`` (2.2 renamed it ``contract_id``), TokenType only
``OTHER``/``RFID``, no ``country_code``/``party_id``/``group_id``/
``default_profile_type``/``energy_contract``; the real-time authorization answer
(AuthorizationInfo) carries no Token and no ``authorization_reference``, and its
LocationReferences may list ``connector_ids`` (2.2 removed them).
"""

from __future__ import annotations

from typing import Annotated

from ocpi.v211.enums import Allowed, TokenType, WhitelistType
from ocpi.v211.types import (
    Bool,
    DateTime,
    DisplayText,
    Id36,
    Id39,
    LanguageCode,
    Max,
    OcpiModel,
    OcpiPatch,
)

__all__ = [
    "Allowed",
    "AuthorizationInfo",
    "LocationReferences",
    "Token",
    "TokenPatch",
    "TokenType",
    "WhitelistType",
]


class LocationReferences(OcpiModel):
    location_id: Id39
    evse_uids: list[Id39] | None = None
    connector_ids: list[Id36] | None = None


class AuthorizationInfo(OcpiModel):
    """The answer of a real-time authorization (POST tokens/{token_uid}/authorize)."""

    allowed: Allowed
    location: LocationReferences | None = None
    info: DisplayText | None = None


class Token(OcpiModel):
    """mod_tokens 3.2: "The combination of uid and type should be unique for every
    token within the eMSP's system"."""

    uid: Id36
    type: TokenType
    auth_id: Id36
    visual_number: Annotated[str, Max(64)] | None = None
    issuer: Annotated[str, Max(64)]
    valid: Bool
    whitelist: WhitelistType
    language: LanguageCode | None = None
    last_updated: DateTime


class TokenPatch(OcpiPatch):
    """mod_tokens 2.1.2 PATCH: only the fields that change."""

    uid: Id36 | None = None
    type: TokenType | None = None
    auth_id: Id36 | None = None
    visual_number: Annotated[str, Max(64)] | None = None
    issuer: Annotated[str, Max(64)] | None = None
    valid: Bool | None = None
    whitelist: WhitelistType | None = None
    language: LanguageCode | None = None
