"""``ocpi-gateway serve`` as a real process with settings it cannot start with: one line
on stderr naming the setting, exit status 2, no traceback, and never "listening on"; and
"listening on" only once the port accepts connections."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet

from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | {"GATEWAY_LOG_LEVEL": "INFO"} | variables


async def _serve(cwd: Path, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _check(where: object, status: int, out: str, err: str, name: str, reason: str) -> None:
    assert status == 2, where
    assert "Traceback" not in out + err, where
    assert "listening on" not in out + err, where
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), where
    assert lines[0].startswith(f"ocpi-gateway: {name}: "), where
    assert reason in lines[0], where


async def test_each_bad_setting_is_one_line_and_exit_status_2(
    tmp_path: Path, busy_port: int
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    port = str(_free_port())
    data = ["--data-dir", str(tmp_path / "data")]
    key = {"GATEWAY_SECRET_KEY": Fernet.generate_key().decode()}  # needed with Redis
    # (flags, environment, the name the line starts with, text in the reason)
    cases: list[tuple[list[str], dict[str, str], str, str]] = [
        (["--port", "99999"], {}, "--port", "65535"),
        (["--port", str(busy_port), *data], {}, "--port", "in use"),
        (["--port", port, "--data-dir", str(a_file)], {}, "--data-dir", "not a writable"),
        (
            ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")],
            {},
            "--tls-cert",
            "no such file",
        ),
        ([], {"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT", "integer"),
        ([], {"GATEWAY_PARTIES": '[{"country_code": '}, "GATEWAY_PARTIES", "not valid JSON"),
        (
            ["--port", port, *data],
            {"GATEWAY_REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"} | key,
            "GATEWAY_REDIS_URL",
            "connect",
        ),
        (  # Sentinel: no Sentinel answers
            ["--port", port, *data],
            {
                "GATEWAY_REDIS_SENTINELS": f"127.0.0.1:{_free_port()}",
                "GATEWAY_REDIS_SENTINEL_SERVICE": "mymaster",
            }
            | key,
            "GATEWAY_REDIS_SENTINELS",
            "No master found for 'mymaster'",
        ),
    ]
    results = await asyncio.gather(
        *(_serve(tmp_path, flags, _env(**env)) for flags, env, _, _ in cases)
    )
    for (flags, env, name, reason), (status, out, err) in zip(cases, results, strict=True):
        _check((flags, env, out, err), status, out, err, name, reason)


# The same, in-process (the command line's main(), as the console script calls it): the
# settings it refuses before serving anything.
IN_PROCESS: list[tuple[list[str], dict[str, str], str, str]] = [
    (["--port", "many"], {}, "--port", "invalid int"),
    (["--bogus"], {}, "unrecognized arguments", "--bogus"),
    (["--tls-cert", "{bad}", "--tls-key", "{bad}"], {}, "--tls-cert / --tls-key", "PEM"),
    ([], {"GATEWAY_TLS_CERT": "{bad}"}, "--tls-key", "required"),
    ([], {"GATEWAY_TLS_CLIENT_CA": "{bad}"}, "GATEWAY_TLS_CLIENT_CA", "certificate and key"),
    ([], {"GATEWAY_HEARTBEAT_GRACE": "0.5"}, "GATEWAY_HEARTBEAT_GRACE", "greater than 1"),
    ([], {"GATEWAY_AUTO_REGISTER": "perhaps"}, "GATEWAY_AUTO_REGISTER", "boolean"),
    ([], {"GATEWAY_PARTIES": "[]"}, "GATEWAY_PARTIES", "at least 1"),
    ([], {"GATEWAY_PARTIES": '[{"country_code": "N"}]'}, "GATEWAY_PARTIES[0].country_code", "2"),
    ([], {"GATEWAY_LOG_LEVEL": "chatty"}, "GATEWAY_LOG_LEVEL", "INFO"),
    ([], {"GATEWAY_REQUEST_READ_TIMEOUT": "0"}, "GATEWAY_REQUEST_READ_TIMEOUT", "greater"),
    ([], {"GATEWAY_ADMIN_TOKEN": "short"}, "GATEWAY_ADMIN_TOKEN", "at least 16"),
    # Redis through Sentinel (README "Redis in production").
    ([], {"GATEWAY_REDIS_SENTINELS": "s1:26379"}, "GATEWAY_REDIS_SENTINEL_SERVICE", "required"),
    ([], {"GATEWAY_REDIS_SENTINEL_SERVICE": "mymaster"}, "GATEWAY_REDIS_SENTINELS", "required"),
    (
        [],
        {"GATEWAY_REDIS_SENTINELS": "s1:26379,s2:x", "GATEWAY_REDIS_SENTINEL_SERVICE": "m"},
        "GATEWAY_REDIS_SENTINELS",
        "'s2:x' is not host:port",
    ),
    (
        [],
        {
            "GATEWAY_REDIS_SENTINELS": "s1",
            "GATEWAY_REDIS_SENTINEL_SERVICE": "m",
            "GATEWAY_REDIS_URL": "redis://:hunter2-secret@redis:6379/0",
        },
        "GATEWAY_REDIS_URL",
        "no host or port",
    ),
    ([], {"GATEWAY_REDIS_SENTINEL_PASSWORD": "pw"}, "GATEWAY_REDIS_SENTINEL_PASSWORD", "needs"),
]


@pytest.mark.parametrize(("flags", "env", "name", "reason"), IN_PROCESS)
def test_bad_settings_in_process(
    flags: list[str],
    env: dict[str, str],
    name: str,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.cli import main

    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    for variable in [v for v in os.environ if v.startswith("GATEWAY_")]:
        monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value.replace("{bad}", str(bad)))
    monkeypatch.chdir(tmp_path)
    args = ["serve", *(f.replace("{bad}", str(bad)) for f in flags)]
    try:
        status = main(args)
    except SystemExit as exc:  # argparse's own exit
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    _check((flags, env, out, err), status, out, err, name, reason)
    assert "hunter2" not in out + err  # a URL's password is never echoed


async def test_listening_on_is_logged_once_the_port_accepts(tmp_path: Path) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
        env=_env(GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(60):
            while b"listening on" not in (line := await proc.stderr.readline()):
                assert line, "the gateway ended without listening"
            # No retry: the port accepts from the moment the line is written.
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{port}/admin/chargers",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as r:
                assert r.status == 200
            proc.send_signal(signal.SIGTERM)
            rest = await proc.stderr.read()
            assert await proc.wait() == 0
        assert b"Traceback" not in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_listening_sites_take_the_backlog_setting(tmp_path: Path) -> None:
    # A reconnect storm overflows aiohttp's default accept queue of 128 (measured with
    # tests/bench/bench_cluster.py: 327 of 10,000 chargers timed out); the setting reaches
    # the socket's listen() through the site.
    from aiohttp import web

    from gateway.app import listening_sites
    from gateway.settings import Settings

    settings = Settings(data_dir=tmp_path, listen_backlog=2048)
    assert Settings(data_dir=tmp_path).listen_backlog == 4096
    runner = web.AppRunner(web.Application())
    await runner.setup()
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        [site] = listening_sites(runner, [sock], None, settings)
        assert site._backlog == 2048
        await site.start()
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{sock.getsockname()[1]}/") as r:
            assert r.status == 404  # listening
    finally:
        await runner.cleanup()
        sock.close()
