"""OCPI 2.3.0 version information objects (version_information_endpoint.asciidoc)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ocpi.v230.enums import (
    InterfaceRole,
    ModuleID,
    ModuleIDValue,
    VersionNumber,
    VersionNumberValue,
)
from ocpi.v230.types import URL, OcpiModel

__all__ = ["Endpoint", "InterfaceRole", "ModuleID", "Version", "VersionDetails", "VersionNumber"]


class Version(OcpiModel):
    version: VersionNumberValue
    url: URL


class Endpoint(OcpiModel):
    identifier: ModuleIDValue
    role: InterfaceRole
    url: URL


class VersionDetails(OcpiModel):
    version: VersionNumberValue
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]
