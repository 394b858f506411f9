"""Command line: ``ocpi-gateway serve`` and ``ocpi-gateway tariff ...``.

A setting ``serve`` cannot start with (a bad flag or ``GATEWAY_*`` value, a port in use,
an unwritable data dir, missing TLS files, an unreachable Redis) ends the command with one
line on stderr naming the setting, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Collection, Sequence
from typing import Any, NoReturn

# Exit status of a run that could not start because of its settings (as argparse's).
EXIT_BAD_SETTING = 2

# The Settings fields that have a flag of ``serve``.
_FLAGS = ("host", "port", "data_dir", "tls_cert", "tls_key", "tls_client_ca")


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line."""

    def error(self, message: str) -> NoReturn:
        # "argument --port: invalid int value: 'x'" names the flag already.
        print(
            f"ocpi-gateway: {message.removeprefix('argument ')} (see {self.prog} --help)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_BAD_SETTING)


def setting_name(field: str, flags: Collection[str] = ()) -> str:
    """How the user set ``field``: its flag when given as one (or when it has one and no
    environment variable sets it), else its ``GATEWAY_*`` variable."""
    env = f"GATEWAY_{field.upper()}"
    if field in flags:
        return "--" + field.replace("_", "-")
    if field in _FLAGS and not any(name.upper() == env for name in os.environ):
        return "--" + field.replace("_", "-")
    return env


# Settings whose values may hold a secret: never echoed.
_SECRET = ("admin_token", "redis_url")


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text if len(text) <= 40 else text[:40] + "..."
    return repr(text) if isinstance(value, str) else text


def validation_problems(error: Any, flags: Collection[str]) -> str:
    """A pydantic ValidationError of :class:`Settings` as ``NAME: problem`` parts."""
    parts = []
    for item in error.errors(include_url=False):
        loc = [str(p) for p in item["loc"]]
        name = setting_name(loc[0], flags) if loc else "settings"
        where = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:])
        problem = str(item["msg"]).removeprefix("Value error, ")
        if "input" in item and loc and loc[0] not in _SECRET and not isinstance(
            item["input"], dict
        ):
            problem += f", got {_shown(item['input'])}"
        parts.append(f"{name}{where}: {problem}")
    return "; ".join(parts)


def _settings_error(error: Exception, flags: Collection[str]) -> str:
    """pydantic-settings' own errors (a complex value that is not JSON)."""
    found = re.search(r'field "(\w+)"', str(error))
    name = setting_name(found.group(1), flags) if found else "GATEWAY_*"
    cause = error.__cause__
    detail = f"not valid JSON ({cause})" if isinstance(cause, ValueError) else str(error)
    return f"{name}: {detail}"


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from gateway.app import run_server
    from gateway.settings import ConfigError, Settings

    overrides = {
        key: value for key in _FLAGS if (value := getattr(args, key)) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        return _fail(validation_problems(exc, overrides))
    except SettingsError as exc:
        return _fail(_settings_error(exc, overrides))
    try:
        return run_server(settings)
    except ConfigError as exc:
        if not exc.fields:  # the problem names its setting itself
            return _fail(exc.problem)
        names = " / ".join(setting_name(field, overrides) for field in exc.fields)
        return _fail(f"{names}: {exc.problem}")


def _fail(line: str) -> int:
    print(f"ocpi-gateway: {' '.join(line.split())}", file=sys.stderr)
    return EXIT_BAD_SETTING


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tariff"]:
        # The pricing command lives with the pricer in the protocol package.
        from ocpi.tariffs.cli import main as tariff_main

        status: int = tariff_main(argv[1:])
        return status

    parser = _Parser(prog="ocpi-gateway")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="run the gateway (OCPP, OCPI and admin API)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8180)")
    serve.add_argument("--data-dir", help="directory for the embedded database (default ./data)")
    serve.add_argument("--tls-cert", help="PEM server certificate chain (OCPP security profile 2)")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument(
        "--tls-client-ca",
        help="PEM CA bundle; require client certificates chaining to it (profile 3)",
    )
    sub.add_parser("tariff", help="price CDRs from OCPI tariffs (see `tariff --help`)")
    args = parser.parse_args(argv)
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
