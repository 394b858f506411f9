"""OCPI 2.3.0 Credentials module objects (credentials.asciidoc).

New in 2.3.0: ``hub_party_id``, the country code and party id of the platform's Hub party
written together as one CiString(5) (``"NLHUB"``); a Hub platform lists the parties it
reaches in ``roles`` (2.2.1 had a ``HUB`` role and reported them in HubClientInfo only).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ocpi.v230.types import (
    ASCII,
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
    hub_party_id: Annotated[str, Max(5, min_length=5), ASCII] | None = None
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]

    def hub_party(self) -> tuple[str, str] | None:
        """``(country_code, party_id)`` of the Hub party, or None."""
        if self.hub_party_id is None:
            return None
        return self.hub_party_id[:2], self.hub_party_id[2:]
