"""ocpi.hub.translate without the gateway: which object a routed message is, read in the
sender's version, written in the receiver's, and what cannot be said."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

import ocpi.v211 as v211
import ocpi.v221 as v221
import ocpi.v230 as v230
from ocpi.hub.translate import Origin, answer_kind, embedded_location, read, request_kind, write
from ocpi.transport import InvalidParametersError, PartyId
from ocpi.v221.enums import InterfaceRole
from ocpi.versions import NotExpressible
from tests.hub.test_hub_versions import cdr_230, location_230, session_230

S, R = InterfaceRole.SENDER, InterfaceRole.RECEIVER
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EMSP = Origin(owner=PartyId("NL", "EMO"), now=NOW, uid="TOK1", token_type="RFID", issuer="eMSP Old")
TOKEN_211 = {"uid": "TOK1", "type": "RFID", "auth_id": "NL-EMO-C1", "issuer": "eMSP Old", "valid": True, "whitelist": "ALLOWED", "last_updated": "2026-11-23T08:00:00Z"}


@pytest.mark.parametrize(
    ("module", "interface", "method", "path", "kind"),
    [
        ("locations", R, "PUT", ("BE", "CPX", "L1"), "Location"),
        ("locations", R, "PATCH", ("BE", "CPX", "L1", "E1"), "EVSEPatch"),
        ("locations", R, "PATCH", ("BE", "CPX", "L1", "E1", "1"), "ConnectorPatch"),
        ("tariffs", R, "PATCH", ("BE", "CPX", "T1"), None),  # tariffs have no PATCH
        ("tariffs", R, "DELETE", ("BE", "CPX", "T1"), None),
        ("sessions", R, "PATCH", ("BE", "CPX", "S1"), "SessionPatch"),
        ("cdrs", R, "POST", (), "CDR"),
        ("tokens", R, "PUT", ("NL", "EMO", "T1"), "Token"),
        ("tokens", S, "POST", ("T1", "authorize"), "LocationReferences"),
        ("commands", R, "POST", ("CANCEL_RESERVATION",), "CancelReservation"),
        ("chargingprofiles", R, "PUT", ("S1",), "SetChargingProfile"),
        ("chargingprofiles", S, "PUT", ("S1",), "ActiveChargingProfile"),
        ("locations", S, "GET", (), None),
    ],
)
def test_request_kinds(module: str, interface: InterfaceRole, method: str, path: tuple[str, ...], kind: str | None) -> None:
    assert request_kind(module, interface, method, path) == kind


def test_answer_kinds() -> None:
    assert answer_kind("locations", S, "GET", ()) == ("Location", True)
    assert answer_kind("locations", S, "GET", ("L1", "E1")) == ("EVSE", False)
    assert answer_kind("tokens", R, "GET", ("NL", "EMO", "T1")) == ("Token", False)
    assert answer_kind("tokens", S, "POST", ("T1", "authorize")) == ("AuthorizationInfo", False)
    assert answer_kind("commands", R, "POST", ("START_SESSION",)) == ("CommandResponse", False)
    assert answer_kind("locations", R, "PUT", ("BE", "CPX", "L1")) is None


def test_a_211_token_takes_its_owner_from_the_origin() -> None:
    token = read("Token", TOKEN_211, "2.1.1", EMSP)
    assert isinstance(token, v221.Token)
    assert (token.country_code, token.party_id, token.contract_id) == ("NL", "EMO", "NL-EMO-C1")
    with pytest.raises(InvalidParametersError, match="owner"):
        read("Token", TOKEN_211, "2.1.1", Origin(owner=None, now=NOW))
    # Named in 2.1.1 terms.
    with pytest.raises(InvalidParametersError, match="auth_id"):
        read("Token", {k: v for k, v in TOKEN_211.items() if k != "auth_id"}, "2.1.1", EMSP)


def test_a_211_patch_gets_last_updated() -> None:
    patch = read("TokenPatch", {"valid": False, "auth_id": "NL-EMO-C2"}, "2.1.1", EMSP)
    assert isinstance(patch, v221.TokenPatch)
    assert patch.to_wire() == {"valid": False, "contract_id": "NL-EMO-C2", "last_updated": NOW}


def test_a_211_authorization_info_gets_a_token() -> None:
    info = read("AuthorizationInfo", {"allowed": "ALLOWED"}, "2.1.1", EMSP)
    assert isinstance(info, v221.AuthorizationInfo)
    assert (info.token.uid, info.token.contract_id, info.token.whitelist) == ("TOK1", "TOK1", "NEVER")
    up = write(info, "2.3.0")
    assert isinstance(up, v230.AuthorizationInfo) and up.token.party_id == "EMO"


def test_230_to_211_and_221() -> None:
    location = read("Location", location_230("L-A"), "2.3.0", EMSP)
    assert isinstance(location, v221.Location)
    down = write(location, "2.1.1")
    assert isinstance(down, v211.Location) and "country_code" not in down.to_wire()
    session = read("Session", session_230("S1", ("NL", "EMO"), "TOK1"), "2.3.0", EMSP)
    assert isinstance(session, v221.Session)
    assert session.total_cost is not None and session.total_cost.incl_vat == Decimal("1.27")
    assert embedded_location("Session", session, "2.1.1") == "L-A"
    assert embedded_location("Session", session, "2.2.1") is None
    with pytest.raises(NotExpressible, match="location_id"):
        write(session, "2.1.1")  # the Location it embeds is needed
    old = write(session, "2.1.1", location=location)
    assert isinstance(old, v211.Session) and old.location.id == "L-A" and old.total_cost == Decimal("1.05")
    cdr = read("CDR", cdr_230("C1", session_230("S1", ("NL", "EMO"), "TOK1")) | {"credit": True}, "2.3.0", EMSP)
    with pytest.raises(NotExpressible, match="credit"):
        write(cdr, "2.1.1", location=location)


def test_what_211_lacks() -> None:
    cancel = v221.CancelReservation(response_url="https://emsp.example.com/r/1", reservation_id="1")
    with pytest.raises(NotExpressible, match="CANCEL_RESERVATION"):
        write(cancel, "2.1.1")
    profile = v221.ChargingProfileResponse(result="ACCEPTED", timeout=30)
    with pytest.raises(NotExpressible, match=r"2\.1\.1"):
        write(profile, "2.1.1")
    with pytest.raises(InvalidParametersError, match=r"2\.1\.1"):
        read("CancelReservation", {"response_url": "https://e/r", "reservation_id": "1"}, "2.1.1", EMSP)


def test_invalid_230_is_named_in_230_terms() -> None:
    bad = location_230("L-A")
    del bad["coordinates"]
    with pytest.raises(InvalidParametersError, match="coordinates"):
        read("Location", bad, "2.3.0", EMSP)
