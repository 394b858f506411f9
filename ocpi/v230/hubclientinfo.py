"""OCPI 2.3.0 HubClientInfo module objects (mod_hub_client_info.asciidoc)."""

from __future__ import annotations

from ocpi.v230.enums import ConnectionStatus
from ocpi.v230.types import CountryCode, DateTime, OcpiModel, PartyIdStr, Role

__all__ = ["ClientInfo", "ConnectionStatus"]


class ClientInfo(OcpiModel):
    party_id: PartyIdStr
    country_code: CountryCode
    role: Role
    status: ConnectionStatus
    last_updated: DateTime
