"""HubClientInfo: objects, pages, pushes and the still-alive check with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from ocpi.hub.clientinfo import (
    ClientInfoPush,
    StillAliveChecker,
    client_info_page,
    client_infos,
    forwarder_probe,
    plan_pushes,
    plan_resync,
    push_all,
    status_changes,
)
from ocpi.hub.directory import InMemoryPartyDirectory, Platform
from ocpi.hub.forward import Forwarder
from ocpi.hub.http1 import Http1Client
from ocpi.hub.rules import RoutingRules
from ocpi.transport import PageRequest, PartyId
from ocpi.v221.enums import ConnectionStatus
from ocpi.v221.types import Role
from tests.hub.servers import R, refused_url, running, sample_directory

CP1, CP2, EM1, EM2, OFF, GWY = (
    PartyId(*p.split("*")) for p in ("NL*CP1", "DE*CP2", "NL*EM1", "NL*EM2", "FR*OFF", "NL*GWY")
)
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
CONNECTED, OFFLINE = ConnectionStatus.CONNECTED, ConnectionStatus.OFFLINE


def keys(infos: list) -> list[tuple[str, str, str, str]]:  # type: ignore[type-arg]
    return [(i.country_code, i.party_id, i.role.value, i.status.value) for i in infos]


def test_client_infos_one_per_role_in_order() -> None:
    d = sample_directory()
    infos = client_infos(d)
    assert keys(infos)[:3] == [
        ("BE", "BTH", "CPO", "CONNECTED"),
        ("BE", "BTH", "EMSP", "CONNECTED"),
        ("DE", "CP2", "CPO", "CONNECTED"),
    ]
    assert ("FR", "OFF", "CPO", "OFFLINE") in keys(infos)
    assert len(infos) == 9
    # a platform sees neither its own parties nor denied ones
    seen = client_infos(d, viewer=[EM1, EM2], rules=RoutingRules.of(deny=[(EM1, CP2), (EM2, CP2)]))
    assert {(i.country_code, i.party_id) for i in seen} == {
        ("BE", "BTH"),
        ("NL", "CP1"),
        ("NL", "GWY"),
        ("FR", "OFF"),
        ("NL", "OTH"),
    }


def test_page_and_window() -> None:
    d = sample_directory()
    d.set_status(CP1, OFFLINE, T0)
    items, total = client_info_page(d, PageRequest(offset=0, limit=100, date_from=T0))
    assert total == 1 and keys(items) == [("NL", "CP1", "CPO", "OFFLINE")]
    items, total = client_info_page(d, PageRequest(offset=2, limit=3))
    assert total == 9 and keys(items) == keys(client_infos(d))[2:5]


def test_status_changes_and_pushes() -> None:
    d = sample_directory()
    before = d.statuses()
    assert status_changes(before, d) == []
    d.set_status(CP2, OFFLINE, T0)
    changes = status_changes(before, d)
    assert keys(changes) == [("DE", "CP2", "CPO", "OFFLINE")] and changes[0].last_updated == T0
    pushes = plan_pushes(changes, d)
    # both platforms with a hubclientinfo RECEIVER endpoint and a CONNECTED party
    assert [(p.platform_id, p.url) for p in pushes] == [
        ("cpo1", "http://cpo1/ocpi/cpo/2.2.1/clientinfo/DE/CP2"),
        ("emsp1", "http://emsp1/clientinfo/DE/CP2"),
    ]
    # rules: emsp1 may not see CP2 -> not told
    assert [
        p.platform_id
        for p in plan_pushes(changes, d, RoutingRules.of(deny=[(EM1, CP2), (EM2, CP2)]))
    ] == ["cpo1"]
    # own party: not told about itself
    d.set_status(EM1, OFFLINE, T0)
    assert [
        p.platform_id for p in plan_pushes(status_changes(before, d), d) if p.info.party_id == "EM1"
    ] == ["cpo1"]


def test_nothing_queued_for_offline_platform_then_resync() -> None:
    d = sample_directory()
    before = d.statuses()
    d.set_status(EM1, OFFLINE, T0)
    d.set_status(EM2, OFFLINE, T0)
    d.set_status(CP2, OFFLINE, T0)
    pushes = plan_pushes(status_changes(before, d), d)
    assert all(p.platform_id == "cpo1" for p in pushes)
    resync = plan_resync("emsp1", d)
    assert {(p.info.party_id, p.info.status.value) for p in resync} >= {
        ("CP2", "OFFLINE"),
        ("CP1", "CONNECTED"),
    }
    assert not any(p.info.party_id in ("EM1", "EM2") for p in resync)
    assert plan_resync("cpo2", d) == []  # no receiver endpoint


async def test_push_all_reports_failures() -> None:
    d = sample_directory()
    pushes = plan_resync("cpo1", d)
    done: list[ClientInfoPush] = []

    async def put(push: ClientInfoPush) -> None:
        if push.info.party_id == "EM2":
            raise RuntimeError("boom")
        done.append(push)

    failures = await push_all(pushes, put, concurrency=2)
    assert [f[0].info.party_id for f in failures] == ["EM2"] and len(done) == len(pushes) - 1


def alive_directory() -> InMemoryPartyDirectory:
    d = InMemoryPartyDirectory()
    d.add_platform(Platform("a", versions_url="http://a/versions"))
    d.add_party(CP1, [Role.CPO], "a")
    d.add_platform(Platform("b", versions_url="http://b/versions"))
    d.add_party(EM1, [Role.EMSP], "b")
    d.add_party(EM2, [Role.EMSP], "b", status=ConnectionStatus.PLANNED)
    d.add_platform(Platform.in_process("gw", []))
    d.add_party(GWY, [Role.CPO], "gw")
    return d


async def test_still_alive_with_fake_clock() -> None:
    d = alive_directory()
    answers = {"a": True, "b": False}
    probed: list[str] = []

    async def probe(platform: Platform) -> bool:
        probed.append(platform.id)
        return answers[platform.id]

    checker = StillAliveChecker(d, probe, silence=timedelta(minutes=5))
    report = await checker.run_once(T0)  # first sight: the silence counts from now
    assert report.probed == [] and report.changes == []
    checker.note_activity("a", T0 + timedelta(minutes=3))
    report = await checker.run_once(T0 + timedelta(minutes=4, seconds=59))
    assert report.probed == []
    report = await checker.run_once(T0 + timedelta(minutes=5))
    assert report.probed == ["b"] and report.went_offline == ["b"]
    assert keys(report.changes) == [("NL", "EM1", "EMSP", "OFFLINE")]  # PLANNED EM2 untouched
    assert d.status(EM1) is OFFLINE and d.status(EM2) is ConnectionStatus.PLANNED
    assert d.status_changed_at(EM1) == T0 + timedelta(minutes=5)
    # a is probed once silent for 5 minutes since its last message, and stays CONNECTED
    report = await checker.run_once(T0 + timedelta(minutes=8))
    assert report.probed == ["a", "b"] and report.changes == [] and report.came_back == []
    assert checker.last_seen("a") == T0 + timedelta(minutes=8)
    # b speaks again: CONNECTED, and it needs a resync
    checker.note_activity("b", T0 + timedelta(minutes=9))
    report = await checker.run_once(T0 + timedelta(minutes=9, seconds=30))
    assert report.came_back == ["b"] and keys(report.changes) == [
        ("NL", "EM1", "EMSP", "CONNECTED")
    ]
    # b falls silent again; its probe now answers: stays CONNECTED without change
    answers["b"] = True
    report = await checker.run_once(T0 + timedelta(minutes=15))
    assert "b" in report.probed and report.changes == []
    assert "gw" not in probed


async def test_probe_exception_counts_as_offline() -> None:
    d = alive_directory()

    async def probe(platform: Platform) -> bool:
        raise OSError("down")

    checker = StillAliveChecker(d, probe)
    await checker.run_once(T0)
    report = await checker.run_once(T0 + timedelta(minutes=6))
    assert sorted(report.went_offline) == ["a", "b"]
    assert d.status(CP1) is OFFLINE


async def test_forwarder_probe_against_real_versions_endpoint() -> None:
    async def versions(request: web.Request) -> web.Response:
        assert request.headers["Authorization"].startswith("Token ")
        return web.json_response(
            {"status_code": 1000, "data": [], "timestamp": "2024-01-01T00:00:00Z"}
        )

    app = web.Application()
    app.router.add_get("/ocpi/versions", versions)

    async def tokens(platform_id: str) -> str:
        return "tok"

    async with running(app) as url, Http1Client() as session:
        probe = forwarder_probe(Forwarder(session, tokens), request_timeout=2)
        assert await probe(Platform("a", versions_url=f"{url}/ocpi/versions"))
        assert not await probe(Platform("b", versions_url=refused_url()))
        assert not await probe(Platform("c", versions_url=f"{url}/nothing"))  # 404 without envelope
        assert not await probe(Platform("d"))
        assert R.value == "RECEIVER"
