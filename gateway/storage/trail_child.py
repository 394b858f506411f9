"""The message trail's writer as a process of its own (``GATEWAY_TRAIL_WRITER_PROCESS``).

Run by :class:`gateway.storage.sqlite_trail.SqliteTrailStore` as ``python -m
gateway.storage.trail_child PATH``; nobody else starts it. Why a process: as a thread of
the gateway's, the trail's writer and the event loop take turns at the interpreter's
lock (the GIL), and under load they handed it back and forth thousands of times a second
(uvloop lets it go at every callback), which cost more than the trail's own work
(tests/bench/README.md, the eleventh round). A process has a lock of its own.

What it reads on its standard input, one job after another: a job number and a length
(two little-endian unsigned 32-bit integers), then that many bytes, the job's records
(:data:`gateway.storage.base.TrailRecord` tuples) as one pickled list after another, from
the gateway's own pipe (nobody else can write to it). Each job is appended as the writer
thread would (:func:`~gateway.storage.sqlite_trail._append`, one transaction), then
answered on the standard output: the job number and the length of what follows, a pickle
of the exception when the job failed, nothing when it was written.

It ends when its input ends, having written every job it read: when the gateway
closes it, and when the gateway dies (``kill -9`` included), whatever the pipe still
holds is written first. SIGINT and SIGTERM are ignored for that reason (a terminal's
Ctrl-C and systemd's stop reach every process of the group; the gateway then closes
the pipe itself). An answer that cannot be sent (the gateway gone) is dropped.

Imports: ``gateway.storage.sqlite_trail`` and ``gateway.storage.sqlite``.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, BinaryIO

from gateway.storage.sqlite import _connect
from gateway.storage.sqlite_trail import _CACHED_STATEMENTS, _HEADER, _append, _tune


def _answer(out: BinaryIO, job: int, error: BaseException | None) -> bool:
    """Send the job's answer; False when the gateway is gone (nothing reads it)."""
    body = b""
    if error is not None:
        try:
            body = pickle.dumps(error)
        except Exception:  # an exception that does not pickle: its text
            body = pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))
    try:
        out.write(_HEADER.pack(job, len(body)) + body)
        out.flush()
    except (BrokenPipeError, OSError):
        return False
    return True


def _records(data: bytes) -> list[Any]:
    """The job's records: one pickled list after another (the gateway pickles a large
    job in slices)."""
    records: list[Any] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        records += pickle.load(stream)
    return records


def _write(conn: sqlite3.Connection, data: bytes) -> None:
    records = _records(data)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _append(conn, records)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def serve(path: Path, inp: BinaryIO, out: BinaryIO) -> None:
    """Append every job read from ``inp`` to the trail at ``path`` until ``inp`` ends."""
    conn = _connect(path, "NORMAL", read_only=False, cached_statements=_CACHED_STATEMENTS)
    try:
        _tune(conn)
        answering = True
        while True:
            head = inp.read(_HEADER.size)
            if len(head) < _HEADER.size:
                return
            job, size = _HEADER.unpack(head)
            data = inp.read(size)
            if len(data) < size:
                return
            error: BaseException | None = None
            try:
                _write(conn, data)
            except Exception as exc:
                error = exc
            if answering:
                answering = _answer(out, job, error)
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m gateway.storage.trail_child PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # the name ps and top show, as the threads have
        Path("/proc/self/comm").write_text("trail-writer")
    serve(Path(argv[1]), sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
