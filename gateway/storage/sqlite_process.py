"""SQLite appends written by a process of their own (``GATEWAY_WRITER_PROCESSES``): the
gateway's side of :mod:`gateway.storage.writer_child`.

Why: the message trail and the status history are written in batches, off the chargers'
path. As threads of the gateway's, their writers and the event loop take turns at the
interpreter's lock (the GIL), and under load they handed it back and forth thousands of
times a second (uvloop lets it go at every callback, and a thread waiting for it is woken
each time), which cost more than the writing (tests/bench/README.md, the eleventh round).
A process has a lock of its own. The main database's writes stay in its thread: a
charger's answer waits for them, and a pipe's round trip would be added to each.

:class:`ProcessWriter` is what a store holds: ``append(rows)`` returns once the process
has committed them (or raises :class:`StorageError`), in the order the appends were made.
The process is started at the first append and again after one ended: at once when it
had answered a job, else after 1 s, then 2, 4 ... at most 30 (one that cannot open its
file would otherwise be started at every batch). What was handed to a process is written
even when the gateway dies (it reads its pipe to the end first); what it had not answered
when it died itself fails.

The framing, both ways: a job number and a length (two little-endian unsigned 32-bit
integers), then that many bytes. To the process: the job's rows as one pickled list after
another (a large job is pickled in slices, the event loop free between them). From it:
nothing when the job was written, else the pickled exception.

Imports: ``gateway.storage.base``, ``sqlite`` and ``sqlite_rows`` (the framing).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from gateway.storage.base import StorageError
from gateway.storage.sqlite import _as_storage_error
from gateway.storage.sqlite_rows import HEADER

# A job's rows are pickled in slices of this many: 10,000 trail entries in one go held
# the event loop for about 8 ms (0.7 µs an entry).
_PICKLE_SLICE: Final = 1000
_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
# Seconds a closing store waits for its writer process to write what it was sent.
_CLOSE_TIMEOUT: Final = 30.0
_RESTART_MAX_DELAY: Final = 30.0


class _Run:
    """One run of a writer process: its pipes, the jobs sent and not yet answered, and
    the task reading the answers. When it ends, every job still waiting fails."""

    def __init__(self, kind: str, process: asyncio.subprocess.Process) -> None:
        self.kind = kind
        self.process = process
        self.pending: dict[int, asyncio.Future[None]] = {}
        self.next_job = 0
        self.answered = False  # it answered a job (it runs, and opened its file)
        self.ended_at = 0.0  # the event loop's time it was seen to end
        self.sending = asyncio.Lock()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, kind: str, path: Path) -> _Run:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.storage.writer_child",
                kind,
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise StorageError(f"cannot start the {kind}'s writer process: {exc}") from exc
        return cls(kind, process)

    @property
    def running(self) -> bool:
        return not self.reader.done()

    def ended(self) -> str:
        return f"the {self.kind}'s writer process ended (exit status {self.process.returncode})"

    async def append(self, rows: Sequence[Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None  # started with a pipe
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with self.sending:  # jobs go in the order they came, their parts together
            parts = []
            for start in range(0, len(rows), _PICKLE_SLICE):
                if start:
                    await asyncio.sleep(0)  # the event loop's other work between slices
                parts.append(pickle.dumps(list(rows[start : start + _PICKLE_SLICE]), _PROTOCOL))
            self.next_job = job = (self.next_job + 1) & 0xFFFFFFFF
            self.pending[job] = done
            stdin.write(HEADER.pack(job, sum(map(len, parts))))
            stdin.writelines(parts)
        try:
            await stdin.drain()
        except (ConnectionError, RuntimeError):  # the process is gone
            self.pending.pop(job, None)
            with contextlib.suppress(TimeoutError):  # its end seen (ended_at, the status)
                await asyncio.wait_for(asyncio.shield(self.reader), _CLOSE_TIMEOUT)
            raise StorageError(self.ended()) from None
        await done

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                job, size = HEADER.unpack(await stdout.readexactly(HEADER.size))
                body = await stdout.readexactly(size) if size else b""
                self.answered = True
                done = self.pending.pop(job, None)
                if done is None or done.done():
                    continue
                if not body:
                    done.set_result(None)
                    continue
                try:
                    error = pickle.loads(body)
                except Exception as exc:  # it pickled it: never, unless its code differs
                    error = StorageError(f"the {self.kind}'s writer process: {exc}")
                if not isinstance(error, Exception):
                    error = StorageError(f"the {self.kind}'s writer process: {error!r}")
                done.set_exception(_as_storage_error(error))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # Its input closed first: when this task is cancelled (the event loop closing
            # with the store still open), the process would otherwise wait for more jobs,
            # and this task for the process, for ever.
            stdin = self.process.stdin
            if stdin is not None and not stdin.is_closing():
                stdin.close()
            await self.process.wait()
            self.ended_at = asyncio.get_running_loop().time()
            gone = StorageError(self.ended())
            for done in self.pending.values():
                if not done.done():
                    done.set_exception(gone)
            self.pending.clear()

    async def close(self) -> None:
        """Close its input (it writes what it read, then ends) and wait for it."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.reader), _CLOSE_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.reader


class ProcessWriter:
    """Appends of one kind (``trail``, ``history``: :mod:`gateway.storage.writer_child`)
    to the database at ``path``, by a process of their own (see the module doc)."""

    def __init__(self, kind: str, path: Path) -> None:
        self._kind = kind
        self._path = path.absolute()  # the same file whatever the process's directory
        self._run: _Run | None = None
        self._starting = asyncio.Lock()
        self._closed = False
        self._failed_starts = 0  # processes in a row that ended answering nothing
        self._next_start = 0.0  # the event loop's time the next may start

    @property
    def pid(self) -> int | None:
        """The running process's id (None before the first append or after it ended)."""
        run = self._run
        return run.process.pid if run is not None and run.running else None

    async def append(self, rows: Sequence[Any]) -> None:
        """``rows`` committed by the process (its kind's write), or StorageError."""
        await (await self._running()).append(rows)

    async def close(self) -> None:
        async with self._starting:
            self._closed = True
            run, self._run = self._run, None
        if run is not None:
            await run.close()

    async def _running(self) -> _Run:
        async with self._starting:
            if self._closed:
                raise StorageError(f"the {self._kind}'s store is closed")
            run = self._run
            if run is not None and run.running:
                return run
            now = asyncio.get_running_loop().time()
            if run is not None:  # it ended: replaced, at once if it had answered
                self._run = None
                self._failed_starts = 0 if run.answered else self._failed_starts + 1
                self._next_start = run.ended_at + self._restart_delay()
            if now < self._next_start:
                raise StorageError(
                    f"the {self._kind}'s writer process ended {self._failed_starts} time(s)"
                    f" in a row without answering; the next starts in"
                    f" {self._next_start - now:.1f} s"
                )
            try:
                self._run = await _Run.start(self._kind, self._path)
            except StorageError:
                self._failed_starts += 1
                self._next_start = now + self._restart_delay()
                raise
            return self._run

    def _restart_delay(self) -> float:
        if not self._failed_starts:
            return 0.0
        return float(min(_RESTART_MAX_DELAY, 2.0 ** (self._failed_starts - 1)))
