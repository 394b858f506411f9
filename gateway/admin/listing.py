"""Filtering and paging of ``GET /admin/chargers`` (the dashboard's charger list).

``q`` is a case-insensitive substring of the charger's id, location, serial number,
vendor, model or firmware; ``connected`` and ``ocpp_version`` filter on the live state.
``limit``/``offset`` page the matches (ordered by id); without ``limit`` every match is
answered, as before paging existed. ``X-Total-Count`` counts the matches.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.admin.schemas import _Body
from gateway.domain.models import Charger, ChargerState


class ChargerQuery(_Body):
    q: str | None = Field(default=None, min_length=1, max_length=100)
    connected: bool | None = None
    ocpp_version: Literal["1.6", "2.0.1", "2.1"] | None = None
    limit: int | None = Field(default=None, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)

    def matches(self, charger: Charger, state: ChargerState | None) -> bool:
        connected = bool(state and state.connected)
        if self.connected is not None and connected != self.connected:
            return False
        if self.ocpp_version is not None and (
            state is None or state.ocpp_version != self.ocpp_version
        ):
            return False
        if self.q is None:
            return True
        needle = self.q.casefold()
        fields = [charger.id, charger.location_id, charger.certificate_cn]
        if state is not None:
            fields += [state.vendor, state.model, state.firmware_version, state.serial_number]
        return any(needle in f.casefold() for f in fields if f)
