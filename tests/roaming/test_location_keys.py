"""The keys a placed charger's status change reads from its stored location template
(``gateway.roaming.catalog._location_keys``): read without pydantic, the same as the
validated model's."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.roaming.catalog import _location_keys
from ocpi.transport import json_loads
from ocpi.v221 import Location

_TEMPLATE = {
    "publish": True,
    "address": "Stationsplein 1",
    "city": "Amsterdam",
    "country": "NLD",
    "coordinates": {"latitude": "52.378900", "longitude": "4.900100"},
    "time_zone": "Europe/Amsterdam",
    "last_updated": "2026-12-05T10:00:00Z",
}
_UPPER = st.characters(min_codepoint=ord("A"), max_codepoint=ord("Z"))
_ID = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@given(
    country=st.text(_UPPER, min_size=2, max_size=2),
    party=st.text(_UPPER, min_size=3, max_size=3),
    location_id=st.text(_ID, min_size=1, max_size=36),
)
def test_the_keys_are_the_validated_templates(country: str, party: str, location_id: str) -> None:
    body = _TEMPLATE | {"country_code": country, "party_id": party, "id": location_id}
    stored = Location.model_validate(body).to_json()  # as the catalog stores it
    model = Location.model_validate(json_loads(stored))
    assert _location_keys(stored) == (model.country_code, model.party_id, model.id)


def test_a_template_orjson_refuses_is_read_by_the_json_module() -> None:
    # orjson refuses a number past a double's range, which the json module reads as a
    # Decimal; such a number elsewhere in the text must not make a status change fail.
    text = json.dumps(_TEMPLATE | {"country_code": "NL", "party_id": "GWY", "id": "L1"})
    text = text[:-1] + ', "x_big": 1e400}'
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)
    assert _location_keys(text) == ("NL", "GWY", "L1")
