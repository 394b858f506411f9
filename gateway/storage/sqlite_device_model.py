"""Device models, report states and alerts on SQLite: the ``device_model``,
``device_reports`` and ``device_alerts`` tables of the main database (migration 6 in
:mod:`gateway.storage.sqlite`). Each call is one job of the writer thread, so one
transaction: a NotifyReport part of thousands of attributes is one ``executemany``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.domain.device_model import (
    Alert,
    DeviceModelQuery,
    DeviceVariable,
    ReportStatus,
    ValueUpdate,
)
from gateway.storage import codec
from gateway.storage import device_model as dm
from gateway.storage.sqlite import _Database

_UPSERT_REPORTED = (
    "INSERT INTO device_model (charger_id, key, component, variable, evse_id, search, meta,"
    " value, value_search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (charger_id, key)"
    " DO UPDATE SET meta = excluded.meta, value = excluded.value,"
    " value_search = excluded.value_search"
)
_UPSERT_VALUE = (
    "INSERT INTO device_model (charger_id, key, component, variable, evse_id, search, meta,"
    " value, value_search, reboot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (charger_id, key) DO UPDATE SET value = excluded.value,"
    " value_search = excluded.value_search, reboot = excluded.reboot"
)


def _trim_reports(conn: sqlite3.Connection, charger_id: str) -> None:
    conn.execute(
        "DELETE FROM device_reports WHERE charger_id = ? AND (first_at, request_id) NOT IN"
        " (SELECT first_at, request_id FROM device_reports WHERE charger_id = ?"
        "  ORDER BY first_at DESC, request_id DESC LIMIT ?)",
        (charger_id, charger_id, dm.REPORTS_KEPT),
    )


def _report(conn: sqlite3.Connection, charger_id: str, request_id: int) -> ReportStatus | None:
    row = conn.execute(
        "SELECT data FROM device_reports WHERE charger_id = ? AND request_id = ?",
        (charger_id, request_id),
    ).fetchone()
    return None if row is None else dm.decode_report(charger_id, request_id, row[0])


def _put_report(conn: sqlite3.Connection, status: ReportStatus, first_at: int) -> None:
    conn.execute(
        "INSERT INTO device_reports (charger_id, request_id, first_at, data) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (charger_id, request_id) DO UPDATE SET data = excluded.data",
        (status.charger_id, status.request_id, first_at, dm.encode_report(status)),
    )
    _trim_reports(conn, status.charger_id)


class SqliteDeviceModelStore:
    def __init__(self, db: _Database) -> None:
        self._db = db

    async def apply_report(
        self,
        charger_id: str,
        request_id: int,
        seq_no: int,
        tbc: bool,
        rows: Sequence[DeviceVariable],
        at: datetime,
    ) -> ReportStatus:
        dm.check_charger(charger_id)
        dm.check_report_part(seq_no, request_id)
        at_key = codec.time_key(at, "at")
        params = []
        for row in rows:
            dm.check_row(charger_id, row)
            params.append(
                (
                    charger_id,
                    row.sort_key,
                    row.key.component,
                    row.key.variable,
                    row.key.evse_id,
                    row.key.search_text(),
                    dm.encode_meta(row),
                    dm.row_value(row),
                    dm.value_search(row.value),
                )
            )

        def job(conn: sqlite3.Connection) -> ReportStatus:
            conn.executemany(_UPSERT_REPORTED, params)
            old = _report(conn, charger_id, request_id) or ReportStatus(charger_id, request_id)
            status = ReportStatus(
                charger_id=charger_id,
                request_id=request_id,
                kind=old.kind,
                requested_at=old.requested_at,
                answer=old.answer,
                seq_nos=old.seq_nos | {seq_no},
                last_seq_no=old.last_seq_no if tbc else seq_no,
                variables=old.variables + len(params),
                updated_at=at,
            )
            _put_report(conn, status, at_key)
            return status

        return await self._db.write(job)

    async def note_request(
        self,
        charger_id: str,
        request_id: int,
        *,
        kind: str | None,
        at: datetime,
        answer: str | None = None,
    ) -> None:
        dm.check_charger(charger_id)
        dm.check_report_part(0, request_id)
        at_key = codec.time_key(at, "at")

        def job(conn: sqlite3.Connection) -> None:
            old = _report(conn, charger_id, request_id) or ReportStatus(charger_id, request_id)
            status = ReportStatus(
                charger_id=charger_id,
                request_id=request_id,
                kind=kind if kind is not None else old.kind,
                requested_at=old.requested_at or at,
                answer=answer if answer is not None else old.answer,
                seq_nos=old.seq_nos,
                last_seq_no=old.last_seq_no,
                variables=old.variables,
                updated_at=old.updated_at,
            )
            _put_report(conn, status, at_key)

        await self._db.write(job)

    async def reports(self, charger_id: str) -> list[ReportStatus]:
        def job(conn: sqlite3.Connection) -> list[ReportStatus]:
            rows = conn.execute(
                "SELECT request_id, data FROM device_reports WHERE charger_id = ?"
                " ORDER BY first_at DESC, request_id DESC",
                (charger_id,),
            ).fetchall()
            return [dm.decode_report(charger_id, r[0], r[1]) for r in rows]

        return await self._db.read(job)

    async def update_values(self, charger_id: str, updates: Sequence[ValueUpdate]) -> None:
        dm.check_charger(charger_id)
        params = []
        for u in updates:
            dm.check_update(u)
            params.append(
                (
                    charger_id,
                    u.key.text(u.attribute_type),
                    u.key.component,
                    u.key.variable,
                    u.key.evse_id,
                    u.key.search_text(),
                    dm.bare_meta(u.key, u.attribute_type),
                    dm.update_value(u),
                    dm.value_search(u.value),
                    int(u.reboot_required),
                )
            )

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(_UPSERT_VALUE, params)

        if params:
            await self._db.write(job)

    async def query(
        self, charger_id: str, query: DeviceModelQuery, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[DeviceVariable], int]:
        codec.check_page(limit, offset)
        where = ["charger_id = ?"]
        args: list[Any] = [charger_id]
        if query.component is not None:
            where.append("component = ?")
            args.append(query.component)
        if query.variable is not None:
            where.append("variable = ?")
            args.append(query.variable)
        if query.evse_id is not None:
            where.append("evse_id = ?")
            args.append(query.evse_id)
        if query.q:
            where.append("(instr(search, ?) > 0 OR instr(value_search, ?) > 0)")
            needle = query.q.casefold()
            args += [needle, needle]
        clause = " AND ".join(where)

        def job(conn: sqlite3.Connection) -> tuple[list[DeviceVariable], int]:
            total = conn.execute(f"SELECT count(*) FROM device_model WHERE {clause}", args)
            count = int(total.fetchone()[0])
            rows = conn.execute(
                f"SELECT meta, value, reboot FROM device_model WHERE {clause}"
                " ORDER BY key LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
            return [dm.decode(charger_id, r[0], r[1], bool(r[2])) for r in rows], count

        return await self._db.read(job)

    async def add_alerts(
        self, charger_id: str, alerts: Sequence[Alert], *, keep: int
    ) -> list[Alert]:
        dm.check_charger(charger_id)
        dm.check_keep(keep)
        encoded = []
        for alert in alerts:
            if alert.charger_id != charger_id:
                raise ValueError(f"an alert of charger {alert.charger_id!r} among {charger_id!r}'s")
            encoded.append((alert, dm.encode_alert(alert), codec.time_key(alert.received_at, "at")))

        def job(conn: sqlite3.Connection) -> list[Alert]:
            top = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM device_alerts WHERE charger_id = ?",
                (charger_id,),
            ).fetchone()[0]
            stored: list[Alert] = []
            cleared_seqs: dict[int, int] = {}
            for alert, data, at in encoded:
                if alert.cleared:
                    found = conn.execute(
                        "SELECT seq FROM device_alerts WHERE charger_id = ? AND match = ?"
                        " AND raises = 1 AND cleared_at IS NULL",
                        (charger_id, alert.match),
                    ).fetchall()
                    conn.execute(
                        "UPDATE device_alerts SET cleared_at = ? WHERE charger_id = ?"
                        " AND match = ? AND raises = 1 AND cleared_at IS NULL",
                        (at, charger_id, alert.match),
                    )
                    cleared_seqs.update({r[0]: at for r in found})
                top += 1
                conn.execute(
                    "INSERT INTO device_alerts (charger_id, seq, match, raises, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (charger_id, top, alert.match, int(alert.raises), data),
                )
                stored.append(dm.decode_alert(charger_id, top, data, None))
            conn.execute(
                "DELETE FROM device_alerts WHERE charger_id = ? AND seq <= ?",
                (charger_id, top - keep),
            )
            return [
                a
                if a.seq not in cleared_seqs
                else dm.decode_alert(charger_id, a.seq, dm.encode_alert(a), cleared_seqs[a.seq])
                for a in stored
                if a.seq > top - keep
            ]

        return await self._db.write(job)

    async def alerts(
        self,
        charger_id: str,
        *,
        active: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alert]:
        codec.check_page(limit, offset)
        clause = ""
        if active is True:
            clause = " AND raises = 1 AND cleared_at IS NULL"
        elif active is False:
            clause = " AND NOT (raises = 1 AND cleared_at IS NULL)"

        def job(conn: sqlite3.Connection) -> list[Alert]:
            rows = conn.execute(
                f"SELECT seq, data, cleared_at FROM device_alerts WHERE charger_id = ?{clause}"
                " ORDER BY seq DESC LIMIT ? OFFSET ?",
                (charger_id, limit, offset),
            ).fetchall()
            return [dm.decode_alert(charger_id, r[0], r[1], r[2]) for r in rows]

        return await self._db.read(job)

    async def delete(self, charger_id: str) -> None:
        def job(conn: sqlite3.Connection) -> None:
            for table in ("device_model", "device_reports", "device_alerts"):
                conn.execute(f"DELETE FROM {table} WHERE charger_id = ?", (charger_id,))

        await self._db.write(job)
