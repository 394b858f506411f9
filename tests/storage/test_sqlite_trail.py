"""The SQLite trail's own file: a trail written by an older gateway (one table of JSON
entries) is converted when the store opens it, ids and fields kept."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from gateway.storage.sqlite import open_sqlite_store
from gateway.storage.sqlite_trail import trail_path

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = int(T0.timestamp()) * 1_000_000


def _old_trail(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE trail (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, charger_id TEXT,"
        " partner TEXT, transaction_id TEXT, action TEXT, data TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX trail_by_time ON trail (at, seq)")
    rows = [
        (7, US, "CP-1", None, "77", "MeterValues",
         [US, "ocpp", "in", "CP-1", None, "MeterValues", "CALL", "m1", None, None, None,
          None, None, 120, "77", '[2,"m1","MeterValues",{}]', False]),
        (9, US + 5, None, "emsp", None, "sessions",
         [US + 5, "ocpi", "out", None, "emsp", "sessions", "response", "r1", "c1", "200",
          1000, "PUT", "/ocpi/2.2.1/sessions/NL/ABC/1", 42, None, "caf\u00e9", True]),
    ]  # fmt: skip
    conn.executemany(
        "INSERT INTO trail VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*row[:6], json.dumps(row[6], ensure_ascii=False)) for row in rows],
    )
    conn.commit()
    conn.close()


async def test_an_older_trail_file_is_converted(tmp_path: Path) -> None:
    database = tmp_path / "gateway.sqlite3"
    _old_trail(trail_path(database))
    store = await open_sqlite_store(database)
    try:
        page, cursor = await store.trail.query()
        assert cursor is None
        assert [e.id for e in page] == [f"{US:016d}{7:016d}", f"{US + 5:016d}{9:016d}"]
        meter, session = page
        assert (meter.at, meter.charger_id, meter.transaction_id, meter.size) == (
            T0, "CP-1", "77", 120,
        )  # fmt: skip
        assert (meter.body, meter.truncated, meter.partner) == (
            '[2,"m1","MeterValues",{}]', False, None,
        )  # fmt: skip
        assert (session.partner, session.ocpi_status, session.method, session.body) == (
            "emsp", 1000, "PUT", "caf\u00e9",
        )  # fmt: skip
        assert session.truncated is True and session.correlation_id == "c1"
        by_tx, _ = await store.trail.query(transaction_id="77")
        assert [e.message_id for e in by_tx] == ["m1"]
        # New entries follow the converted ones.
        await store.trail.append_batch([meter])
        assert await store.trail.count() == 3
    finally:
        await store.close()
    conn = sqlite3.connect(trail_path(database))
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "trail" not in tables and "entries" in tables
