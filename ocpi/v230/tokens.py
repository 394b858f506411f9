"""OCPI 2.3.0 Tokens module objects (mod_tokens.asciidoc)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from ocpi.v230.enums import AllowedType, ProfileType, TokenType, TokenTypeValue, WhitelistType
from ocpi.v230.types import (
    Bool,
    CiString36,
    CountryCode,
    DateTime,
    DisplayText,
    LanguageCode,
    Max,
    OcpiModel,
    OcpiPatch,
    PartyIdStr,
)

__all__ = [
    "AllowedType",
    "AuthorizationInfo",
    "EnergyContract",
    "LocationReferences",
    "Token",
    "TokenPatch",
    "TokenType",
    "WhitelistType",
]


class EnergyContract(OcpiModel):
    supplier_name: Annotated[str, Max(64)]
    contract_id: Annotated[str, Max(64)] | None = None


class LocationReferences(OcpiModel):
    location_id: CiString36
    evse_uids: list[CiString36] | None = None


class Token(OcpiModel):
    """A token (RFID card, app user...) of an eMSP; identified by country_code,
    party_id, uid and type."""

    country_code: CountryCode
    party_id: PartyIdStr
    uid: CiString36
    type: TokenTypeValue
    contract_id: CiString36
    visual_number: Annotated[str, Max(64)] | None = None
    issuer: Annotated[str, Max(64)]
    group_id: CiString36 | None = None
    valid: Bool
    whitelist: WhitelistType
    language: LanguageCode | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class TokenPatch(OcpiPatch):
    identity_fields: ClassVar[tuple[str, ...]] = ("country_code", "party_id", "uid", "type")

    country_code: CountryCode | None = None
    party_id: PartyIdStr | None = None
    uid: CiString36 | None = None
    type: TokenTypeValue | None = None
    contract_id: CiString36 | None = None
    visual_number: Annotated[str, Max(64)] | None = None
    issuer: Annotated[str, Max(64)] | None = None
    group_id: CiString36 | None = None
    valid: Bool | None = None
    whitelist: WhitelistType | None = None
    language: LanguageCode | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None


class AuthorizationInfo(OcpiModel):
    """The answer of a real-time authorization (POST tokens/{uid}/authorize)."""

    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString36 | None = None
    info: DisplayText | None = None
