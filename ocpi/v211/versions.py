"""OCPI 2.1.1 version information objects (version_information_endpoint.md): an
Endpoint has no ``role`` (2.2 added it)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ocpi.v211.enums import ModuleID, ModuleIDValue, VersionNumber, VersionNumberValue
from ocpi.v211.types import URL, OcpiModel

__all__ = ["Endpoint", "ModuleID", "Version", "VersionDetails", "VersionNumber"]


class Version(OcpiModel):
    version: VersionNumberValue
    url: URL


class Endpoint(OcpiModel):
    identifier: ModuleIDValue
    url: URL


class VersionDetails(OcpiModel):
    version: VersionNumberValue
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]
