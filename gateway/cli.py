"""Command line: ``ocpi-gateway serve``, ``check-config``, ``backup``, ``report``,
``tariff ...`` and ``--version`` (the operator's commands: :mod:`gateway.cli_ops`).

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
from pathlib import Path
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
        if (
            "input" in item
            and loc
            and loc[0] not in _SECRET
            and not isinstance(item["input"], dict)
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


def _settings(
    args: argparse.Namespace, fields: Sequence[str] = _FLAGS
) -> tuple[Any, dict[str, Any]]:
    """The settings from the environment and the flags ``fields`` (those ``args`` has);
    ``_Failed`` with the one line to print when they are not valid."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from gateway.settings import Settings

    overrides = {key: value for key in fields if (value := getattr(args, key, None)) is not None}
    try:
        return Settings(**overrides), overrides
    except ValidationError as exc:
        raise _Failed(validation_problems(exc, overrides)) from None
    except SettingsError as exc:
        raise _Failed(_settings_error(exc, overrides)) from None


class _Failed(Exception):
    """A setting the command cannot run with: the line to print (exit status 2)."""


def _config_problem(exc: Any, overrides: Collection[str]) -> str:
    if not exc.fields:  # the problem names its setting itself
        return str(exc.problem)
    names = " / ".join(setting_name(field, overrides) for field in exc.fields)
    return f"{names}: {exc.problem}"


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import run_server
    from gateway.settings import ConfigError

    try:
        settings, overrides = _settings(args)
    except _Failed as exc:
        return _fail(str(exc))
    try:
        return run_server(settings)
    except ConfigError as exc:
        return _fail(_config_problem(exc, overrides))


def _operator_command(args: argparse.Namespace) -> int:
    """check-config, backup, report (gateway.cli_ops)."""
    from gateway import cli_ops
    from gateway.settings import ConfigError

    try:
        settings, overrides = _settings(args)
        if args.command == "check-config":
            cli_ops.check_config(settings, overrides, sys.stdout)
            return 0
        if args.command == "backup":
            if settings.uses_redis:
                print(
                    "ocpi-gateway: backup: the store is Redis (GATEWAY_REDIS_URL): back up"
                    ' its AOF and RDB files instead, see README "Backups"',
                    file=sys.stderr,
                )
                return cli_ops.EXIT_FAILED
            from gateway.storage.factory import SQLITE_FILE_NAME

            source = settings.data_dir / SQLITE_FILE_NAME
            size = cli_ops.backup_sqlite(source, args.to)
            print(f"backed up {source} to {args.to} ({size} bytes)")
            return 0
        return cli_ops.run_report(args, settings)
    except _Failed as exc:
        return _fail(str(exc))
    except ConfigError as exc:
        return _fail(_config_problem(exc, overrides))
    except cli_ops.CommandError as exc:
        print(f"ocpi-gateway: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("ocpi-gateway: interrupted", file=sys.stderr)
        return 130


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

    from gateway.cli_ops import version

    parser = _Parser(prog="ocpi-gateway")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="run the gateway (OCPP, OCPI and admin API)")
    _setting_flags(serve)
    check = sub.add_parser(
        "check-config",
        help="validate the settings (environment and flags) and show where each came from",
    )
    _setting_flags(check)
    backup = sub.add_parser(
        "backup", help="copy the SQLite database to FILE, safely while the gateway runs"
    )
    backup.add_argument("--to", required=True, type=Path, metavar="FILE", help="the copy")
    backup.add_argument("--data-dir", help="the gateway's data dir (default ./data)")
    report = sub.add_parser("report", help="a report (usage, revenue, uptime, faults) as CSV")
    report.add_argument("kind", choices=("usage", "revenue", "uptime", "faults"))
    report.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="TIME",
        help="start: RFC 3339 time or YYYY-MM-DD (in --tz)",
    )
    report.add_argument("--to", required=True, metavar="TIME", help="end, exclusive")
    report.add_argument(
        "--by", default="charger", choices=("charger", "evse", "location", "partner")
    )
    report.add_argument("--period", default="range", choices=("day", "week", "month", "range"))
    report.add_argument("--tz", help="IANA time zone of the periods (default UTC)")
    out = report.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="FILE", help="write CSV to FILE (default: CSV to stdout)")
    out.add_argument("--json", metavar="FILE", help="write JSON rows to FILE (- for stdout)")
    report.add_argument(
        "--url",
        help="ask the gateway running at URL (its admin API, token from GATEWAY_ADMIN_TOKEN"
        " or the data dir) instead of reading the store; needed for SQLite while it runs",
    )
    report.add_argument("--data-dir", help="the gateway's data dir (default ./data)")
    sub.add_parser("tariff", help="price CDRs from OCPI tariffs (see `tariff --help`)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _operator_command(args)


def _setting_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the settings (``_FLAGS``): serve's, and check-config's."""
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8180)")
    parser.add_argument("--data-dir", help="directory for the embedded database (default ./data)")
    parser.add_argument("--tls-cert", help="PEM server certificate chain (OCPP security profile 2)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        help="PEM CA bundle; require client certificates chaining to it (profile 3)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
