"""A writer process of the gateway's (``GATEWAY_WRITER_PROCESSES``): the message trail's
appends, or the status history's, to their SQLite file.

Run by :class:`gateway.storage.sqlite_process.ProcessWriter` as ``python -m
gateway.storage.writer_child KIND PATH`` (KIND ``trail`` or ``history``); nobody else
starts it. The module doc of :mod:`gateway.storage.sqlite_process` says why a process and
what goes through its pipes. Each job is written as the writer thread would write it, in
one transaction: the trail's by :func:`~gateway.storage.trail_rows._append`
(``synchronous=NORMAL``), the history's rows by its INSERT (``synchronous=FULL``: the
commit is on the disk before the answer).

It ends when its input ends, having written every job it read: when the gateway closes
it, and when the gateway dies (``kill -9`` included), whatever the pipe still holds is
written first. SIGINT and SIGTERM are ignored for that reason (a terminal's Ctrl-C and
systemd's stop reach every process of the group; the gateway then closes the pipe
itself). An answer that cannot be sent (the gateway gone) is dropped. ``ps`` and ``top``
show it as ``trail-writer`` or ``history-writer``, as the threads are named.

Imports: ``gateway.storage.sqlite_rows`` and ``trail_rows`` only (the standard library's
besides), so that it starts in tens of milliseconds and holds a few MiB: not the gateway's
models.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

# Only these (the standard library's besides): the process starts in tens of ms.
from gateway.storage.sqlite_rows import HEADER, _connect, append_status
from gateway.storage.trail_rows import _CACHED_STATEMENTS, _append, _tune


@dataclass(frozen=True)
class _Kind:
    synchronous: Literal["FULL", "NORMAL"]
    cached_statements: int
    tune: Callable[[sqlite3.Connection], None]
    write: Callable[[sqlite3.Connection, list[Any]], None]


KINDS: dict[str, _Kind] = {
    "trail": _Kind("NORMAL", _CACHED_STATEMENTS, _tune, _append),
    "history": _Kind("FULL", 128, lambda conn: None, append_status),
}


def _answer(out: BinaryIO, job: int, error: BaseException | None) -> bool:
    """Send the job's answer; False when the gateway is gone (nothing reads it)."""
    body = b""
    if error is not None:
        try:
            body = pickle.dumps(error)
        except Exception:  # an exception that does not pickle: its text
            body = pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))
    try:
        out.write(HEADER.pack(job, len(body)) + body)
        out.flush()
    except (BrokenPipeError, OSError):
        return False
    return True


def _rows(data: bytes) -> list[Any]:
    """The job's rows: one pickled list after another (a large job comes in slices)."""
    rows: list[Any] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        rows += pickle.load(stream)
    return rows


def _write(kind: _Kind, conn: sqlite3.Connection, data: bytes) -> None:
    rows = _rows(data)
    conn.execute("BEGIN IMMEDIATE")
    try:
        kind.write(conn, rows)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def serve(kind: _Kind, path: Path, inp: BinaryIO, out: BinaryIO) -> None:
    """Write every job read from ``inp`` to the database at ``path`` until ``inp`` ends."""
    conn = _connect(
        path, kind.synchronous, read_only=False, cached_statements=kind.cached_statements
    )
    try:
        kind.tune(conn)
        answering = True
        while True:
            head = inp.read(HEADER.size)
            if len(head) < HEADER.size:
                return
            job, size = HEADER.unpack(head)
            data = inp.read(size)
            if len(data) < size:
                return
            error: BaseException | None = None
            try:
                _write(kind, conn, data)
            except Exception as exc:
                error = exc
            if answering:
                answering = _answer(out, job, error)
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in KINDS:
        print(
            f"usage: python -m gateway.storage.writer_child {{{','.join(KINDS)}}} PATH",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # the name ps and top show, as the threads have
        Path("/proc/self/comm").write_text(f"{argv[1]}-writer")
    serve(KINDS[argv[1]], Path(argv[2]), sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
