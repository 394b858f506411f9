"""The writer processes (``writer_processes``, gateway.storage.sqlite_process and
writer_child), on the message trail: what one was sent survives it and the gateway's
death, a dead one is replaced, a stop signal does not end it, a closed store leaves none
behind. The store contracts run on them too (test_contract_trail.py and
test_contract_history.py, ``sqlite-process``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.storage.base import StorageError, Store, TrailEntry
from gateway.storage.sqlite import open_sqlite_store
from gateway.storage.sqlite_trail import SqliteTrailStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def frames(first: int, count: int) -> list[TrailEntry]:
    return [
        TrailEntry(
            at=T0 + timedelta(milliseconds=i),
            protocol="ocpp",
            direction="in",
            charger_id=f"CP-{i % 7}",
            action="Heartbeat",
            message_type="CALL",
            message_id=f"m{i}",
            size=42,
        )
        for i in range(first, first + count)
    ]


def trail_of(store: Store) -> SqliteTrailStore:
    assert isinstance(store.trail, SqliteTrailStore)
    return store.trail


def writer_pid(store: Store) -> int:
    process = trail_of(store)._process
    assert process is not None and process.pid is not None
    return process.pid


def ended(pid: int) -> bool:
    """Process ``pid`` (not ours to reap) is gone, or a zombie (ended, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def gone(pid: int, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not ended(pid):
        assert asyncio.get_running_loop().time() < deadline, f"process {pid} still runs"
        await asyncio.sleep(0.05)


async def test_a_closed_store_has_written_everything_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.sqlite3"
    store = await open_sqlite_store(path, writer_processes=True)
    await store.trail.append_batch(frames(0, 300))
    pid = writer_pid(store)
    await store.close()
    await gone(pid)
    store = await open_sqlite_store(path)  # the writer thread's store reads the same
    try:
        assert await store.trail.count() == 300
    finally:
        await store.close()


async def test_a_killed_writer_fails_its_job_and_the_next_append_starts_another(
    tmp_path: Path,
) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3", writer_processes=True)
    try:
        await store.trail.append_batch(frames(0, 10))
        pid = writer_pid(store)
        os.kill(pid, signal.SIGSTOP)  # holds the next job unanswered
        waiting = asyncio.ensure_future(store.trail.append_batch(frames(10, 10)))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(StorageError, match="writer process ended"):
            await asyncio.wait_for(waiting, 20)
        await store.trail.append_batch(frames(20, 10))
        assert writer_pid(store) != pid
        # What was written before the kill is kept; the killed job was not written.
        entries, _ = await store.trail.query(limit=100)
        assert [e.message_id for e in entries] == [f"m{i}" for i in (*range(10), *range(20, 30))]
    finally:
        await store.close()


async def test_a_stop_signal_does_not_end_the_writer(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3", writer_processes=True)
    try:
        await store.trail.append_batch(frames(0, 5))
        pid = writer_pid(store)
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
        await asyncio.sleep(0.2)
        await store.trail.append_batch(frames(5, 5))
        assert writer_pid(store) == pid
        assert await store.trail.count() == 10
    finally:
        await store.close()


async def test_a_writer_that_ends_without_writing_is_started_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3", writer_processes=True)
    try:
        python = sys.executable
        monkeypatch.setattr(sys, "executable", "/bin/false")  # ends at once, status 1
        with pytest.raises(StorageError, match=r"ended \(exit status 1\)"):
            await store.trail.append_batch(frames(0, 1))
        # Not started again at every flush: after 1 s, then 2, 4 ... (at most 30).
        with pytest.raises(StorageError, match=r"1 time\(s\) in a row.*next starts in 1\.0 s"):
            await store.trail.append_batch(frames(1, 1))
        monkeypatch.setattr(sys, "executable", python)
        await asyncio.sleep(1.05)
        await store.trail.append_batch(frames(2, 1))
        entries, _ = await store.trail.query()
        assert [e.message_id for e in entries] == ["m2"]
    finally:
        await store.close()


async def test_appends_are_written_in_the_order_they_were_made(tmp_path: Path) -> None:
    # A large batch is pickled in slices, the event loop free between them: a small one
    # made meanwhile still goes after it (entries of one time keep their append order).
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3", writer_processes=True)
    try:
        large = [replace(e, at=T0) for e in frames(0, 3500)]
        small = [replace(e, at=T0) for e in frames(3500, 1)]
        await asyncio.gather(store.trail.append_batch(large), store.trail.append_batch(small))
        entries, _ = await store.trail.query(limit=1000, newest_first=True)
        assert [e.message_id for e in entries[:3]] == ["m3500", "m3499", "m3498"]
        assert await store.trail.count() == 3501
    finally:
        await store.close()


async def test_an_append_after_close_is_refused(tmp_path: Path) -> None:
    store = await open_sqlite_store(tmp_path / "gateway.sqlite3", writer_processes=True)
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.trail.append_batch(frames(0, 1))


# A gateway killed (-9) once its last batch is in the pipe, before the writer could have
# written it: 40,000 entries take the writer far longer than the kill.
_DYING_GATEWAY = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from gateway.storage.base import TrailEntry
    from gateway.storage.sqlite import open_sqlite_store

    T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def frames(first, count):
        return [TrailEntry(at=T0 + timedelta(milliseconds=i), protocol="ocpp",
                           direction="in", charger_id="CP-1", action="Heartbeat",
                           message_type="CALL", message_id=f"m{i}", size=42)
                for i in range(first, first + count)]

    async def main():
        store = await open_sqlite_store(Path(sys.argv[1]), writer_processes=True)
        await store.trail.append_batch(frames(0, 100))
        sending = asyncio.ensure_future(store.trail.append_batch(frames(100, 40_000)))
        process = store.trail._process._run
        stdin = process.process.stdin
        while not process.pending or stdin.transport.get_write_buffer_size():
            await asyncio.sleep(0)  # until every byte of the job is in the pipe
        print(process.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


async def test_what_the_gateway_sent_is_written_after_it_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite3"
    dying = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DYING_GATEWAY,
        str(path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(dying.communicate(), 60)
    assert dying.returncode == -signal.SIGKILL
    await gone(int(out.split()[0]), 60)  # it ends by itself once it wrote what it read
    store = await open_sqlite_store(path)
    try:
        assert await store.trail.count() == 40_100
        entries, _ = await store.trail.query(newest_first=True, limit=1)
        assert entries[0].message_id == "m40099"
    finally:
        await store.close()


_UNCLOSED = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from gateway.storage.base import TrailEntry
    from gateway.storage.sqlite import open_sqlite_store

    async def main():
        store = await open_sqlite_store(Path(sys.argv[1]), writer_processes=True)
        await store.trail.append_batch([TrailEntry(
            at=datetime(2026, 3, 1, tzinfo=UTC), protocol="ocpp", direction="in",
            charger_id="CP-1", action="Heartbeat", message_type="CALL", message_id="m0",
            size=42)])
        # returns without closing the store: asyncio.run cancels the answers' reader

    asyncio.run(main())
    """
)


async def test_a_program_that_never_closes_its_store_still_ends(tmp_path: Path) -> None:
    # The reader of the process's answers, cancelled, closes the process's input before
    # it waits for it: else each would wait for the other for ever.
    path = tmp_path / "gateway.sqlite3"
    program = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _UNCLOSED, str(path), cwd=ROOT
    )
    assert await asyncio.wait_for(program.wait(), 60) == 0
    store = await open_sqlite_store(path)
    try:
        assert await store.trail.count() == 1
    finally:
        await store.close()


def test_the_writer_process_imports_none_of_the_gateways_models() -> None:
    # What keeps it small and quick to start (tens of ms, about 16 MiB).
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gateway.storage.writer_child; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('gateway'))))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found == [
        "gateway",
        "gateway.storage",
        "gateway.storage.sqlite_rows",
        "gateway.storage.trail_rows",
        "gateway.storage.writer_child",
    ]
