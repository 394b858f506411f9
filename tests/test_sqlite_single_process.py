"""SQLite serves one process: a second ``ocpi-gateway serve`` on the same data dir is
refused at start (one line, exit status 2), while a restart after ``kill -9`` is not (the
OS drops a dead holder's lock)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.storage.base import StorageError
from gateway.storage.factory import open_store
from gateway.storage.sqlite import open_sqlite_store
from tests.conftest import ADMIN_TOKEN

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "GATEWAY_LOG_LEVEL": "INFO"} | variables


# -- the store -----------------------------------------------------------------------------


async def test_a_second_store_on_one_dir_is_refused_until_the_first_closes(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = await open_store(data_dir=data_dir, redis_url=None)
    try:
        with pytest.raises(StorageError) as refused:
            await open_store(data_dir=data_dir, redis_url=None)
        message = str(refused.value)
        assert message.startswith(f"{data_dir} is in use by another store in this process")
        assert f"(pid {os.getpid()})" in message and "GATEWAY_REDIS_URL" in message
        # The refused open changed nothing: the first store still works.
        assert await first.transactions.next_ocpp16_id() == 1
        # Another database file in another dir is not concerned.
        other = await open_sqlite_store(tmp_path / "other" / "gateway.sqlite3")
        await other.close()
    finally:
        await first.close()
    assert (data_dir / "gateway.lock").read_text() == f"{os.getpid()}\n"
    again = await open_store(data_dir=data_dir, redis_url=None)
    try:
        assert await again.transactions.next_ocpp16_id() == 2
    finally:
        await again.close()


async def test_a_lock_file_left_behind_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    # What a killed holder leaves: the file with its pid, but no lock (the OS dropped it).
    (tmp_path / "gateway.lock").write_text("4194303\n")
    store = await open_sqlite_store(path)
    try:
        assert (tmp_path / "gateway.lock").read_text() == f"{os.getpid()}\n"
    finally:
        await store.close()


async def test_a_failed_open_releases_the_lock(tmp_path: Path) -> None:
    (tmp_path / "gateway.sqlite3").mkdir()  # SQLite cannot open a directory
    with pytest.raises(StorageError, match="cannot open"):
        await open_sqlite_store(tmp_path / "gateway.sqlite3")
    (tmp_path / "gateway.sqlite3").rmdir()
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3")
    await store.close()


# -- real processes ------------------------------------------------------------------------


class Serving:
    """``ocpi-gateway serve`` running in the background, its stderr in a file."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}/admin{path}", json=body, headers=HEADERS) as resp,
        ):
            return (
                resp.status,
                await resp.json() if resp.content_type == "application/json" else None,
            )


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Any]:
    """Starts gateways that serve; kills whatever still runs at the end."""
    started: list[asyncio.subprocess.Process] = []

    async def start(data_dir: Path) -> Serving:
        port = _free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "serve",
                "--port", str(port), "--data-dir", str(data_dir),
                cwd=tmp_path, env=_env(), stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        started.append(proc)
        gateway = Serving(proc, port, log)
        async with asyncio.timeout(60):
            while True:
                assert proc.returncode is None, log.read_text()
                try:
                    if (await gateway.admin("GET", "/chargers"))[0] == 200:
                        return gateway
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)

    try:
        yield start
    finally:
        for proc in started:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _refused(cwd: Path, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Runs ``serve`` to its end (it must end by itself)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--port", str(_free_port()), *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_a_second_process_is_refused_and_a_restart_after_kill_9_is_not(
    tmp_path: Path, serve: Any
) -> None:
    data_dir = tmp_path / "data"
    first: Serving = await serve(data_dir)
    status, _ = await first.admin(
        "PUT", "/chargers/CP-1", {"evses": [{"ocpp_id": 1, "evse_uid": "CP-1-1"}]}
    )
    assert status == 201

    # Named as the user named it: by flag, or by environment variable.
    by_flag, by_env = await asyncio.gather(
        _refused(tmp_path, ["--data-dir", str(data_dir)], _env()),
        _refused(tmp_path, [], _env(GATEWAY_DATA_DIR=str(data_dir))),
    )
    for name, (status, out, err) in (("--data-dir", by_flag), ("GATEWAY_DATA_DIR", by_env)):
        where = (name, out, err)
        assert status == 2, where
        assert "Traceback" not in out + err and "listening on" not in out + err, where
        assert err.endswith("\n") and len(err.splitlines()) == 1, where
        assert err == (
            f"ocpi-gateway: {name}: {data_dir} is in use by another ocpi-gateway process"
            f" (pid {first.proc.pid}); SQLite storage serves one process:"
            " use Redis (GATEWAY_REDIS_URL) to run several\n"
        ), where
    # The refused ones left the first alone.
    status, chargers = await first.admin("GET", "/chargers")
    assert status == 200 and [c["id"] for c in chargers] == ["CP-1"]

    first.proc.send_signal(signal.SIGKILL)
    assert await first.proc.wait() == -signal.SIGKILL
    # The dead holder's pid is still in the lock file; only the lock itself is gone.
    assert (data_dir / "gateway.lock").read_text() == f"{first.proc.pid}\n"

    restarted: Serving = await serve(data_dir)
    status, chargers = await restarted.admin("GET", "/chargers")
    assert status == 200 and [c["id"] for c in chargers] == ["CP-1"]
    restarted.proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await restarted.proc.wait() == 0
    log = restarted.log.read_text()
    assert "listening on" in log and "Traceback" not in log
