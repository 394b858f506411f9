"""The operator's commands as the real console command (``ocpi-gateway``, the installed
entry point) in subprocesses: --version, check-config, backup while a real ``serve``
process writes, report through a running gateway's admin API and from the store, with
its progress bar on a terminal (a pseudo-terminal)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import pty
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import aiohttp
import pytest
from ocpp.v16 import call as call16

from tests.conftest import ADMIN_TOKEN, REDIS_URL
from tests.roaming.test_catalog import LOCATION, TARIFF
from tests.sim import connect

pytestmark = pytest.mark.slow

COMMAND = str(Path(sys.executable).parent / "ocpi-gateway")
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | variables


async def _run(*args: str, cwd: Path, env: dict[str, str] | None = None, stderr: int | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        COMMAND, *args, cwd=cwd, env=env or _env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if stderr is None else stderr,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), (err or b"").decode()


def _one_line(status: int, err: str, text: str) -> None:
    assert status != 0
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("ocpi-gateway: "), err
    assert text in err, err


async def test_version_is_the_package_version(tmp_path: Path) -> None:
    status, out, _ = await _run("--version", cwd=tmp_path)
    assert (status, out) == (0, f"ocpi-gateway {metadata.version('ocpi-gateway')}\n")


async def test_check_config_shows_each_setting_and_its_source_secrets_masked(tmp_path: Path) -> None:
    secret = "a-very-secret-admin-token"
    env = _env(GATEWAY_PORT="9001", GATEWAY_ADMIN_TOKEN=secret, GATEWAY_REDIS_URL="redis://user:hunter2hunter2@db:6379/0")
    status, out, err = await _run("check-config", "--host", "0.0.0.0", cwd=tmp_path, env=env)
    assert status == 0, err
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert lines["--host"].split()[1:] == ["0.0.0.0", "flag", "--host"]
    assert lines["GATEWAY_PORT"].split()[1:] == ["9001", "environment", "variable", "GATEWAY_PORT"]
    assert lines["GATEWAY_HEARTBEAT_INTERVAL"].split()[1:] == ["300", "default"]
    assert lines["GATEWAY_STATUS_HISTORY_DAYS"].split()[1:] == ["400.0", "default"]
    assert "**** (set)" in lines["GATEWAY_ADMIN_TOKEN"]
    assert "redis://user:****@db:6379/0" in lines["GATEWAY_REDIS_URL"]
    assert secret not in out and "hunter2" not in out
    # Every setting is listed.
    from gateway.settings import Settings

    assert len(lines) == len(Settings.model_fields)

    status, out, err = await _run("check-config", cwd=tmp_path, env=_env(GATEWAY_HEARTBEAT_INTERVAL="often"))
    _one_line(status, err, "GATEWAY_HEARTBEAT_INTERVAL: ")
    assert status == 2 and out == ""
    status, _, err = await _run("check-config", "--port", "70000", cwd=tmp_path)
    _one_line(status, err, "--port: ")


class Serve:
    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url
        self.ws_url = url.replace("http", "ws", 1)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await self.proc.wait()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        COMMAND, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        cwd=tmp_path, env=_env(GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    server = Serve(proc, f"http://127.0.0.1:{port}")
    try:
        async with asyncio.timeout(30), aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(f"{server.url}/health/ready") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield server
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_backup_while_serve_writes_is_a_consistent_copy(tmp_path: Path, serve: Serve) -> None:
    written = 0
    stop = asyncio.Event()

    async def writer() -> None:
        nonlocal written
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                async with s.put(f"{serve.url}/admin/tokens/TOKEN-{written:06d}", json={"valid": True}, headers=HEADERS) as r:
                    assert r.status == 201
                written += 1

    task = asyncio.create_task(writer())
    try:
        copies = []
        for n in range(3):
            while written < 50 * (n + 1):
                await asyncio.sleep(0.01)
            before = written
            target = tmp_path / f"backup-{n}.sqlite3"
            status, out, err = await _run("backup", "--to", str(target), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
            assert status == 0, err
            assert out.startswith("backed up ")
            copies.append((target, before, written))
    finally:
        stop.set()
        await task
    assert written > 150
    for target, before, after in copies:
        db = sqlite3.connect(target)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            count = db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]
        finally:
            db.close()
        # Every token answered before the backup began is in it; none beyond those sent
        # by the time it ended (plus the one PUT in flight then, stored, not yet counted).
        assert before <= count <= after + 1
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]  # no leftovers

    status, _, err = await _run("backup", "--to", str(tmp_path / "x"), "--data-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    _one_line(status, err, "no database at")
    status, _, err = await _run("backup", "--to", str(tmp_path / "no" / "dir" / "x"), "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    _one_line(status, err, "--to: no directory")


async def test_backup_refuses_redis_with_a_pointer_to_the_readme(tmp_path: Path) -> None:
    env = _env(GATEWAY_REDIS_URL=REDIS_URL)
    status, _, err = await _run("backup", "--to", str(tmp_path / "x"), cwd=tmp_path, env=env)
    _one_line(status, err, 'README "Backups"')
    assert status == 1 and not (tmp_path / "x").exists()


async def test_report_through_a_running_gateway_and_from_the_store(tmp_path: Path, serve: Serve) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{serve.url}/admin/tariffs/AC-STD", json=TARIFF, headers=HEADERS) as r:
            assert r.status == 201
        async with s.put(f"{serve.url}/admin/locations/LOC1", json=LOCATION, headers=HEADERS) as r:
            assert r.status == 201
        for cp_id, location in (("CP-1", "LOC1"), ("CP-2", None)):
            body = {"evses": [{"ocpp_id": 1, "evse_uid": f"{cp_id}-1"}]} | ({"location_id": location} if location else {})
            async with s.put(f"{serve.url}/admin/chargers/{cp_id}", json=body, headers=HEADERS) as r:
                assert r.status == 201
        async with s.put(f"{serve.url}/admin/tokens/TAG", json={"valid": True}, headers=HEADERS) as r:
            assert r.status == 201
    for cp_id, start, stop, wh in (("CP-1", "10:00", "11:00", 2500), ("CP-2", "12:00", "12:15", 1001)):
        async with connect(serve.ws_url, cp_id, "1.6") as cp:
            await cp.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            tx = await cp.call(call16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=1000, timestamp=f"2026-01-05T{start}:00Z"))
            await cp.call(call16.StopTransaction(meter_stop=1000 + wh, timestamp=f"2026-01-05T{stop}:00Z", transaction_id=tx.transaction_id))
    args = ["report", "usage", "--from", "2026-01-05", "--to", "2026-01-06", "--by", "location"]

    # SQLite is the running gateway's (locked): the report goes through its admin API.
    status, _, err = await _run(*args, "--csv", str(tmp_path / "api.csv"), "--url", serve.url, cwd=tmp_path, env=_env(GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN))
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "api.csv").read_text())))
    assert [(r["location_id"], r["sessions"], r["energy_kwh"], r["charging_seconds"]) for r in rows] == [
        ("", "1", "1.001", "900"),
        ("LOC1", "1", "2.500", "3600"),
    ]
    status, _, err = await _run(*args, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    _one_line(status, err, "--url")
    assert status == 2
    status, _, err = await _run(*args, "--url", serve.url, cwd=tmp_path, env=_env(GATEWAY_ADMIN_TOKEN="wrong-token-wrong-token"))
    _one_line(status, err, "HTTP 401")
    status, _, err = await _run("report", "uptime", "--from", "2026-01-05", "--to", "2026-01-06", "--by", "partner", "--url", serve.url, cwd=tmp_path, env=_env(GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN))
    _one_line(status, err, "--by: ")

    # Stopped, the store is read directly; the progress bar shows on a terminal only.
    await serve.stop()
    primary, secondary = pty.openpty()
    try:
        status, out, _ = await _run(*args, "--data-dir", str(tmp_path / "data"), cwd=tmp_path, stderr=secondary)
        os.close(secondary)
        secondary = -1
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert status == 0
    assert list(csv.DictReader(io.StringIO(out))) == rows
    assert b"[" + b"#" * 30 + b"] 100% 2/2 chargers" in shown
    status, out, err = await _run(*args, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert status == 0 and err == ""  # not a terminal: no bar
    status, _, err = await _run("report", "usage", "--from", "2026-01-05", "--to", "2026-01-06", "--tz", "Nowhere/Land", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    _one_line(status, err, "--tz: unknown time zone")
