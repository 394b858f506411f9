"""OCPI 2.2.1 Credentials module objects (credentials.asciidoc)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ocpi.v221.types import (
    URL,
    BusinessDetails,
    CountryCode,
    Max,
    OcpiModel,
    PartyIdStr,
    Role,
)

__all__ = ["Credentials", "CredentialsRole", "Role"]


class CredentialsRole(OcpiModel):
    role: Role
    business_details: BusinessDetails
    party_id: PartyIdStr
    country_code: CountryCode


class Credentials(OcpiModel):
    """``token`` should hold printable non-whitespace ASCII only (U+0021 to U+007E)."""

    token: Annotated[str, Max(64)]
    url: URL
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]
