"""The admin API's locations as a new operator meets them: an OCPI Location as a partner
would send it is accepted, error paths name the field once, and a charger can only be
bound to a location that exists."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import Gateway
from tests.ocpi.openapi import validate_against_openapi

CONNECTOR = {
    "id": "1",
    "standard": "IEC_62196_T2",
    "format": "SOCKET",
    "power_type": "AC_3_PHASE",
    "max_voltage": 230,
    "max_amperage": 32,
    "last_updated": "2019-01-01T00:00:00Z",
}
# As an eMSP would get it from a CPO (mod_locations Location object).
PARTNER_LOCATION: dict[str, Any] = {
    "country_code": "ZZ",
    "party_id": "GWY",
    "id": "LOC-P",
    "publish": True,
    "name": "Depot Zuid",
    "address": "Stationsplein 2",
    "city": "Utrecht",
    "postal_code": "3511ED",
    "country": "NLD",
    "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
    "time_zone": "Europe/Amsterdam",
    "evses": [
        {
            "uid": "CPP-1",
            "evse_id": "ZZ*GWY*EWHATEVER",
            "status": "AVAILABLE",
            "capabilities": ["RFID_READER"],
            "floor_level": "2",
            "connectors": [CONNECTOR],
            "last_updated": "2019-01-01T00:00:00Z",
        }
    ],
    "last_updated": "2019-01-01T00:00:00Z",
}


async def test_an_ocpi_location_as_a_partner_sends_it(gateway: Gateway) -> None:
    status, location = await gateway.admin("PUT", "/locations/LOC-P", PARTNER_LOCATION)
    assert status == 201, location
    assert location["id"] == "LOC-P"
    assert location["last_updated"] != "2019-01-01T00:00:00Z"  # the PUT's time
    assert location.get("evses", []) == []  # no charger bound yet
    status, charger = await gateway.admin(
        "PUT",
        "/chargers/CPP",
        {"location_id": "LOC-P", "evses": [{"ocpp_id": 1, "evse_uid": "CPP-1", "evse_id": "ZZ*GWY*E1"}]},
    )
    assert status == 201, charger
    status, location = await gateway.admin("GET", "/locations/LOC-P")
    assert status == 200
    validate_against_openapi("locations", "Location", location)
    (evse,) = location["evses"]
    # uid and evse_id from the charger, status from OCPP (never connected), the rest from
    # the body's EVSE.
    assert (evse["uid"], evse["evse_id"], evse["status"]) == ("CPP-1", "ZZ*GWY*E1", "UNKNOWN")
    assert evse["capabilities"] == ["RFID_READER"] and evse["floor_level"] == "2"
    assert [c["max_amperage"] for c in evse["connectors"]] == [32]
    assert evse["connectors"][0]["last_updated"] != "2019-01-01T00:00:00Z"
    # A second PUT of the same body replaces it (200).
    status, _ = await gateway.admin("PUT", "/locations/LOC-P", PARTNER_LOCATION)
    assert status == 200


async def test_the_id_in_the_body_must_be_the_paths(gateway: Gateway) -> None:
    status, body = await gateway.admin("PUT", "/locations/OTHER", PARTNER_LOCATION)
    assert status == 422
    assert body["field"] == "id" and "LOC-P" in body["error"] and "OTHER" in body["error"]
    assert (await gateway.admin("GET", "/locations/OTHER"))[0] == 404


async def test_error_paths_name_the_field_once(gateway: Gateway) -> None:
    bad_connector = PARTNER_LOCATION | {"connectors": [CONNECTOR | {"max_amperage": "lots"}]}
    status, body = await gateway.admin("PUT", "/locations/LOC-P", bad_connector)
    assert status == 422
    assert body["field"] == "connectors[0].max_amperage", body
    assert body["error"].startswith("connectors[0].max_amperage: "), body

    bad_evse = copy.deepcopy(PARTNER_LOCATION)
    bad_evse["evses"][0]["connectors"][0]["max_voltage"] = "high"
    status, body = await gateway.admin("PUT", "/locations/LOC-P", bad_evse)
    assert status == 422
    assert body["field"] == "evses.CPP-1.connectors[0].max_voltage", body

    no_uid = copy.deepcopy(PARTNER_LOCATION)
    del no_uid["evses"][0]["uid"]
    status, body = await gateway.admin("PUT", "/locations/LOC-P", no_uid)
    assert (status, body["field"]) == (422, "evses[0].uid"), body

    # Wrong shapes: 422 naming the place, never a server error.
    for shape, field in [
        ({"connectors": ["x"]}, "connectors[0]"),
        ({"connectors": {"id": "1"}}, "connectors"),
        ({"evses": [{"uid": "E1", "connectors": [5]}]}, "evses.E1.connectors[0]"),
        ({"evses": {"E1": {"connectors": "x"}}}, "evses.E1.connectors"),
        ({"evses": [{"uid": "E1"}, {"uid": "E1"}]}, "evses[1].uid"),
    ]:
        status, body = await gateway.admin("PUT", "/locations/LOC-P", PARTNER_LOCATION | shape)
        assert (status, body["field"]) == (422, field), (shape, body)

    for _, body in [
        await gateway.admin("PUT", "/locations/LOC-P", bad_connector),
        await gateway.admin("PUT", "/locations/LOC-P", bad_evse),
    ]:
        assert ".." not in body["error"] and ".." not in body["field"]


async def test_a_charger_names_an_existing_location(gateway: Gateway) -> None:
    status, body = await gateway.admin(
        "PUT", "/chargers/CPX", {"location_id": "NOWHERE", "evses": [{"ocpp_id": 1, "evse_uid": "CPX-1"}]}
    )
    assert status == 404
    assert body["field"] == "location_id"
    assert "NOWHERE" in body["error"] and "PUT /admin/locations/NOWHERE" in body["error"]
    assert (await gateway.admin("GET", "/chargers/CPX"))[0] == 404  # nothing stored
    # Without a location, or with one that exists: registered.
    assert (await gateway.admin("PUT", "/chargers/CPX", {}))[0] == 201
    assert (await gateway.admin("PUT", "/locations/NOWHERE", PARTNER_LOCATION | {"id": "NOWHERE"}))[0] == 201
    status, charger = await gateway.admin("PUT", "/chargers/CPX", {"location_id": "NOWHERE"})
    assert (status, charger["location_id"]) == (200, "NOWHERE")
