"""OCPI 2.1.1 credentials (credentials.md) and its Authorization header.

A 2.1.1 credentials object describes ONE party (``party_id``, ``country_code``,
``business_details``); 2.2 replaced these by a ``roles`` list. The token goes in the
``Authorization: Token <token>`` header as it is: 2.1.1 (transport_and_format.md,
"Request format") does not Base64-encode it, 2.2 does.
"""

from __future__ import annotations

from typing import Annotated

from ocpi.transport import encode_authorization
from ocpi.v211.types import (
    ASCII,
    URL,
    BusinessDetails,
    CountryCode,
    Max,
    OcpiModel,
    PartyIdStr,
)

__all__ = ["Credentials", "authorization_header"]


class Credentials(OcpiModel):
    """``token``: string(64); printable non-whitespace ASCII (transport_and_format.md,
    the Authorization header's parameter)."""

    token: Annotated[str, Max(64, min_length=1), ASCII]
    url: URL
    business_details: BusinessDetails
    party_id: PartyIdStr
    country_code: CountryCode


def authorization_header(token: str) -> str:
    """The 2.1.1 ``Authorization`` header value: ``Token <token>``, not encoded."""
    return encode_authorization(token, base64_encode=False)
