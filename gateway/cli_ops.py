"""The operator's commands besides ``serve`` (README "Command line"): ``--version``,
``check-config``, ``backup`` and ``report``. Each ends with one line on stderr and a
nonzero status when it cannot do its job (2: a setting or argument; 1: the work failed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, Any, TextIO

EXIT_FAILED = 1
EXIT_BAD_SETTING = 2

# Settings that are secrets (or may hold one): never printed.
SECRETS = ("admin_token", "metrics_token", "secret_key", "redis_sentinel_password")


class CommandError(Exception):
    """One line for stderr, and the exit status."""

    def __init__(self, line: str, status: int = EXIT_FAILED) -> None:
        super().__init__(line)
        self.status = status


def version() -> str:
    return f"ocpi-gateway {metadata.version('ocpi-gateway')}"


# -- check-config ------------------------------------------------------------------------


def _env_set(name: str) -> bool:
    # pydantic-settings reads GATEWAY_* case-insensitively.
    return any(key.upper() == name for key in os.environ)


def source_of(field: str, flags: Collection[str]) -> str:
    env = f"GATEWAY_{field.upper()}"
    if field in flags:
        return "flag --" + field.replace("_", "-")
    if _env_set(env):
        return f"environment variable {env}"
    return "default"


def shown_value(field: str, value: Any) -> str:
    if value is None:
        return "(unset)"
    if field in SECRETS:
        return "**** (set)"
    if hasattr(value, "get_secret_value"):
        return "**** (set)"
    text = value if isinstance(value, str) else str(value)
    if field in ("redis_url",):  # a password in the URL's user part
        text = re.sub(r"(://[^:@/]*:)[^@/]*@", r"\1****@", text)
    if not isinstance(value, str | int | float | bool | Path) and hasattr(value, "__iter__"):
        import json

        text = json.dumps(
            [v.model_dump() if hasattr(v, "model_dump") else v for v in value], default=str
        )
    return text


def check_config(settings: Any, flags: Collection[str], out: TextIO) -> None:
    """Print every setting with its value (secrets masked) and where it came from; the
    checks ``serve`` makes of settings before it binds (``ConfigError``) run first."""
    settings.redis_sentinel()  # ConfigError for Sentinel settings that do not fit
    _ = settings.base_url
    for field in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(settings, field, None)
        if path is not None and not Path(path).is_file():
            from gateway.settings import ConfigError

            raise ConfigError(field, f"{path} is not a readable file")
    rows = []
    for field in type(settings).model_fields:
        name = "--" + field.replace("_", "-") if field in flags else f"GATEWAY_{field.upper()}"
        rows.append((name, shown_value(field, getattr(settings, field)), source_of(field, flags)))
    width = max(len(r[0]) for r in rows)
    value_width = min(max(len(r[1]) for r in rows), 48)
    out.write(f"{version()}: settings are valid\n")
    for name, value, source in rows:
        out.write(f"{name:<{width}}  {value:<{value_width}}  {source}\n")


# -- backup ------------------------------------------------------------------------------


def _add_history(copy: sqlite3.Connection, database: Path) -> None:
    """The status history (a file of its own, ``gateway.storage.sqlite_history``) into
    the copy, as the table the main database held before: at its first start on the
    copy, the gateway moves it back to its own file. A copy whose database still holds
    that table (a gateway that has not opened it since) keeps it: it is the history."""
    # Imported here: the storage modules are not needed by the other commands.
    from gateway.storage.sqlite_history import HAS_TABLE, TABLE, copy_history, history_path

    history = history_path(database)
    if copy.execute(HAS_TABLE).fetchone() is not None or not history.is_file():
        return
    copy.execute("ATTACH DATABASE ? AS history", (f"{history.resolve().as_uri()}?mode=ro",))
    try:
        copy.execute(TABLE)
        with copy:  # one transaction
            copy_history(copy, "history")
    finally:
        copy.execute("DETACH DATABASE history")


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the database at ``source`` to ``target`` with SQLite's online backup API: a
    consistent snapshot while the gateway keeps writing (WAL: the copy reads one
    snapshot, writers are not blocked). Written beside ``target`` and renamed into place
    once complete and checked. Returns the copy's size in bytes."""
    if not source.is_file():
        raise CommandError(f"backup: no database at {source} (is --data-dir right?)", 2)
    if target.exists() and target.resolve() == source.resolve():
        raise CommandError("backup: --to names the live database itself", 2)
    if target.is_dir():
        raise CommandError(f"backup: --to {target} is a directory", 2)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise CommandError(f"backup: --to: no directory {folder}", 2)
    fd, scratch_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    scratch = Path(scratch_name)
    try:
        # The source is opened read-only: a backup never writes to the live database.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            # URIs on: the status history is attached read-only (_add_history).
            dst = sqlite3.connect(scratch.resolve().as_uri(), uri=True)
            try:
                # One step (pages=-1): one read snapshot for the whole copy, so a busy
                # writer cannot make it start over and over.
                src.backup(dst, pages=-1)
                _add_history(dst, source)
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise CommandError(f"backup: the copy fails its check: {check}")
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(scratch, target)
    except sqlite3.Error as exc:
        raise CommandError(f"backup: {exc}") from None
    except OSError as exc:
        raise CommandError(f"backup: {exc.strerror or exc}: {exc.filename or target}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()
    return target.stat().st_size


# -- report ------------------------------------------------------------------------------


class ProgressBar:
    """``done/total`` as a bar on ``stream``, redrawn at most ten times a second; silent
    unless the stream is a terminal."""

    def __init__(self, label: str, stream: TextIO, clock: Callable[[], float] = time.monotonic):
        self._label = label
        self._stream = stream
        self._clock = clock
        self._shown_at = 0.0
        self.enabled = stream.isatty()
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if done < total and now - self._shown_at < 0.1:
            return
        self._shown_at = now
        width = 30
        filled = width * done // total if total else width
        share = 100 * done // total if total else 100
        bar = "#" * filled + "." * (width - filled)
        self._stream.write(f"\r{self._label} [{bar}] {share:3d}% {done}/{total} chargers")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _open_output(path: str | None) -> tuple[IO[str], bool]:
    if path is None or path == "-":
        return sys.stdout, False
    try:
        return open(path, "w", newline="", encoding="utf-8"), True
    except OSError as exc:
        raise CommandError(f"report: cannot write {path}: {exc.strerror}", 2) from None


def report_params(args: argparse.Namespace) -> dict[str, str]:
    params = {"from": args.from_, "to": args.to, "by": args.by, "period": args.period}
    if args.tz:
        params["tz"] = args.tz
    return {k: v for k, v in params.items() if v is not None}


async def report_from_store(
    settings: Any,
    kind: str,
    params: Mapping[str, str],
    out: IO[str],
    csv_out: bool,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Make the report from the store itself (Redis; or SQLite when no gateway holds
    it); rows written as they come. Returns how many rows."""
    from gateway.domain.clock import SystemClock
    from gateway.reports.compute import columns, csv_line, json_row
    from gateway.reports.request import ReportInputError, parse_request
    from gateway.reports.source import report_rows
    from gateway.storage.base import StorageError
    from gateway.storage.factory import open_store

    try:
        spec = parse_request(kind, params)
    except ReportInputError as exc:
        raise CommandError(f"report: --{exc.field.replace('_', '-')}: {exc.reason}", 2) from None
    try:
        store = await open_store(
            data_dir=settings.data_dir,
            redis_url=settings.redis_url,
            redis_prefix=settings.redis_prefix,
            retry_seconds=settings.storage_retry_seconds,
            redis_sentinel=settings.redis_sentinel(),
        )
    except StorageError as exc:
        hint = " (pass --url of the running gateway)" if "in use" in str(exc) else ""
        raise CommandError(f"report: {exc}{hint}", 2) from None
    names = columns(spec.kind, spec.by)
    count = 0
    try:
        if csv_out:
            out.write(csv_line(names))
        else:
            out.write("[")
        async for row in report_rows(store, spec, SystemClock().now(), progress):
            if csv_out:
                out.write(csv_line(row.get(n) for n in names))
            else:
                out.write(("," if count else "") + "\n" + json_row(row))
            count += 1
        if not csv_out:
            out.write("\n]\n")
    except StorageError as exc:
        raise CommandError(f"report: storage failed: {exc}") from None
    finally:
        await store.close()
    return count


def read_admin_token(settings: Any) -> str:
    token = settings.admin_token
    if token is not None:
        return str(token.get_secret_value())
    path = Path(settings.data_dir) / "admin_token"
    try:
        return path.read_text().strip()
    except OSError:
        raise CommandError(
            "report: --url needs the admin token: set GATEWAY_ADMIN_TOKEN (or --data-dir"
            " holding admin_token)",
            2,
        ) from None


async def report_from_url(
    url: str,
    token: str,
    kind: str,
    params: Mapping[str, str],
    out: IO[str],
    csv_out: bool,
    progress: Callable[[int], None] | None,
) -> int:
    """Ask a running gateway's admin API for the report (``GET /admin/reports/{kind}``)
    and copy its answer to ``out`` as it streams in. Returns the bytes copied."""
    import aiohttp

    query = dict(params) | {"format": "csv" if csv_out else "json"}
    received = 0
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{url.rstrip('/')}/admin/reports/{kind}",
                params=query,
                headers={"Authorization": f"Bearer {token}"},
            ) as resp,
        ):
            if resp.status != 200:
                try:
                    body = await resp.json()
                    reason = str(body.get("error", resp.reason))
                    field = body.get("field")
                except (aiohttp.ContentTypeError, ValueError):
                    reason, field = str(resp.reason), None
                where = f"--{str(field).replace('_', '-')}: " if field else ""
                status = EXIT_BAD_SETTING if resp.status in (400, 404) else EXIT_FAILED
                raise CommandError(f"report: {where}{reason} (HTTP {resp.status})", status)
            decoder = _Utf8()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                out.write(decoder.feed(chunk))
                received += len(chunk)
                if progress is not None:
                    progress(received)
            out.write(decoder.feed(b"", final=True))
    except aiohttp.ClientError as exc:
        raise CommandError(f"report: --url {url}: {exc}") from None
    return received


class _Utf8:
    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, data: bytes, final: bool = False) -> str:
        return str(self._decoder.decode(data, final))


def run_report(args: argparse.Namespace, settings: Any) -> int:
    csv_out = args.json is None
    target = args.json if args.json is not None else args.csv
    params = report_params(args)
    out, close = _open_output(target)
    try:
        if args.url:
            token = read_admin_token(settings)
            counter = _ByteCounter(sys.stderr)
            try:
                asyncio.run(
                    report_from_url(args.url, token, args.kind, params, out, csv_out, counter)
                )
            finally:
                counter.close()
        else:
            bar = ProgressBar(f"report {args.kind}", sys.stderr)
            try:
                asyncio.run(report_from_store(settings, args.kind, params, out, csv_out, bar))
            finally:
                bar.close()
    finally:
        if close:
            out.close()
    return 0


class _ByteCounter:
    """What came in so far, on a terminal only (a gateway's answer has no known size)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._shown_at = 0.0
        self._drawn = False

    def __call__(self, received: int) -> None:
        now = time.monotonic()
        if self._enabled and now - self._shown_at >= 0.1:
            self._shown_at = now
            self._stream.write(f"\rreport: {received / 1e6:.1f} MB received")
            self._stream.flush()
            self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
