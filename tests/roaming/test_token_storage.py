"""Partner tokens at rest (issue 9, point 17): what partners send us is stored hashed, what
we send them encrypted under the secret key; the raw SQLite file and the raw Redis keys
hold none of them in clear, and a restarted gateway on the same storage still knows its
partners and calls them. Records written in clear by earlier releases are converted."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr

from gateway.app import build_app
from gateway.roaming.partners import Partner, PartnerStatus, partner_to_document
from gateway.roaming.vault import KEY_FILE, SecretKeyError, TokenVault, hash_token
from gateway.settings import Settings
from gateway.storage.base import Document
from gateway.storage.factory import SQLITE_FILE_NAME, open_store
from tests.conftest import ADMIN_TOKEN, REDIS_URL, Gateway, GatewayFactory, backend_settings
from tests.hub.platform import Platform
from tests.hub.test_gateway_hub import eventually, free_port, join
from tests.roaming.emsp import EmspPlatform, token_header
from tests.roaming.strict_peer import StrictPeer
from tests.roaming.test_catalog import TARIFF

ROOT = Path(__file__).resolve().parents[2]


async def raw_storage(settings: Settings) -> bytes:
    """Every byte the gateway's storage holds: the SQLite files of the data dir (the
    database and its write-ahead log), or every value under the gateway's Redis prefix."""
    if settings.redis_url is None:
        files = sorted(settings.data_dir.glob(SQLITE_FILE_NAME + "*"))
        assert files, settings.data_dir
        return b"\n".join(path.read_bytes() for path in files)
    client = aioredis.from_url(REDIS_URL)
    parts: list[bytes] = []
    try:
        async for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
            parts.append(key)
            kind = (await client.type(key)).decode()
            if kind == "string":
                parts.append(await client.get(key))
            elif kind == "hash":
                for field, value in (await client.hgetall(key)).items():
                    parts += [field, value]
            elif kind == "list":
                parts += await client.lrange(key, 0, -1)
            elif kind == "set":
                parts += list(await client.smembers(key))
            elif kind == "zset":
                parts += await client.zrange(key, 0, -1)
            elif kind == "stream":
                for entry_id, fields in await client.xrange(key):
                    parts.append(entry_id)
                    for field, value in fields.items():
                        parts += [field, value]
            else:
                raise AssertionError(f"unexpected Redis type {kind} of {key!r}")
    finally:
        await client.aclose()
    return b"\n".join(parts)


async def stored_values(settings: Settings) -> str:
    """The content of every stored record (rows of every SQLite table; Redis values), as
    text: what is stored now, without the pages SQLite has not reused yet."""
    if settings.redis_url is not None:
        return (await raw_storage(settings)).decode("utf-8", "replace")
    db = sqlite3.connect(settings.data_dir / SQLITE_FILE_NAME)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))
    finally:
        db.close()


async def ocpi_status(url: str, token: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, headers=token_header(token)) as r:
        await r.read()
        return r.status


@pytest.fixture
async def peer() -> AsyncIterator[StrictPeer]:
    platform = StrictPeer()
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


@pytest.fixture
async def platforms() -> AsyncIterator[list[Platform]]:
    started: list[Platform] = []
    yield started
    for platform in started:
        await platform.stop()


async def emsp_registers_with_us(gw: Gateway, emsp: EmspPlatform) -> tuple[str, str]:
    """The eMSP registers with the gateway: (token A, token C)."""
    _, partner = await gw.admin("POST", "/partners", {"name": "eMSP registering with us"})
    async with aiohttp.ClientSession() as s, s.post(
        f"{gw.url}/ocpi/2.2.1/credentials",
        json=emsp.credentials(emsp.token_b),
        headers=token_header(partner["token_a"]),
    ) as r:
        body = await r.json()
    assert body["status_code"] == 1000, body
    return partner["token_a"], body["data"]["token"]


async def tariff_pushed(gw: Gateway, emsp: EmspPlatform, peer: StrictPeer, tariff_id: str) -> None:
    """The operator changes a tariff: both eMSPs get it, called with their own tokens
    (each accepts nothing else)."""
    status, _ = await gw.admin("PUT", f"/tariffs/{tariff_id}", TARIFF)
    assert status == 201
    await eventually(lambda: any(path.endswith(f"/{tariff_id}") for _, path, _ in emsp.pushes("tariffs", "PUT")))
    await eventually(lambda: any(r.path.endswith(f"/{tariff_id}") for r in peer.got("tariffs", "PUT")))


async def test_no_partner_token_in_clear_at_rest_and_all_work_after_restart(
    gateways: GatewayFactory, emsp: EmspPlatform, peer: StrictPeer, platforms: list[Platform]
) -> None:
    gw = await gateways.start(port=free_port())
    # Each way of registering: the eMSP with us; we at a (strict) eMSP; a platform at
    # the hub; and a partner still pending with its token A.
    token_a1, token_c = await emsp_registers_with_us(gw, emsp)
    _, strict = await gw.admin("POST", "/partners", {"name": "Strict eMSP"})
    status, _ = await gw.admin(
        "POST", f"/partners/{strict['id']}/register", {"versions_url": f"{peer.url}/ocpi/versions", "token": peer.token_a}
    )
    assert status == 200
    platform = Platform("Hub eMSP", "EMSP", [("DE", "EM2")])
    await platform.start()
    platforms.append(platform)
    await join(gw, platform)
    _, pending = await gw.admin("POST", "/partners", {"name": "Pending"})
    assert peer.their_token is not None and platform.hub_token is not None
    tokens = {
        "token A of the eMSP": token_a1,
        "token C of the eMSP": token_c,
        "the eMSP's token": emsp.token_b,
        "token B at the strict eMSP": peer.their_token,
        "the strict eMSP's token": peer.token_b,
        "the hub platform's token to us": platform.hub_token,
        "the hub platform's own token": platform.token_b,
        "token A of the pending partner": pending["token_a"],
    }

    raw = await raw_storage(gw.settings)
    for name in (b"eMSP registering with us", b"Strict eMSP", b"Hub eMSP", b"Pending"):
        assert name in raw  # the partner records are in what was read
    assert {what for what, token in tokens.items() if token.encode() in raw} == set()
    # The admin API shows no token (nor a hash of one) once the partner was created.
    _, views = await gw.admin("GET", "/partners")
    shown = repr(views)
    assert all(t not in shown and hash_token(t) not in shown for t in tokens.values())
    assert all("token_a" not in view for view in views)

    await gateways.stop(gw)
    gw = await gateways.start(gw.settings)  # same storage, same port

    # It still recognises every partner by the token it uses...
    assert await ocpi_status(f"{gw.url}/ocpi/2.2.1/credentials", token_c) == 200
    assert await ocpi_status(f"{gw.url}/ocpi/2.2.1/credentials", peer.their_token) == 200
    assert await ocpi_status(f"{gw.url}/ocpi/hub/2.2.1/hubclientinfo", platform.hub_token) == 200
    assert await ocpi_status(f"{gw.url}/ocpi/versions", pending["token_a"]) == 200
    assert await ocpi_status(f"{gw.url}/ocpi/versions", token_a1) == 401  # spent
    # ...and calls them with theirs: the bilateral eMSPs get a tariff, the hub platform
    # hears of a newcomer.
    await tariff_pushed(gw, emsp, peer, "AFTER-RESTART")
    known = len(platform.got("hubclientinfo", "PUT"))
    newcomer = Platform("Hub CPO", "CPO", [("BE", "CPX")])
    await newcomer.start()
    platforms.append(newcomer)
    await join(gw, newcomer)
    await eventually(
        lambda: any(r.path.endswith("/BE/CPX") for r in platform.got("hubclientinfo", "PUT")[known:])
    )


def legacy_partner(partner_id: str, name: str, status: str, **tokens: str | None) -> dict[str, Any]:
    """A partner record as releases before hashing wrote it (tokens in clear)."""
    return {
        "id": partner_id,
        "name": name,
        "status": status,
        "created_at": "2026-11-01T10:00:00Z",
        "updated_at": "2026-11-01T10:00:00Z",
        "token_a": tokens.get("token_a"),
        "our_token": tokens.get("our_token"),
        "their_token": tokens.get("their_token"),
        "versions_url": tokens.get("versions_url"),
        "version": "2.2.1" if status == "REGISTERED" else None,
        "endpoints": [],
        "roles": [],
        "kind": "PEER",
    }


async def test_records_in_clear_from_an_earlier_release_are_converted(
    gateways: GatewayFactory, emsp: EmspPlatform, peer: StrictPeer
) -> None:
    settings = backend_settings(gateways.backend, gateways.tmp_path, port=free_port())
    old_ours, old_a = "legacy-ours-" + "q" * 30, "legacy-a-" + "r" * 30
    registered = legacy_partner(
        "legacy-emsp",
        "Legacy eMSP",
        "REGISTERED",
        our_token=old_ours,
        their_token=emsp.token_b,
        versions_url=f"{emsp.url}/ocpi/versions",
    )
    registered["endpoints"] = [
        {"module": "tariffs", "role": "RECEIVER", "url": f"{emsp.url}/ocpi/2.2.1/tariffs"}
    ]
    registered["roles"] = [{"role": "EMSP", "country_code": "NL", "party_id": "EMS", "business_details": {"name": "Legacy"}}]
    at = datetime(2026, 11, 1, 10, tzinfo=UTC)
    store = await open_store(data_dir=settings.data_dir, redis_url=settings.redis_url, redis_prefix=settings.redis_prefix)
    try:
        await store.partners.put(Document("legacy-emsp", registered, at))
        await store.partners.put(Document("legacy-pending", legacy_partner("legacy-pending", "Legacy pending", "PENDING", token_a=old_a), at))
    finally:
        await store.close()
    assert old_ours in await stored_values(settings)  # the test starts from clear records

    gw = await gateways.start(settings)
    stored = await stored_values(settings)
    assert "our_token_sha256" in stored and "their_token_fernet" in stored
    assert [t for t in (old_ours, old_a, emsp.token_b) if t in stored] == []
    # The partners work as before: they reach us with their tokens, we reach them.
    assert await ocpi_status(f"{gw.url}/ocpi/2.2.1/credentials", old_ours) == 200
    assert await ocpi_status(f"{gw.url}/ocpi/versions", old_a) == 200
    await gw.admin("PUT", "/tariffs/MIGRATED", TARIFF)
    await eventually(lambda: any(p.endswith("/MIGRATED") for _, p, _ in emsp.pushes("tariffs", "PUT")))
    # And again after a restart, from the converted records.
    await gateways.stop(gw)
    gw = await gateways.start(settings)
    assert await ocpi_status(f"{gw.url}/ocpi/2.2.1/credentials", old_ours) == 200
    assert await ocpi_status(f"{gw.url}/ocpi/versions", old_a) == 200


async def start_fails(settings: Settings) -> SecretKeyError:
    """Start a gateway that must refuse to start; its resources are closed again."""
    runner = web.AppRunner(build_app(settings, admin_token=ADMIN_TOKEN))
    try:
        with pytest.raises(SecretKeyError) as caught:
            await runner.setup()
    finally:
        await runner.cleanup()
    return caught.value


def current_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return (settings.data_dir / KEY_FILE).read_text().strip()


async def test_wrong_key_refuses_to_start_and_keys_rotate(
    gateways: GatewayFactory, emsp: EmspPlatform, peer: StrictPeer
) -> None:
    gw = await gateways.start(port=free_port())
    settings = gw.settings
    _, token_c = await emsp_registers_with_us(gw, emsp)
    _, strict = await gw.admin("POST", "/partners", {"name": "Strict eMSP"})
    await gw.admin("POST", f"/partners/{strict['id']}/register", {"versions_url": f"{peer.url}/ocpi/versions", "token": peer.token_a})
    await gateways.stop(gw)
    old = current_key(settings)
    new = Fernet.generate_key().decode()

    error = await start_fails(settings.model_copy(update={"secret_key": SecretStr(new)}))
    message = str(error)
    assert "\n" not in message and "GATEWAY_SECRET_KEY=new,old" in message

    # Rotation: the new key first, the old one after it; records are re-encrypted...
    gw = await gateways.start(settings.model_copy(update={"secret_key": SecretStr(f"{new}, {old}")}))
    await gateways.stop(gw)
    # ...so the new key alone opens them from now on.
    gw = await gateways.start(settings.model_copy(update={"secret_key": SecretStr(new)}))
    assert await ocpi_status(f"{gw.url}/ocpi/2.2.1/credentials", token_c) == 200
    await tariff_pushed(gw, emsp, peer, "ROTATED")
    await gateways.stop(gw)
    # The old key alone no longer does.
    await start_fails(settings.model_copy(update={"secret_key": SecretStr(old)}))


async def serve(env: dict[str, str], data_dir: Path) -> tuple[int, str]:
    """``ocpi-gateway serve`` as its own process: exit status and stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    clean |= {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_PORT": str(free_port())}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(data_dir),
        cwd=ROOT, env=clean | env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_key_problems_are_one_line_at_start(tmp_path: Path) -> None:
    # A record encrypted under one key, and the gateway given another.
    data_dir = tmp_path / "data"
    key = Fernet.generate_key()
    store = await open_store(data_dir=data_dir, redis_url=None, redis_prefix="")
    try:
        at = datetime(2026, 11, 1, 10, tzinfo=UTC)
        partner = Partner("p1", "eMSP", PartnerStatus.REGISTERED, at, at, their_token="theirs-" + "z" * 30)
        await store.partners.put(partner_to_document(partner, TokenVault([key])))
    finally:
        await store.close()
    cases = {
        "wrong key": ({"GATEWAY_SECRET_KEY": Fernet.generate_key().decode()}, "GATEWAY_SECRET_KEY=new,old"),
        "not a key": ({"GATEWAY_SECRET_KEY": "not-a-fernet-key"}, "not a Fernet key"),
        "redis without a key": ({"GATEWAY_REDIS_URL": REDIS_URL}, "required with GATEWAY_REDIS_URL"),
    }
    for case, (env, expected) in cases.items():
        status, stderr = await serve(env, data_dir)
        lines = stderr.strip().splitlines()
        assert status == 2 and len(lines) == 1 and expected in lines[0], (case, status, stderr)
